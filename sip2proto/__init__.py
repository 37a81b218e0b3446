"""sip2proto."""
