"""`/docs` and `/redoc` in headless Chromium with the network disabled: they render, and every
request they make stays on 127.0.0.1."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from tests.browser.cdp import Browser, CDPError, Page
from tests.browser.conftest import serve

pytestmark = pytest.mark.browser


async def test_swagger_ui_renders_the_operations_and_plugin_tags_offline(browser: Browser, tmp_path: Path) -> None:
    with serve(tmp_path) as server:
        page = await browser.new_page()
        await page.goto(f"{server.url}/docs")
        operations = await page.wait_for("document.querySelectorAll('.opblock').length")
        tags = await page.evaluate("[...document.querySelectorAll('.opblock-tag')].map(e => e.dataset.tag)")
        probe = await page.evaluate(
            "document.querySelector('.opblock-tag[data-tag=\"console_probe\"]').parentElement.innerText"
        )
        favicon = await page.evaluate("document.querySelector('link[rel~=icon]').href")
        async with httpx.AsyncClient() as client:
            documented = (await client.get(f"{server.url}/api/v1/openapi.json")).json()["paths"]
    assert operations == sum(len(item) for item in documented.values())
    assert tags[:5] == ["echo", "demo", "greeter", "console_probe", "service"]
    assert "Shows itself on the console." in probe and "Version 3.1.4" in probe and "Probe Team" in probe
    assert "console_probe documentation" in probe  # externalDocs
    assert favicon.startswith("data:image/svg+xml")
    assert page.requests and page.outside() == []
    assert page.failures == [] and page.console_errors == []


async def test_redoc_renders_offline(browser: Browser, tmp_path: Path) -> None:
    with serve(tmp_path) as server:
        page = await browser.new_page()
        await page.goto(f"{server.url}/redoc")
        await page.wait_for("document.querySelectorAll('[data-section-id^=\"operation/\"]').length > 10", timeout=30)
        text = await page.evaluate("document.body.innerText")
    assert "Shows itself on the console." in text and "/api/v1/demo/run" in text
    assert page.outside() == [] and page.failures == []


RUN = "#operations-demo-demo_run_job_api_v1_demo_run_get"
STATUS = f"document.querySelector('{RUN} .live-responses-table tr.response .response-col_status')?.innerText"


async def execute(page: Page, expected: str, timeout: float = 20) -> str:
    """Click "Execute" until Swagger UI shows a response whose status starts with ``expected``.

    Swagger UI takes a typed value after a short debounce (until then it refuses to send the
    request), and the response of an earlier click may still be shown: the click is repeated.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        await page.click(f"{RUN} .execute")
        try:
            await page.wait_for(f"({STATUS} || '').trim().startsWith({expected!r})", timeout=1)
        except CDPError:
            continue
        status: str = await page.evaluate(STATUS)
        return status.strip()
    shown = await page.evaluate(STATUS)
    raise CDPError(f"Swagger UI showed no {expected} response within {timeout} s (it shows {shown!r})")


async def test_authorize_sends_the_key_on_try_it_out(browser: Browser, tmp_path: Path) -> None:
    with serve(tmp_path, auth={"rules": {"/api/v1/demo/*": ["demo-key"]}}) as server:
        page = await browser.new_page()
        await page.goto(f"{server.url}/docs")
        await page.wait_for(f"!!document.querySelector('{RUN}')")
        await page.click(f"{RUN} .opblock-summary-control")
        await page.click(f"{RUN} .try-out__btn")
        await page.type_into(f"{RUN} tr[data-param-name='x'] input", "21")
        refused = await execute(page, "401")

        await page.click(".auth-wrapper .authorize")
        await page.type_into(".modal-ux input", "demo-key")
        await page.click(".modal-ux .auth-btn-wrapper button[type=submit]")
        await page.click(".modal-ux .btn-done")
        answered = await execute(page, "200")
        body = await page.evaluate(
            f"document.querySelector('{RUN} .live-responses-table tr.response .response-col_description').innerText"
        )
    assert refused.startswith("401")
    assert answered.startswith("200") and '"data": 42' in body
    assert page.outside() == []
