"""Plan-and-Budget for DSPy."""
