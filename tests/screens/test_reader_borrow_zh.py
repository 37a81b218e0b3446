"""Borrow with a QR code end to end in Chinese, against the real server, ILS simulator and a
kiosk on the simulator (Chromium): door open → the borrowed title → its due date → a receipt
whose QR code decodes to the receipt's text → a one-tap rating that reaches the server's
satisfaction statistics. Then she brings the book back without signing in and the screen
names it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from kiosk.messages import message
from lendbox.network_story import NetworkStory

from .network_reader import (
    Cabinet,
    borrow_through_the_screen,
    camera_cabinet,
    register,
    show_qr_and_wait_for_session,
)
from .reader_kit import assert_axe_clean, big_targets, decode_qr, door_is_open, until


def _satisfaction(network: NetworkStory, cabinet_id: str) -> dict[str, Any]:
    assert network.api is not None
    tables = network.api.get("/api/reports/stats").json()["tables"]
    return next((r for r in tables["satisfaction"] if r["cabinet_id"] == cabinet_id),
                {"ratings": 0, "satisfied": 0})


@pytest.fixture(scope="module")
def cam(network: NetworkStory) -> Iterator[Cabinet]:
    with camera_cabinet(network, "sz-city-0021", 2101) as cab:
        yield cab


def test_borrow_with_qr_receipt_rating_and_return(page: Any, network: NetworkStory,
                                                   cam: Cabinet, shots: Any) -> None:
    a = cam
    assert a.kiosk is not None and network.api is not None
    url = a.kiosk.url.rstrip("/")
    reader = register(network, "吴十", 31)
    before = _satisfaction(network, a.id)

    page.goto(url + "/")
    page.click("#borrow")
    page.wait_for_url("**/screen/borrow")
    show_qr_and_wait_for_session(page, a.sim, reader.qr())
    assert page.get_attribute("html", "lang") == "zh-CN"
    for link in ("#loans", "#holds", "#recommend"):  # the reader's services, once identified
        assert page.locator(link).count() == 1
    page.screenshot(path=str(shots / "reader-session-zh-1080x1920.png"))
    assert_axe_clean(page)
    book, due = borrow_through_the_screen(page, a.sim, "zh", door=2)
    item = network.api.get(f"/api/items/{book}").json()
    title = page.inner_text(f'.borrowed li[data-item="{book}"] .book-title')
    assert title == item["title"] and title  # the catalogue's title, from the cabinet's cache
    page.screenshot(path=str(shots / "reader-borrowed-zh-1080x1920.png"))
    assert_axe_clean(page)

    page.click("#finish")
    page.wait_for_url("**/screen/receipt")
    assert page.inner_text("h1") == message("screen.receipt", "zh")
    receipt = page.inner_text("#receipt-text")
    assert title in receipt and due in receipt
    png = page.locator(".receipt-qr .qr").screenshot()
    page.screenshot(path=str(shots / "reader-receipt-zh-1080x1920.png"), full_page=True)
    assert decode_qr(png) == [receipt]
    assert_axe_clean(page)
    assert big_targets(page) == []

    page.click("#rate-5")  # 很满意
    page.wait_for_selector("#rated")
    assert page.inner_text("#rated") == message("screen.rate_thanks", "zh")
    assert page.locator("#rate-4").count() == 0  # one rating per visit
    after = until(lambda: (s := _satisfaction(network, a.id))["ratings"] > before["ratings"]
                  and s, 20, "the rating to reach the server")
    assert after["ratings"] == before["ratings"] + 1
    assert after["satisfied"] == before["satisfied"] + 1
    assert network.api.get(f"/api/items/{book}").json()["due"] == due

    # she brings it back, without signing in: the screen names the book it recognised
    page.click("#end")
    page.wait_for_url(url + "/")
    page.click("#return")
    page.wait_for_url("**/screen/return")
    door = int(page.get_attribute(".door-open", "data-door"))
    until(lambda: door_is_open(a.sim, door), 15, f"door {door} to open")
    a.sim.put_item(book, door)
    a.sim.close_door(door)
    page.wait_for_selector(f'.returned li[data-item="{book}"]', timeout=20000)
    assert page.inner_text(f'.returned li[data-item="{book}"] .book-title') == title
    assert page.inner_text("[role=status]") == message("return.done", "zh")
    page.screenshot(path=str(shots / "reader-return-zh-1080x1920.png"))
    assert_axe_clean(page)
