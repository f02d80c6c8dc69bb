"""Where cached answers live: the stored form of a response, and the memory and file stores.

See ``docs/caching.md``; :mod:`framex.http.cache` decides what is cached and when.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import re
import tempfile
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from starlette.responses import Response

logger = logging.getLogger("framex.cache")

_FILE_NAME = re.compile(r"[0-9a-f]{64}")
_MAGIC = b"FRAMEX-CACHE 1\n"


@dataclass(frozen=True, slots=True)
class CachedResponse:
    """A stored answer: exactly the bytes sent, with their status and content type."""

    body: bytes
    status: int
    content_type: str | None
    expires_at: float | None
    """On the cache's clock; None: never."""

    def expired(self, now: float) -> bool:
        return self.expires_at is not None and now >= self.expires_at

    def response(self, headers: dict[str, str]) -> Response:
        if self.content_type is not None:
            headers["content-type"] = self.content_type
        return Response(self.body, status_code=self.status, headers=headers)


def freeze(response: Response, expires_at: float | None) -> CachedResponse | None:
    """``response`` as a :class:`CachedResponse`, or None when it cannot be replayed to others.

    Streams and files have no body to keep; background tasks would not run again; other
    headers (``Set-Cookie``...) may belong to one client only.
    """
    body = getattr(response, "body", None)
    if not isinstance(body, bytes) or response.background is not None:
        return None
    content_type = None
    for name, value in response.raw_headers:
        if name == b"content-type":
            content_type = value.decode("latin-1")
        elif name != b"content-length":
            return None
    return CachedResponse(body, response.status_code, content_type, expires_at)


# -- stores -------------------------------------------------------------------------


class CacheStore(Protocol):
    """Where entries live. Keys are opaque strings; ``now`` is on the cache's clock."""

    max_size: int

    async def get(self, key: str, now: float) -> CachedResponse | None: ...

    async def set(self, key: str, entry: CachedResponse) -> None: ...


class MemoryStore:
    """Entries in this process, the oldest stored first."""

    def __init__(self, max_size: int) -> None:
        self.max_size = max_size
        self._entries: OrderedDict[str, CachedResponse] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def keys(self) -> list[str]:
        """The stored keys, oldest first."""
        return list(self._entries)

    async def get(self, key: str, now: float) -> CachedResponse | None:
        entry = self._entries.get(key)
        if entry is not None and entry.expired(now):
            del self._entries[key]
            return None
        return entry

    async def set(self, key: str, entry: CachedResponse) -> None:
        self._entries.pop(key, None)  # stored again: now the newest
        self._entries[key] = entry
        while len(self._entries) > self.max_size:
            self._entries.popitem(last=False)


class _OutsideDirectoryError(ValueError):
    """A cache file would resolve outside the cache folder (a symlink put there)."""


class FileStore:
    """One file per entry in a folder, named by the sha256 of its key.

    Files are written to a temporary file in the folder and renamed into place, so a
    reader (another process too) sees a whole entry or none. Which files exist is read
    on first use, so entries survive a restart; a file that cannot be read back is a miss.
    Entries are read on the event loop; writes, deletions and the first listing run in
    worker threads. Bookkeeping stays on the loop.
    """

    def __init__(self, directory: str | os.PathLike[str], max_size: int) -> None:
        self.max_size = max_size
        self.directory = Path(directory).resolve()
        self._index: OrderedDict[str, None] | None = None  # file names, oldest first

    def path(self, key: str) -> Path:
        """The file of ``key``; raises if it resolves outside the folder."""
        name = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()
        path = (self.directory / name).resolve()
        if path.parent != self.directory:
            raise _OutsideDirectoryError(f"`{self.directory / name}` resolves to `{path}`, outside the cache folder")
        return path

    def file_names(self) -> list[str]:
        """The entry files this store knows of, oldest first."""
        return list(self._index or ())

    async def get(self, key: str, now: float) -> CachedResponse | None:
        index = await self._loaded_index()
        try:
            # On the loop: reading a small, page-cached file costs microseconds, while a hop
            # to a worker thread and back costs more than the rest of a hit (bench/cache.py).
            path, data = self._read(key)
        except (OSError, ValueError) as exc:
            logger.warning("Cache file of key %r not readable, treated as a miss: %s", key, exc)
            return None
        if data is None:
            return None
        try:
            entry = _decode(data, key)
        except ValueError as exc:
            logger.warning("Cache file %s is corrupt (%s): treated as a miss", path, exc)
            await self._discard(path.name)
            return None
        if entry.expired(now):
            await self._discard(path.name)
            return None
        index.setdefault(path.name)  # written by another process since the folder was read
        return entry

    async def set(self, key: str, entry: CachedResponse) -> None:
        index = await self._loaded_index()
        try:
            name = await asyncio.to_thread(self._write, key, _encode(key, entry))
        except (OSError, ValueError) as exc:
            logger.warning("Could not store the cache entry of key %r in %s: %s", key, self.directory, exc)
            return
        index.pop(name, None)
        index[name] = None
        evicted = []
        while len(index) > self.max_size:
            evicted.append(index.popitem(last=False)[0])
        if evicted:
            await asyncio.to_thread(self._unlink, evicted)

    async def _loaded_index(self) -> OrderedDict[str, None]:
        if self._index is None:
            names = await asyncio.to_thread(self._scan)
            if self._index is None:  # two first uses may both scan: the result is the same
                self._index = OrderedDict.fromkeys(names)
        return self._index

    async def _discard(self, name: str) -> None:
        if self._index is not None:
            self._index.pop(name, None)
        await asyncio.to_thread(self._unlink, [name])

    def _scan(self) -> list[str]:
        try:
            found = [
                (entry.stat(follow_symlinks=False).st_mtime_ns, entry.name)
                for entry in os.scandir(self.directory)
                if _FILE_NAME.fullmatch(entry.name) and entry.is_file(follow_symlinks=False)
            ]
        except FileNotFoundError:
            return []
        return [name for _, name in sorted(found)]

    def _read(self, key: str) -> tuple[Path, bytes | None]:
        path = self.path(key)
        try:
            return path, path.read_bytes()
        except FileNotFoundError:
            return path, None

    def _write(self, key: str, data: bytes) -> str:
        path = self.path(key)
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)  # entries may be private answers
        fd, temp = tempfile.mkstemp(prefix=".tmp-", dir=self.directory)
        try:
            with os.fdopen(fd, "wb") as file:
                file.write(data)
            os.replace(temp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise
        return path.name

    def _unlink(self, names: list[str]) -> None:
        for name in names:
            with contextlib.suppress(OSError):
                (self.directory / name).unlink()


def _encode(key: str, entry: CachedResponse) -> bytes:
    meta = {
        "key": key,
        "status": entry.status,
        "content_type": entry.content_type,
        "expires_at": entry.expires_at,
        "length": len(entry.body),
    }
    return _MAGIC + json.dumps(meta).encode() + b"\n" + entry.body


def _decode(data: bytes, key: str) -> CachedResponse:
    if not data.startswith(_MAGIC):
        raise ValueError("not a FrameX cache file")
    end = data.find(b"\n", len(_MAGIC))
    if end < 0:
        raise ValueError("no header line")
    meta = json.loads(data[len(_MAGIC) : end])
    body = data[end + 1 :]
    if not isinstance(meta, dict):
        raise ValueError("the header is not a JSON object")
    status, content_type, expires_at = meta.get("status"), meta.get("content_type"), meta.get("expires_at")
    if meta.get("key") != key:
        raise ValueError("it holds another key")
    if not isinstance(status, int) or not 200 <= status < 300:
        raise ValueError(f"bad status {status!r}")
    if content_type is not None and not isinstance(content_type, str):
        raise ValueError("bad content type")
    if expires_at is not None and not isinstance(expires_at, (int, float)):
        raise ValueError("bad expiry")
    if meta.get("length") != len(body):
        raise ValueError(f"the body has {len(body)} bytes, the header says {meta.get('length')!r}")
    return CachedResponse(body, status, content_type, expires_at)
