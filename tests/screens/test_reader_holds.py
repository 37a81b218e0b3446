"""A book on hold for someone else, then its pickup, through the session page (Chromium, real
server, ILS simulator, a camera cabinet): the reader who takes the held book is told in plain
words that it is reserved for another reader and to put it back (and how she can reserve it);
the reader who holds it finds her door opened for her, named on the screen."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from kiosk.messages import message
from lendbox.network_story import NetworkStory

from .network_reader import Cabinet, camera_cabinet, register, show_qr_and_wait_for_session
from .reader_kit import assert_axe_clean, door_is_open, until


@pytest.fixture(scope="module")
def cam(network: NetworkStory) -> Iterator[Cabinet]:
    with camera_cabinet(network, "sz-city-0023", 2303) as cab:
        yield cab


def test_held_book_is_refused_to_another_then_picked_up(page: Any, cam: Cabinet,
                                                        network: NetworkStory,
                                                        shots: Any) -> None:
    assert cam.kiosk is not None and network.api is not None and network.server is not None
    url = cam.kiosk.url.rstrip("/")
    holder = register(network, "郑一", 51)
    other = register(network, "王二", 52)
    book = str(cam.sim.door_items(1)[0].item_id)
    placed = httpx.post(network.server.url + "/api/readers/me/holds", timeout=10,
                        headers={"Authorization": f"Bearer {holder.token}"},
                        json={"item_id": book, "pickup_cabinet_id": cam.id})
    assert placed.status_code == 201, placed.text
    title = network.api.get(f"/api/items/{book}").json()["title"]
    client = cam.client()
    try:  # the cabinet learns of the hold at its next sync
        until(lambda: any(it["item_id"] == book and it["on_hold"]
                          for d in client.doors() for it in d["items"]), 20, "the hold")
    finally:
        client.close()

    # another reader takes it: refused, in plain words, with what to do
    page.goto(url + "/screen/borrow")
    show_qr_and_wait_for_session(page, cam.sim, other.qr())
    page.click("#choose")
    page.wait_for_url("**/screen/doors")
    page.click("#open-1")
    page.wait_for_url("**/screen/session")
    until(lambda: door_is_open(cam.sim, 1), 15, "door 1 to open")
    cam.sim.take_item(book)
    cam.sim.close_door(1)
    notice = page.locator('.notices [data-key="borrow.put_back"]')
    notice.wait_for(timeout=20000)
    text = notice.inner_text()
    assert title in text and message("item.hold_for_other", "zh") in text
    assert "1号门" in text
    assert page.get_attribute(".notices", "role") == "alert"
    page.screenshot(path=str(shots / "reader-put-back-zh-1080x1920.png"))
    assert_axe_clean(page)
    until(lambda: door_is_open(cam.sim, 1), 10, "door 1 to re-open")
    cam.sim.put_item(book, 1)
    cam.sim.close_door(1)
    page.wait_for_selector("#finish", timeout=20000)
    until(lambda: page.locator('.notices [data-key="borrow.put_back"]').count() == 0, 20,
          "the notice to go once the book is back")
    assert page.locator(f'.borrowed li[data-item="{book}"]').count() == 0
    page.click("#finish")
    page.wait_for_url("**/screen/receipt")
    assert page.inner_text("main").count(message("screen.receipt_nothing", "zh")) == 1
    page.click("#end")
    page.wait_for_url(url + "/")

    # the reader who holds it: her door opens by itself and the screen says which
    client = cam.client()
    try:
        client.wait_idle(20)
    finally:
        client.close()
    page.goto(url + "/?lang=en")  # straight from the idle page: the camera starts it all
    cam.sim.show_qr(holder.qr())
    try:
        page.wait_for_selector('.door-open.hold[data-door="1"]', timeout=20000)
    finally:
        cam.sim.clear_camera()
    assert page.url.endswith("/screen/session")
    assert page.inner_text(".door-open.hold") == message("screen.hold_door", "en", {"door": 1})
    page.screenshot(path=str(shots / "reader-hold-pickup-en-1080x1920.png"))
    assert_axe_clean(page)
    until(lambda: door_is_open(cam.sim, 1), 15, "door 1 to open")
    cam.sim.take_item(book)
    cam.sim.close_door(1)
    page.wait_for_selector(f'.borrowed li[data-item="{book}"]', timeout=20000)
    assert page.inner_text(f'.borrowed li[data-item="{book}"] .book-title') == title
    page.click("#finish")
    page.wait_for_url("**/screen/receipt")
