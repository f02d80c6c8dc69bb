"""Headless Chromium driven over the DevTools protocol: enough to load a page, wait for what it
shows, type, click, list every request it made and take a screenshot.

Chromium runs with a new empty profile and its network limited to loopback: host names other
than 127.0.0.1 resolve to nothing, and any other address goes to a proxy that is not there.
Every request the page makes is recorded (``Network.requestWillBeSent``), so a test can check
that none left 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp

CHROMIUM_CANDIDATES = ("chromium", "chromium-browser", "/usr/bin/chromium")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
    # The network is disabled: names do not resolve (but 127.0.0.1), other addresses go to a
    # proxy that is not there (loopback is never proxied).
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
    "--proxy-server=http://127.0.0.1:9",
    "--remote-debugging-port=0",
    "--remote-allow-origins=*",
)
START_TIMEOUT = 30.0


def find_chromium() -> str | None:
    """The Chromium executable, or None when it is not installed."""
    for candidate in CHROMIUM_CANDIDATES:
        found = shutil.which(candidate)
        if found:
            return found
    return None


class CDPError(RuntimeError):
    """A DevTools command failed, or what a test waited for did not happen in time."""


class Page:
    """One tab, attached with a flat session."""

    def __init__(self, browser: Browser, session: str) -> None:
        self.browser = browser
        self.session = session
        self.requests: list[str] = []
        """Every URL the page requested, in order."""
        self.failures: list[str] = []
        """``url: error`` of every request that failed (but those the page's policy blocked)."""
        self.blocked: list[str] = []
        """URLs the browser refused to request (the page's Content-Security-Policy): never sent."""
        self.console_errors: list[str] = []
        self._urls: dict[str, str] = {}

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        return await self.browser.send(method, params, self.session)

    def on_event(self, method: str, params: dict[str, Any]) -> None:
        if method == "Network.requestWillBeSent":
            url = params["request"]["url"]
            self.requests.append(url)
            self._urls[params["requestId"]] = url
        elif method == "Network.loadingFailed":
            url = self._urls.get(params["requestId"], "?")
            if params.get("blockedReason") == "csp":
                self.blocked.append(url)
            else:
                self.failures.append(f"{url}: {params.get('errorText')}")
        elif method == "Runtime.exceptionThrown":
            self.console_errors.append(json.dumps(params.get("exceptionDetails", {}))[:500])
        elif method == "Runtime.consoleAPICalled" and params.get("type") == "error":
            self.console_errors.append(json.dumps(params.get("args", []))[:500])
        elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
            self.console_errors.append(str(params["entry"].get("text"))[:500])

    async def goto(self, url: str) -> None:
        await self.send("Page.navigate", url=url)
        await self.wait_for("document.readyState === 'complete'", timeout=30)

    async def evaluate(self, expression: str) -> Any:
        """The value of ``expression`` in the page (awaited when it is a promise)."""
        reply = await self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in reply:
            raise CDPError(f"`{expression}` raised in the page: {reply['exceptionDetails']}")
        return reply["result"].get("value")

    async def wait_for(self, expression: str, timeout: float = 20) -> Any:
        """Poll ``expression`` until it is truthy; return its value. Raises at the deadline."""
        deadline = time.monotonic() + timeout
        value: Any = None
        while time.monotonic() < deadline:
            try:
                value = await self.evaluate(expression)
            except CDPError:
                value = None  # the page is between documents
            if value:
                return value
            await asyncio.sleep(0.1)
        raise CDPError(
            f"`{expression}` was still {value!r} after {timeout} s; requests: {self.requests}, "
            f"failures: {self.failures}, errors: {self.console_errors}"
        )

    async def click(self, selector: str, timeout: float = 10) -> None:
        """Click the first element matching ``selector``, once there is one."""
        await self.wait_for(
            f"(() => {{ const e = document.querySelector({json.dumps(selector)}); if (!e) return false; "
            "e.scrollIntoView(); e.click(); return true; })()",
            timeout,
        )

    async def type_into(self, selector: str, text: str, timeout: float = 10) -> None:
        """Focus the element matching ``selector``, once there is one, and type ``text`` as keyboard input."""
        await self.wait_for(
            f"(() => {{ const e = document.querySelector({json.dumps(selector)}); if (!e) return false; "
            "e.focus(); return document.activeElement === e; })()",
            timeout,
        )
        await self.send("Input.insertText", text=text)

    async def screenshot(self, path: Path, width: int = 1360) -> None:
        """A PNG of the whole page, ``width`` CSS pixels wide."""
        await self.send(
            "Emulation.setDeviceMetricsOverride", width=width, height=900, deviceScaleFactor=1, mobile=False
        )
        height = await self.evaluate("Math.ceil(document.documentElement.scrollHeight)")
        await self.send(
            "Emulation.setDeviceMetricsOverride", width=width, height=int(height), deviceScaleFactor=1, mobile=False
        )
        shot = await self.send("Page.captureScreenshot", format="png", captureBeyondViewport=True)
        path.write_bytes(base64.b64decode(shot["data"]))

    def outside(self, host: str = "127.0.0.1") -> list[str]:
        """The requests sent anywhere but ``host`` (``data:`` and ``blob:`` URLs stay in the browser;
        requests the page's policy blocked are never sent)."""
        return [
            url
            for url in self.requests
            if not url.startswith(("data:", "about:", "blob:"))
            and urlsplit(url).hostname != host
            and url not in self.blocked
        ]


class Browser:
    """A headless Chromium process and its DevTools connection."""

    def __init__(self, process: subprocess.Popen[bytes], ws: aiohttp.ClientWebSocketResponse) -> None:
        self.process = process
        self.ws = ws
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._pages: dict[str, Page] = {}
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for message in self.ws:
            if message.type is not aiohttp.WSMsgType.TEXT:
                break
            data = json.loads(message.data)
            if "id" in data:
                future = self._waiting.pop(data["id"], None)
                if future is not None and not future.done():
                    future.set_result(data)
            elif "method" in data:
                page = self._pages.get(data.get("sessionId", ""))
                if page is not None:
                    page.on_event(data["method"], data.get("params", {}))
        for future in self._waiting.values():
            if not future.done():
                future.set_exception(CDPError("the DevTools connection closed"))

    async def send(
        self, method: str, params: dict[str, Any] | None = None, session: str | None = None
    ) -> dict[str, Any]:
        ident = next(self._ids)
        message: dict[str, Any] = {"id": ident, "method": method, "params": params or {}}
        if session is not None:
            message["sessionId"] = session
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[ident] = future
        await self.ws.send_str(json.dumps(message))
        reply = await asyncio.wait_for(future, 30)
        if "error" in reply:
            raise CDPError(f"{method}: {reply['error']}")
        result: dict[str, Any] = reply.get("result", {})
        return result

    async def new_page(self) -> Page:
        target = await self.send("Target.createTarget", {"url": "about:blank"})
        attached = await self.send("Target.attachToTarget", {"targetId": target["targetId"], "flatten": True})
        page = Page(self, attached["sessionId"])
        self._pages[page.session] = page
        for domain in ("Network", "Page", "Runtime", "Log"):
            await page.send(f"{domain}.enable")
        return page


def _launch(executable: str, folder: Path) -> subprocess.Popen[bytes]:
    """Start Chromium with a new empty profile in ``folder``; its output goes to a file there."""
    with (folder / "chromium.log").open("wb") as log:
        return subprocess.Popen(
            [executable, *FLAGS, f"--user-data-dir={folder / 'profile'}", "about:blank"],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


async def _devtools_url(folder: Path, process: subprocess.Popen[bytes]) -> str:
    """The browser's DevTools WebSocket URL, from the file Chromium writes in its profile."""
    marker = folder / "profile" / "DevToolsActivePort"
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            output = (folder / "chromium.log").read_text(errors="replace")
            raise CDPError(f"Chromium exited with {process.returncode} at start:\n{output[-3000:]}")
        if marker.exists():
            lines = marker.read_text().split()
            if len(lines) == 2:
                return f"ws://127.0.0.1:{lines[0]}{lines[1]}"
        await asyncio.sleep(0.05)
    raise CDPError(f"Chromium did not open its DevTools port within {START_TIMEOUT} s")


@asynccontextmanager
async def chromium(executable: str) -> AsyncIterator[Browser]:
    """A headless Chromium with a new empty profile, stopped (and its profile removed) at the end."""
    folder = Path(tempfile.mkdtemp(prefix="framex-chromium-"))
    process = _launch(executable, folder)
    try:
        url = await _devtools_url(folder, process)
        async with aiohttp.ClientSession() as http, http.ws_connect(url, max_msg_size=0) as ws:
            browser = Browser(process, ws)
            try:
                yield browser
            finally:
                browser._reader.cancel()
    finally:
        _stop(process)
        shutil.rmtree(folder, ignore_errors=True)
