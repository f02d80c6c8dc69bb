"""Benchmarks of FrameX against plain FastAPI; see ``bench/README.md``."""
