"""Browser tests: Playwright (sync API) driving Debian's Chromium against `live_server`.

No browser is ever downloaded: the tests use /usr/bin/chromium and are skipped without it.
One browser serves the whole session; every test gets fresh contexts (cookies, storage).
"""

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

# Playwright's sync API runs an event loop in the test thread; Django's ORM would otherwise
# refuse to run there (SynchronousOnlyOperation).
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
# Bind the live server to the IPv4 loopback, the only network this machine has.
os.environ.setdefault("DJANGO_LIVE_TEST_SERVER_ADDRESS", "127.0.0.1")

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PASSWORD = "e2e-Secret-pass-42"
DEFAULT_TIMEOUT_MS = 10_000
HERE = Path(__file__).parent
SKIP_REASON = f"browser tests need Chromium at {CHROMIUM} (no browser is downloaded)"

try:
    from playwright.sync_api import Browser, Page, expect, sync_playwright
except ImportError:  # pragma: no cover - the dev extra installs it
    sync_playwright = None  # type: ignore[assignment]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip every test of this folder, before any database or server is set up."""
    reason = (
        SKIP_REASON
        if not CHROMIUM.exists()
        else ("the playwright package is not installed" if sync_playwright is None else None)
    )
    if reason is None:
        return
    for item in items:
        if HERE in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix: None) -> None:
    """A test database of its own (test_<name>_e2e), so that a browser run does not collide
    with another test run using the default test database at the same time."""
    from django.conf import settings

    for db_settings in settings.DATABASES.values():
        test = db_settings.setdefault("TEST", {})
        test["NAME"] = (test.get("NAME") or f"test_{db_settings['NAME']}") + "_e2e"


@pytest.fixture(scope="session")
def browser() -> Iterator["Browser"]:
    if not CHROMIUM.exists() or sync_playwright is None:
        pytest.skip(SKIP_REASON)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        expect.set_options(timeout=DEFAULT_TIMEOUT_MS)
        yield browser
        browser.close()


@pytest.fixture
def new_page(browser: "Browser", live_server) -> Iterator[Callable[..., "Page"]]:
    """`new_page(**context_options)`: a page in a fresh browser context (its own cookies),
    with `base_url` set to the live server. Every context is closed after the test."""
    contexts = []
    refused: list[str] = []

    def make(**options) -> "Page":
        context = browser.new_context(base_url=live_server.url, **options)
        context.set_default_timeout(DEFAULT_TIMEOUT_MS)
        contexts.append(context)
        page = context.new_page()
        # Every browser test also checks the pages' Content-Security-Policy: nothing a page
        # of Baton needs may be refused by it.
        page.on(
            "console",
            lambda message: (
                refused.append(message.text)
                if "Content Security Policy" in message.text or "evalDisallowed" in message.text
                else None
            ),
        )
        return page

    yield make
    for context in contexts:
        context.close()
    assert refused == [], "the Content-Security-Policy refused: " + "; ".join(refused)


@pytest.fixture
def page(new_page) -> "Page":
    return new_page()


@pytest.fixture
def with_password() -> Callable:
    """Give a user the known password `PASSWORD` (with `set_password`)."""

    def give(user):
        user.set_password(PASSWORD)
        user.save(update_fields=["password"])
        return user

    return give


def login(page: "Page", user, password: str = PASSWORD) -> None:
    """Log in through /accounts/login/ as a person would; ends on the page after login."""
    page.goto("/accounts/login/")
    page.locator("#id_username").fill(user.get_username())
    page.locator("#id_password").fill(password)
    page.locator("form.login button[type=submit]").click()
    expect(page.get_by_role("button", name="Log out")).to_be_visible()
