"""Health, metrics and logging."""
