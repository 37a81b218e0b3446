"""Third-party device families (docs/families.md)."""
