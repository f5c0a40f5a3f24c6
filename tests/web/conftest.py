"""Fixtures of the real-browser tests: one Chromium and one deployment (server with 1,000
events, the customer's site on another origin) per module; a fresh page per test, whose
console errors and CSP violations fail the test."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser

from tests.web.harness import Deployment, Watched, chromium, csp_violations, deployment, open_page


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    # Module scope, not session: Playwright's sync API keeps an event loop running in this
    # thread while the browser is open, and anyio tests cannot start their own loop beside it.
    with chromium() as b:
        yield b


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    with deployment(tmp_path_factory.mktemp("web"), 1000) as d:
        yield d


@pytest.fixture
def open_timeline(browser: Browser, deployed: Deployment) -> Iterator[Callable[..., Watched]]:
    """Open the customer's page embedding the timeline (attributes as keyword arguments;
    token, endpoint and log-key default to the deployment's). After the test, the page must
    have logged no error and no CSP violation."""
    opened: list[Watched] = []

    def open_(*, origin: str | None = None, **attrs: Any) -> Watched:
        attrs.setdefault("token", deployed.read_key)
        attrs.setdefault("endpoint", deployed.server.url)
        attrs.setdefault("log_key", deployed.log_key)
        path = deployed.host.page(**attrs)
        watched = open_page(browser, (origin or deployed.host.origin) + path)
        opened.append(watched)
        return watched

    yield open_
    for watched in opened:
        if not watched.expect_errors:
            assert watched.errors == [], watched.errors
            assert csp_violations(watched) == []
        watched.page.context.close()
