"""A plain FastAPI service (no FrameX) for the proxy to mirror: served by uvicorn in tests."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import FastAPI, File, Form, Header, HTTPException, Query, UploadFile
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

app = FastAPI(title="plain upstream")

released = asyncio.Event()


class Item(BaseModel):
    name: str
    price: float
    tags: list[str] = []


@app.get("/health")
async def health() -> str:
    return "ok"


@app.get("/api/v1/items/{item_id}")
async def get_item(item_id: int, tags: Annotated[list[str], Query()] = [], q: str | None = None) -> dict[str, object]:  # noqa: B006
    return {"item_id": item_id, "tags": tags, "q": q}


@app.post("/api/v1/items", status_code=201)
async def create_item(item: Item) -> Item:
    return item


@app.post("/api/v1/form")
async def form(name: Annotated[str, Form()], count: Annotated[int, Form()]) -> dict[str, object]:
    return {"name": name, "count": count}


@app.post("/api/v1/upload")
async def upload(file: Annotated[UploadFile, File()], note: Annotated[str, Form()] = "") -> dict[str, object]:
    data = await file.read()
    return {"filename": file.filename, "size": len(data), "sha256": hashlib.sha256(data).hexdigest(), "note": note}


@app.get("/api/v1/headers")
async def headers(
    authorization: Annotated[str | None, Header()] = None, x_custom: Annotated[str | None, Header()] = None
) -> dict[str, object]:
    return {"authorization": authorization, "x_custom": x_custom}


@app.get("/api/v1/events")
async def events() -> StreamingResponse:
    """One event, then the next only once /api/v1/release was called: a proxy that
    buffers never delivers the first."""
    released.clear()

    async def stream() -> AsyncIterator[str]:
        yield 'data: {"n": 1}\n\n'
        await asyncio.wait_for(released.wait(), 30)
        yield 'data: {"n": 2}\n\n'

    return StreamingResponse(stream(), media_type="text/event-stream")


@app.post("/api/v1/release")
async def release() -> str:
    released.set()
    return "released"


endless_closed = asyncio.Event()


@app.get("/api/v1/endless")
async def endless() -> StreamingResponse:
    """Events until the client goes away; then `/api/v1/endless_closed` says so."""
    endless_closed.clear()

    async def stream() -> AsyncIterator[str]:
        try:
            n = 0
            while True:
                n += 1
                yield f"data: {n}\n\n"
                await asyncio.sleep(0.01)  # an event source's pace
        finally:
            endless_closed.set()

    return StreamingResponse(stream(), media_type="text/event-stream")


@app.get("/api/v1/endless_closed")
async def endless_closed_state() -> bool:
    return endless_closed.is_set()


@app.get("/api/v1/stuck")
async def stuck() -> str:
    await asyncio.sleep(30)  # longer than the proxy's timeout in the tests
    return "late"


@app.get("/api/v1/private")
async def private() -> str:
    return "never mirrored"


@app.get("/api/v1/fails")
async def fails() -> str:
    raise HTTPException(418, "I'm a teapot")


@app.get("/internal/stats")
async def stats() -> dict[str, int]:
    return {"not": 1}
