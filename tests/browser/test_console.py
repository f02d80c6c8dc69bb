"""The console page in headless Chromium with the network disabled: it lists the plugins, shows
non-zero figures and sparklines once requests were served, says when metrics are off, and asks
for a key when `auth.rules` protect its data."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from tests.browser.cdp import Browser, Page
from tests.browser.conftest import serve

pytestmark = pytest.mark.browser


def cell(row: str, figure: str) -> str:
    """A JavaScript expression: the text of one figure of one row of the page."""
    return f"document.querySelector({json.dumps(f'{row} [data-figure={figure!r}]')})?.innerText"


async def names(page: Page) -> list[str]:
    found: list[str] = await page.evaluate(
        "[...document.querySelectorAll('article.plugin')].map(e => e.dataset.plugin)"
    )
    return found


async def test_console_shows_the_plugins_and_live_figures(browser: Browser, tmp_path: Path) -> None:
    with serve(tmp_path, metrics={"enabled": True}, console={"interval_s": 1}) as server:
        page = await browser.new_page()
        await page.goto(f"{server.url}/console")
        await page.wait_for("document.querySelectorAll('article.plugin').length === 4")
        assert await names(page) == ["echo", "demo", "greeter", "console_probe"]
        probe = "article.plugin[data-plugin='console_probe']"
        head = await page.evaluate(f'document.querySelector("{probe} .plugin-head").innerText')
        assert "v3.1.4" in head and "by Probe Team" in head
        assert await page.evaluate(f'document.querySelector("{probe} .plugin-head a").href') == (
            "https://example.invalid/console-probe"
        )
        assert await page.evaluate(cell(f"{probe} tr[data-api='console_probe.ok']", "requests")) == "0"

        async with httpx.AsyncClient(base_url=server.url) as client:
            for x in range(5):
                assert (await client.get("/api/v1/console_probe/ok", params={"x": x})).status_code == 200
            for _ in range(2):
                assert (await client.get("/api/v1/console_probe/fail")).status_code == 500

        ok = f"{probe} tr[data-api='console_probe.ok']"
        await page.wait_for(f"{cell(ok, 'requests')} === '5'", timeout=15)
        assert (await page.evaluate(cell(ok, "p50"))).endswith("ms")
        failing = f"{probe} tr[data-api='console_probe.failing']"
        assert await page.evaluate(cell(failing, "errors")) == "2"
        double = f"{probe} tr[data-remote='tests.fixture_plugins.console_probe.Tools.double']"
        assert await page.evaluate(cell(double, "requests")) == "5"  # the calls column
        # The sparkline gets its points once the interval with the requests has been sampled.
        await page.wait_for(f'+document.querySelector("{ok} svg.spark").dataset.points > 0', timeout=15)
        assert int(await page.evaluate("document.querySelector('[data-figure=requests]').innerText")) >= 7
        assert await page.evaluate("document.querySelector('[data-pool]').innerText") != ""
        await page.screenshot(tmp_path / "console.png")
    assert page.requests and page.outside() == [] and page.blocked == []
    assert page.failures == [] and page.console_errors == []


async def test_console_asks_for_a_key_and_says_when_metrics_are_off(browser: Browser, tmp_path: Path) -> None:
    with serve(tmp_path, auth={"rules": {"/console/api/*": ["console-key"]}}) as server:
        page = await browser.new_page()
        await page.goto(f"{server.url}/console")
        await page.wait_for("!document.getElementById('key-form').hidden")
        assert await names(page) == []
        await page.type_into("#key-input", "wrong-key")
        await page.click("#key-form button")
        await page.wait_for("document.getElementById('key-label').innerText.includes('refused')")
        await page.type_into("#key-input", "console-key")
        await page.click("#key-form button")
        await page.wait_for("document.querySelectorAll('article.plugin').length === 4")
        notice = await page.evaluate("document.getElementById('notice').innerText")
        row = await page.evaluate("document.querySelector(\"tr[data-api='console_probe.ok']\").innerText")
    assert "Metrics are off" in notice and "metrics.enabled: true" in notice
    assert "metrics off" in row
    assert page.outside() == []
