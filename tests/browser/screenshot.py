"""Take the console screenshot in docs/console.md: `python -m tests.browser.screenshot docs/console.png`.

Serves this repository's plugins with metrics on (latency sampled every second, a one-minute
window), sends a bounded mix of requests for about half a minute, and captures the page in
headless Chromium with the network disabled.
"""

from __future__ import annotations

import asyncio
import random
import sys
import tempfile
import time
from pathlib import Path

import httpx

from tests.browser.cdp import chromium, find_chromium
from tests.browser.conftest import serve

SECONDS = 30.0
REQUESTS = [
    ("/api/v1/console_probe/ok", 0.5),
    ("/api/v1/demo/run?x=21", 0.2),
    ("/api/v1/greeter/hello?name=Ada", 0.15),
    ("/api/v1/echo?message=hi", 0.1),
    ("/api/v1/console_probe/fail", 0.05),
]


async def traffic(url: str) -> int:
    """A bounded mix of requests for :data:`SECONDS`; returns how many were sent."""
    paths, weights = zip(*REQUESTS, strict=True)
    sent = 0
    deadline = time.monotonic() + SECONDS
    async with httpx.AsyncClient(base_url=url) as client:
        while time.monotonic() < deadline and sent < 5000:
            burst = random.choices(paths, weights, k=random.randint(1, 8))
            await asyncio.gather(*(client.get(path) for path in burst))
            sent += len(burst)
            await asyncio.sleep(random.uniform(0.05, 0.3))
    return sent


async def main(target: Path) -> None:
    executable = find_chromium()
    if executable is None:
        raise SystemExit("Chromium is not installed: `apt-get install -y chromium`.")
    with tempfile.TemporaryDirectory() as folder:
        settings = {"metrics": {"enabled": True}, "console": {"interval_s": 1, "history_minutes": 1}}
        with serve(Path(folder), **settings) as server:
            sent = await traffic(server.url)
            async with chromium(executable) as browser:
                page = await browser.new_page()
                await page.goto(f"{server.url}/console")
                await page.wait_for("document.body.dataset.loaded === 'true'")
                await page.screenshot(target)
                if page.outside():
                    raise SystemExit(f"the page requested {page.outside()}")
    print(f"{target}: the console after {sent} requests")


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/console.png")))
