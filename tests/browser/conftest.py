"""Real-browser tests of the review console and the dashboard: the API served by uvicorn
on a free port (the real PostgreSQL, the real broker), driven by Playwright through the
Chromium of Debian's packages (Playwright's own browser download is not used).

- ``DEPDETECT_TEST_CHROMIUM``: the browser binary (default /usr/bin/chromium;
  `bash deploy/run-tests.sh` installs it). Missing, the tests fail, saying so.
- ``DEPDETECT_TEST_ARTIFACTS``: where screenshots go (default var/test-artifacts).
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest
import uvicorn
from playwright.async_api import Browser, BrowserContext, Page, async_playwright, expect

from depdetect.settings import REPO_ROOT, ConsoleSettings, Settings
from services.api.app import create_app

# The results API's fixtures (migrated database per test, tokens, rows, Kafka settings).
from tests.api.conftest import (  # noqa: F401
    api_database,
    api_template,
    insert_result,
    kafka_app_settings,
    sessions,
    settings,
    tag,
    token_for,
)

CHROMIUM = Path(os.environ.get("DEPDETECT_TEST_CHROMIUM", "/usr/bin/chromium"))
ARTIFACTS = Path(os.environ.get("DEPDETECT_TEST_ARTIFACTS", REPO_ROOT / "var" / "test-artifacts"))

# The CI machine is shared and slow at times: waiting longer than Playwright's 5 s default
# costs nothing when the page is right, and a wrong page still fails.
expect.set_options(timeout=20_000)


@pytest.fixture(scope="session")
def chromium_path() -> Path:
    if not CHROMIUM.exists():
        pytest.fail(
            f"Chromium is not at {CHROMIUM}: `bash deploy/run-tests.sh` installs it "
            "(apt-get install chromium), or set DEPDETECT_TEST_CHROMIUM to the binary",
            pytrace=False,
        )
    return CHROMIUM


@pytest.fixture(scope="session")
async def browser(chromium_path: Path) -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(chromium_path))
        try:
            yield browser
        finally:
            await browser.close()


@pytest.fixture
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def console_settings(kafka_app_settings: Settings) -> Settings:  # noqa: F811
    """The test's database and decision topic; k = 10 (the default) unless a test says."""
    return kafka_app_settings.model_copy(update={"console": ConsoleSettings()})


@pytest.fixture
def serve() -> Iterator[Callable[[Settings], str]]:
    """Starts the app under uvicorn in a thread; returns its base URL."""
    servers: list[tuple[uvicorn.Server, threading.Thread]] = []

    def start(app_settings: Settings) -> str:
        port = _free_port()
        app = create_app(app_settings, relay_interval_s=5.0)
        server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
        )
        thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
        thread.start()
        deadline = time.monotonic() + 30
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the API did not start")
            time.sleep(0.05)
        servers.append((server, thread))
        return f"http://127.0.0.1:{port}"

    yield start
    for server, thread in servers:
        server.should_exit = True
        thread.join(timeout=30)


@pytest.fixture
async def new_context(browser: Browser) -> AsyncIterator[Callable[[], Awaitable[BrowserContext]]]:
    contexts: list[BrowserContext] = []

    async def make() -> BrowserContext:
        context = await browser.new_context(viewport={"width": 1200, "height": 900})
        context.set_default_timeout(20_000)
        contexts.append(context)
        return context

    yield make
    for context in contexts:
        await context.close()


async def sign_in_with_keyboard(page: Page, base_url: str, token: str) -> None:
    """Open the sign-in page, type the token and press Enter: no mouse."""
    await page.goto(f"{base_url}/console")
    # The field has autofocus, but Chromium applies it at a rendering step that can come
    # after `goto` returns on a loaded machine: keys typed before then are lost (CI saw a
    # truncated token). Waiting for the focus also checks that autofocus is there.
    await expect(page.get_by_label("API token")).to_be_focused()
    await page.keyboard.type(token)
    async with page.expect_navigation():
        await page.keyboard.press("Enter")
