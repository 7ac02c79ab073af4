"""pickle."""
