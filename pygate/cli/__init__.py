"""The shell over the library: one module per command group, plus the shared helpers."""
