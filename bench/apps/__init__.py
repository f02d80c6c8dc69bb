"""The two ASGI apps the HTTP benchmark serves: FrameX and plain FastAPI."""
