"""dbkit."""
