"""Benchmarks of the console against DESIGN §6, beside a replica of the seed console's pattern.

Run ``python -m benchmarks.run --quick`` (minutes) or ``python -m benchmarks.run`` (the
full suite). Nothing here ships in the product: the console is measured as a real process,
with benchmark-only hooks loaded through ``benchmarks.server_entry``.
"""
