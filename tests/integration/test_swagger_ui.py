"""``/api/docs`` in a real headless Chromium: the page renders from local assets, lists
the operations, and "Try it out" on a public endpoint gets a 200.

Uses Debian's /usr/bin/chromium (``make system`` installs it) through Playwright's
Python package, without ``playwright install``.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import async_playwright

pytestmark = pytest.mark.integration

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOT = Path("/tmp/planboard-swagger-ui.png")


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="chromium missing: run `make system`")
async def test_swagger_ui_lists_operations_and_tries_one(client: Any, tmp_path: Path) -> None:
    url = str(client.make_url("/api/docs"))
    origin = str(client.make_url("/"))
    requests_seen: list[str] = []
    console_errors: list[str] = []
    async with async_playwright() as pw:
        context = await pw.chromium.launch_persistent_context(
            str(tmp_path / "profile"),  # a fresh --user-data-dir
            executable_path=CHROMIUM,
            headless=True,
            args=FLAGS,
            viewport={"width": 1280, "height": 2000},
        )
        try:
            page = await context.new_page()
            page.on("request", lambda request: requests_seen.append(request.url))
            page.on(
                "console",
                lambda message: (
                    console_errors.append(message.text) if message.type == "error" else None
                ),
            )
            response = await page.goto(url, wait_until="networkidle")
            assert response is not None
            assert response.status == 200
            assert "default-src 'none'" in response.headers["content-security-policy"]

            await page.wait_for_selector(".opblock", timeout=30_000)
            assert "Planboard API" in await page.locator(".info .title").inner_text()
            paths = await page.locator(".opblock-summary-path").all_inner_texts()
            assert any("/api/v1/projects/{project_id}/tasks" in p for p in paths), paths
            assert any("/healthz" in p for p in paths), paths
            assert len(paths) >= 60, len(paths)

            # Try it out: GET /healthz (public) → 200 with {"status": "ok"}.
            block = page.locator("#operations-ops-healthz")
            await block.locator(".opblock-summary").click()
            await block.locator("button.try-out__btn").click()
            await block.locator("button.execute").click()
            status = block.locator(".live-responses-table .response .response-col_status")
            await status.first.wait_for(timeout=30_000)
            assert (await status.first.inner_text()).strip().startswith("200")
            body = await block.locator(".live-responses-table .microlight").first.inner_text()
            assert '"ok"' in body
            await page.screenshot(path=str(SCREENSHOT), full_page=False)
        finally:
            await context.close()

    # Every asset came from the API itself (no CDN), and none was blocked by the CSP.
    outside = [u for u in requests_seen if not u.startswith(origin) and not u.startswith("data:")]
    assert not outside, outside
    assert not [e for e in console_errors if "Content Security Policy" in e], console_errors


async def test_docs_paths_get_a_relaxed_csp_and_the_api_keeps_the_strict_one(client: Any) -> None:
    docs = await client.get("/api/docs")
    assert docs.status == 200
    assert "script-src 'self'" in docs.headers["Content-Security-Policy"]
    asset = await client.get("/api/docs/static/swagger-ui-bundle.js")
    assert asset.status == 200
    assert "script-src 'self'" in asset.headers["Content-Security-Policy"]
    for path in ("/healthz", "/api/openapi.json", "/api/v1/auth/me", "/api/docsX"):
        response = await client.get(path)
        assert response.headers["Content-Security-Policy"] == (
            "default-src 'none'; frame-ancestors 'none'; base-uri 'none'"
        ), path
