"""Every parameter shape a plugin route can declare, each handler echoing what it received.

The echo shows each value with its Python type and repr, so two ways of serving the same
route (compiled, and FastAPI's own request path) can be compared on what the handler
was called with, not only on what it answered.
"""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal
from urllib.parse import quote
from uuid import UUID

from fastapi import Body, Cookie, Depends, File, Form, Header, HTTPException, Path, Query, Request, UploadFile
from fastapi.responses import JSONResponse, RedirectResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from framex.plugin import PluginMetadata, on_request

__plugin_meta__ = PluginMetadata(name="signatures", version="1.0.0", description="Echoes every parameter shape.")


class Color(enum.StrEnum):
    red = "red"
    green = "green"
    blue = "blue"


class Level(enum.IntEnum):
    low = 1
    high = 2


class Owner(BaseModel):
    id: int
    email: str = Field(pattern=r"^[^@\s]+@[^@\s]+$")


class Item(BaseModel):
    name: str = Field(min_length=1, max_length=20)
    price: Decimal = Field(ge=0, decimal_places=2)
    tags: list[str] = []
    owner: Owner
    note: str | None = None
    display: str = Field("", alias="displayName")


class Filters(BaseModel):
    """A query parameter model: its fields are the query parameters."""

    model_config = ConfigDict(extra="forbid")

    limit: int = Field(10, ge=1, le=50)
    order: Literal["asc", "desc"] = "asc"
    tags: list[str] = []


def seen(**values: Any) -> dict[str, dict[str, Any]]:
    """What the handler got: each value (JSON-encoded as the envelope encodes it), its type and repr."""
    return {name: {"value": _jsonable(v), "type": type(v).__name__, "repr": repr(v)} for name, v in values.items()}


def _jsonable(value: Any) -> Any:
    # Uploaded bytes need not be UTF-8, which JSON text must be; the repr shows them exactly.
    return value.decode("latin-1") if isinstance(value, bytes) else value


async def upload(file: UploadFile) -> dict[str, Any]:
    content = await file.read()
    return {
        "filename": file.filename,
        "content_type": file.content_type,
        "size": file.size,
        "content": content.decode("latin-1"),
        "headers": sorted(file.headers.items()),
    }


# -- query parameters -----------------------------------------------------------------


@on_request("/sig/scalars")
async def scalars(i: int, f: float, b: bool, s: str) -> object:
    return seen(i=i, f=f, b=b, s=s)


@on_request("/sig/typed")
async def typed(color: Color, when: datetime, uid: UUID, amount: Decimal, level: Level = Level.low) -> object:
    return seen(color=color, when=when, uid=uid, amount=amount, level=level)


@on_request("/sig/defaults")
async def defaults(
    n: int = 5,
    ratio: float = 0.5,
    flag: bool = False,
    name: str = "x",
    opt: int | None = None,
    note: str | None = None,
    day: date | None = None,
    color: Color = Color.red,
) -> object:
    return seen(n=n, ratio=ratio, flag=flag, name=name, opt=opt, note=note, day=day, color=color)


@on_request("/sig/lists")
async def lists(
    ids: Annotated[list[int], Query()],
    tags: Annotated[list[str], Query()] = ["a", "b"],  # noqa: B006 - the documented default
    maybe: Annotated[list[float] | None, Query()] = None,
    colors: Annotated[list[Color], Query()] = [],  # noqa: B006
) -> object:
    return seen(ids=ids, tags=tags, maybe=maybe, colors=colors)


@on_request("/sig/constraints")
async def constraints(
    term: Annotated[str, Query(alias="q-term", min_length=2, max_length=8, pattern="^[a-z]+$")],
    page: Annotated[int, Query(ge=1, le=100)] = 1,
    score: Annotated[float, Query(gt=0, lt=1)] = 0.5,
    size: Annotated[int, Query(alias="pageSize", multiple_of=5)] = 10,
    code: Annotated[str | None, Query(max_length=3)] = None,
) -> object:
    return seen(term=term, page=page, score=score, size=size, code=code)


@on_request("/sig/query_model")
async def query_model(filters: Annotated[Filters, Query()]) -> object:
    return seen(filters=filters)


# -- path parameters ------------------------------------------------------------------


@on_request("/sig/items/{item_id}")
async def item_by_id(item_id: int) -> object:
    return seen(item_id=item_id)


@on_request("/sig/names/{name}")
async def item_by_name(name: str) -> object:
    return seen(name=name)


@on_request("/sig/pair/{a}/{b}")
async def pair(a: Annotated[int, Path(ge=1)], b: Color, extra: int = 0) -> object:
    return seen(a=a, b=b, extra=extra)


@on_request("/sig/files/{rest:path}")
async def file_path(rest: str) -> object:
    return seen(rest=rest)


# -- headers and cookies --------------------------------------------------------------


@on_request("/sig/headers")
async def headers(
    user_agent: Annotated[str | None, Header()] = None,
    x_count: Annotated[int | None, Header()] = None,
    x_tags: Annotated[list[str] | None, Header()] = None,
    raw_name: Annotated[str | None, Header(convert_underscores=False)] = None,
    x_token: Annotated[str, Header(min_length=3)] = "none",
) -> object:
    return seen(user_agent=user_agent, x_count=x_count, x_tags=x_tags, raw_name=raw_name, x_token=x_token)


@on_request("/sig/cookies")
async def cookies(
    session: Annotated[str | None, Cookie()] = None,
    visits: Annotated[int, Cookie()] = 0,
    theme: Annotated[Color | None, Cookie()] = None,
    token: Annotated[str, Cookie(alias="auth-token")] = "",
) -> object:
    return seen(session=session, visits=visits, theme=theme, token=token)


# -- bodies ---------------------------------------------------------------------------


@on_request("/sig/model", methods=["POST", "PUT"])
async def model(item: Item) -> object:
    return seen(item=item)


@on_request("/sig/model_query", methods=["POST"])
async def model_query(item: Item, dry_run: bool = False, limit: Annotated[int, Query(le=10)] = 1) -> object:
    return seen(item=item, dry_run=dry_run, limit=limit)


@on_request("/sig/embedded", methods=["POST"])
async def embedded(item: Item, importance: Annotated[int, Body(gt=0)]) -> object:
    """Two body parameters: FastAPI expects `{"item": {...}, "importance": n}`."""
    return seen(item=item, importance=importance)


@on_request("/sig/embed", methods=["POST"])
async def embed(owner: Annotated[Owner, Body(embed=True)]) -> object:
    return seen(owner=owner)


@on_request("/sig/dict", methods=["POST"])
async def plain_dict(payload: dict[str, Any]) -> object:
    return seen(payload=payload)


@on_request("/sig/list_body", methods=["POST"])
async def list_body(values: Annotated[list[int], Body()]) -> object:
    return seen(values=values)


@on_request("/sig/optional_body", methods=["POST"])
async def optional_body(owner: Owner | None = None) -> object:
    return seen(owner=owner)


# -- forms and files ------------------------------------------------------------------


@on_request("/sig/form", methods=["POST"])
async def form(
    username: Annotated[str, Form(min_length=1)],
    age: Annotated[int, Form(ge=0)] = 0,
    tags: Annotated[list[str], Form()] = [],  # noqa: B006
    agree: Annotated[bool, Form()] = False,
) -> object:
    return seen(username=username, age=age, tags=tags, agree=agree)


@on_request("/sig/upload", methods=["POST"])
async def upload_file(
    file: UploadFile,
    note: Annotated[str, Form()] = "",
    blob: Annotated[bytes | None, File()] = None,
) -> object:
    return {"file": await upload(file), **seen(note=note, blob=blob)}


@on_request("/sig/uploads", methods=["POST"])
async def upload_files(files: Annotated[list[UploadFile], File()]) -> object:
    return [await upload(f) for f in files]


# -- the rest of the handler shapes ---------------------------------------------------


@on_request("/sig/request", methods=["GET", "POST"])
async def with_request(request: Request, x: int = 0) -> object:
    return {
        "method": request.method,
        "path": request.url.path,
        "query": request.url.query,
        "query_params": list(request.query_params.multi_items()),
        "path_params": request.path_params,
        "headers": [h for h in request.headers.items() if h[0] not in ("content-length",)],
        "cookies": request.cookies,
        "body": (await request.body()).decode("latin-1"),
        **seen(x=x),
    }


@on_request("/sig/sync", methods=["GET", "POST"])
def sync_handler(x: int, y: str = "a", z: list[int] = Query([])) -> object:  # noqa: B008
    return seen(x=x, y=y, z=z)


@on_request("/sig/raw", raw_response=True)
async def raw(x: int = 1, names: Annotated[list[str], Query()] = []) -> object:  # noqa: B006
    return seen(x=x, names=names)


@on_request("/sig/created", methods=["POST"], status_code=201)
async def created(name: Annotated[str, Body(embed=True)]) -> object:
    return seen(name=name)


@on_request("/sig/missing/{key}")
async def missing(key: str, detail_as: Literal["text", "dict"] = "text") -> object:
    if detail_as == "dict":
        raise HTTPException(status_code=404, detail={"key": key, "reason": "absent"})
    # Quoted: a header of non-ASCII text is Latin-1 on the wire, which the test client cannot read back.
    raise HTTPException(status_code=404, detail=f"No {key}", headers={"X-Missing": quote(key)})


@on_request("/sig/guarded")
async def guarded(authorization: Annotated[str | None, Header()] = None) -> object:
    if authorization != "Bearer open-sesame":
        raise HTTPException(status_code=401, detail="Not authenticated", headers={"WWW-Authenticate": "Bearer"})
    return seen(authorization=authorization)


@on_request("/sig/boom")
async def boom(x: int = 0) -> object:
    raise RuntimeError(f"secret {x}")


@on_request("/sig/redirect")
async def redirect(to: str = "/api/v1/sig/defaults", code: Annotated[int, Query(ge=301, le=308)] = 307) -> Response:
    return RedirectResponse(to, status_code=code)


@on_request("/sig/headers_out")
async def headers_out(value: str = "v", age: int = 60) -> Response:
    response = JSONResponse(
        seen(value=value, age=age), headers={"ETag": f'"{quote(value)}"', "Cache-Control": f"max-age={age}"}
    )
    response.set_cookie("last", value, max_age=age, httponly=True)
    response.set_cookie("seen", "1", path="/api")
    return response


@on_request("/sig/stream", stream=True)
async def stream(
    n: Annotated[int, Query(ge=0, le=20)] = 3, word: str = "w", fail: bool = False
) -> AsyncIterator[object]:
    for i in range(n):
        yield seen(i=i, word=word)
    yield f"event: done\ndata: {word}\n\n"
    if fail:
        raise RuntimeError("stream failed")


def paging(offset: Annotated[int, Query(ge=0)] = 0, limit: Annotated[int, Query(le=50)] = 10) -> dict[str, int]:
    return {"offset": offset, "limit": limit}


@on_request("/sig/depends")
async def depends(page: Annotated[dict[str, int], Depends(paging)], q: str = "") -> object:
    return seen(page=page, q=q)


@on_request("/sig/mix/{item_id}", methods=["POST"])
async def mix(
    item_id: Annotated[int, Path(ge=1)],
    owner: Owner,
    q: Annotated[int, Query()],
    x_trace: Annotated[int, Header()],
    session: Annotated[int, Cookie()],
) -> object:
    """One parameter of every source, all required: a request may be wrong in each at once."""
    return seen(item_id=item_id, owner=owner, q=q, x_trace=x_trace, session=session)
