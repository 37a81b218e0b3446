"""Borrow with a QR code in English and high contrast (Chromium, real server, ILS simulator,
a camera cabinet), and a blocked reader's refusal in plain words with what to do next.
Landscape screenshots (1920×1080) of the main pages."""

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
from .reader_kit import assert_axe_clean, decode_qr, until


@pytest.fixture(scope="module")
def cam(network: NetworkStory) -> Iterator[Cabinet]:
    with camera_cabinet(network, "sz-city-0022", 2202) as cab:
        yield cab


def test_borrow_with_qr_in_english_high_contrast(page: Any, cam: Cabinet, network: NetworkStory,
                                                 shots: Any) -> None:
    assert cam.kiosk is not None
    url = cam.kiosk.url.rstrip("/")
    reader = register(network, "Li Lei", 41)
    page.set_viewport_size({"width": 1920, "height": 1080})
    page.goto(url + "/?lang=en&contrast=high")
    page.click("#borrow")
    page.wait_for_url("**/screen/borrow")
    assert page.inner_text("h1") == message("screen.identify", "en")
    page.screenshot(path=str(shots / "reader-identify-en-high-contrast-1920x1080.png"))
    assert_axe_clean(page, enhanced_contrast=True)
    show_qr_and_wait_for_session(page, cam.sim, reader.qr())
    assert page.get_attribute("html", "lang") == "en"
    assert_axe_clean(page, enhanced_contrast=True)
    page.click("#choose")
    page.wait_for_url("**/screen/doors")
    assert page.inner_text("h1") == message("screen.doors", "en")
    page.screenshot(path=str(shots / "reader-choose-door-en-high-contrast-1920x1080.png"))
    assert_axe_clean(page, enhanced_contrast=True)
    page.go_back()
    page.wait_for_url("**/screen/session")
    book, due = borrow_through_the_screen(page, cam.sim, "en", door=2)
    page.screenshot(path=str(shots / "reader-borrowed-en-high-contrast-1920x1080.png"))
    assert_axe_clean(page, enhanced_contrast=True)
    page.click("#finish")
    page.wait_for_url("**/screen/receipt")
    receipt = page.inner_text("#receipt-text")
    assert receipt.splitlines()[1].endswith(f"({book}) due {due}")
    assert decode_qr(page.locator(".receipt-qr .qr").screenshot()) == [receipt]
    page.screenshot(path=str(shots / "reader-receipt-en-high-contrast-1920x1080.png"))
    assert_axe_clean(page, enhanced_contrast=True)
    page.click("#end")
    page.wait_for_url(url + "/")
    assert page.get_attribute("html", "lang") == "zh-CN"  # the next reader starts in Chinese


def test_a_blocked_reader_is_told_why_and_what_to_do(page: Any, cam: Cabinet,
                                                     network: NetworkStory, shots: Any) -> None:
    assert cam.kiosk is not None and network.api is not None
    url = cam.kiosk.url.rstrip("/")
    client = cam.client()
    try:
        client.wait_idle(20)
    finally:
        client.close()
    reader = register(network, "Han Meimei", 42)
    qr = reader.qr()  # on her phone before the library blocked her card
    got = network.api.post(f"/api/readers/{reader.reader_id}/block",
                           json={"reason": "lost card reported"})
    assert got.status_code < 300, got.text
    page.goto(url + "/screen/borrow?lang=en")
    cam.sim.show_qr(qr)
    try:
        page.wait_for_selector("#refusal", timeout=20000)
    finally:
        cam.sim.clear_camera()
    assert page.get_attribute("#refusal", "data-reason") == "refused.blocked"
    assert page.inner_text("#refusal") == message("refused.blocked", "en")
    assert "contact the library" in page.inner_text("#refusal")
    assert message("screen.refused_next", "en", {"help_line": "0755-12345678"}) in \
        page.inner_text(".refusal")
    until(lambda: page.url.endswith("/screen/borrow"), 15, "the identify page")
    page.screenshot(path=str(shots / "reader-refused-blocked-en-1920x1080.png"))
    assert_axe_clean(page)
    page.goto(url + "/screen/borrow?contrast=high&lang=zh")
    assert page.inner_text("#refusal") == message("refused.blocked", "zh")
    assert_axe_clean(page, enhanced_contrast=True)
