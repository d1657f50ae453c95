"""Exchange with other frameworks (each imports its framework lazily, inside functions)."""
