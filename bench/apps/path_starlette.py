"""Plain Starlette serving ``bench.request_path``'s query route: one ``Route``, its own int check."""

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


async def q(request: Request) -> JSONResponse:
    """Read ``x`` from the query string, answer 422 unless it is an int, else ``{"x": x}``."""
    try:
        x = int(request.query_params.get("x", ""))  # a missing x ("") fails like a bad one
    except ValueError:
        return JSONResponse({"detail": "x: an integer is required"}, status_code=422)
    return JSONResponse({"x": x})


app = Starlette(routes=[Route("/api/v1/q", q)])
