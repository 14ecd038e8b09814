"""Built-in plug-in (placeholder until implemented)."""
