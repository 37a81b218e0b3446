"""syncproto."""
