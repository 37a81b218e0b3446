"""Everything a screen needs comes from lendbox itself: a cabinet has no network beyond
localhost, so a CDN script, a web font or an image from elsewhere would leave a blank or
broken screen. The browser records every request of each main page; all go to the server
that served the page."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from lendbox.network_story import NetworkStory

from .conftest import Cabinet

KIOSK_PAGES = ["/", "/?lang=en&contrast=high&text=large", "/screen/borrow", "/screen/doors",
               "/screen/doors?accessible=1", "/tech/login"]
CONSOLE_PAGES = ["/console/login", "/console/login?lang=en"]


def _requests_of(page: Any, base: str, paths: list[str]) -> list[str]:
    seen: list[str] = []
    page.on("request", lambda r: seen.append(r.url))
    for path in paths:
        response = page.goto(base + path)
        assert response is not None and response.status == 200, path
        page.wait_for_load_state("networkidle")
    return seen


def _foreign(urls: list[str], base: str) -> list[str]:
    origin = urlsplit(base)
    return [u for u in urls if urlsplit(u).scheme not in ("data", "blob")
            and (urlsplit(u).hostname, urlsplit(u).port) != (origin.hostname, origin.port)]


def test_the_touchscreen_and_technician_pages_load_nothing_from_elsewhere(
        page: Any, cabinet: Cabinet) -> None:
    urls = _requests_of(page, cabinet.url, KIOSK_PAGES)
    assert any(u.endswith(".css") for u in urls)  # the pages' own assets were requested
    assert _foreign(urls, cabinet.url) == []


def test_the_console_loads_nothing_from_elsewhere(page: Any, network: NetworkStory) -> None:
    assert network.server is not None
    base = network.server.url.rstrip("/")
    urls = _requests_of(page, base, CONSOLE_PAGES)
    assert any(u.endswith(".css") for u in urls)
    assert _foreign(urls, base) == []
