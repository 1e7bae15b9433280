"""Brokers for more than one console: ``[broker] url`` names a Redis every console shares (redis.py)."""
