"""Benchmark-only experiments that show what a proposed product change would measure."""
