"""The apps and plugins the benchmarks serve (FrameX, plain FastAPI, Starlette, bare ASGI, Ray Serve, FrameX-kit)."""
