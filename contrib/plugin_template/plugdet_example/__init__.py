"""plugdet-example: a minimal third-party plugdet plugin."""
