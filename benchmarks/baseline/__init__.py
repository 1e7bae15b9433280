"""A small replica of the seed console's pattern (FastAPI + uvicorn); benchmarks only."""
