"""The reader's journeys on a stand-alone cabinet (no server), in Debian's Chromium: the
identify page and a refused card with its reason and next step, and browsing the doors
(accessible doors first). axe-core on every page, zh/en/high contrast.
"""

from __future__ import annotations

from typing import Any

from kiosk.messages import message

from .conftest import Cabinet
from .reader_kit import assert_axe_clean, big_targets, door_is_open, until


def test_identify_page_and_a_refused_card_says_why_and_what_next(page: Any, cabinet: Cabinet,
                                                                  shots: Any) -> None:
    cabinet.client.wait_idle()
    page.goto(cabinet.url + "/")
    page.click("#borrow")
    page.wait_for_url("**/screen/borrow")
    assert page.inner_text("h1") == message("screen.identify", "zh")
    assert message("screen.identify_qr", "zh") in page.inner_text("main")
    page.screenshot(path=str(shots / "reader-identify-zh-1080x1920.png"))
    assert_axe_clean(page)
    assert big_targets(page) == []
    # no card with her: she types the number (this cabinet has never seen it, and is offline)
    page.fill("#card", "0123456789")
    page.keyboard.press("Enter")
    page.wait_for_selector("#refusal")
    assert page.inner_text("#refusal") == message("refused.unknown_offline", "zh")
    alert = page.inner_text("[role=alert]")
    assert message("screen.refused_next", "zh", {"help_line": "0755-12345678"}) in alert
    assert page.get_attribute("#refusal", "data-reason") == "refused.unknown_offline"
    assert cabinet.client.state()["session"] is None
    assert_axe_clean(page)
    page.set_viewport_size({"width": 1920, "height": 1080})
    page.screenshot(path=str(shots / "reader-refused-zh-1920x1080.png"))
    # the same in English and in high contrast
    page.goto(cabinet.url + "/screen/borrow?lang=en&contrast=high")
    assert page.inner_text("h1") == message("screen.identify", "en")
    page.fill("#card", "0123456789")
    page.click("#card-go")
    page.wait_for_selector("#refusal")
    assert page.inner_text("#refusal") == message("refused.unknown_offline", "en")
    assert_axe_clean(page, enhanced_contrast=True)
    page.screenshot(path=str(shots / "reader-refused-en-high-contrast-1920x1080.png"))


def test_browse_doors_and_accessible_doors_first(page: Any, cabinet: Cabinet, shots: Any) -> None:
    doors = cabinet.client.doors()
    page.goto(cabinet.url + "/screen/doors")
    shown = [int(x) for x in page.eval_on_selector_all(".door", "els => els.map(e => e.dataset.door)")]
    assert shown == [d["door"] for d in doors]
    for d in doors:
        section = page.locator(f'.door[data-door="{d["door"]}"]')
        assert section.locator(".spine").count() == d["count"]
        assert message("screen.door_count", "zh", {"count": d["count"]}) in section.inner_text()
    # nobody signed in: no door can be opened from here, the page says what to do first
    assert page.locator("form.open-form").count() == 0
    assert message("screen.sign_in_first", "zh") in page.inner_text(".note")
    page.screenshot(path=str(shots / "reader-doors-zh-1080x1920.png"), full_page=True)
    assert_axe_clean(page)
    page.click("#accessible")
    page.wait_for_url("**accessible=1")
    accessible = [d["door"] for d in doors if d["accessible"]]
    assert accessible, "the fixture's cabinet has accessible doors"
    shown = [int(x) for x in page.eval_on_selector_all(".door", "els => els.map(e => e.dataset.door)")]
    assert shown[:len(accessible)] == accessible
    assert shown != [d["door"] for d in doors]
    badge = page.locator(f'.door[data-door="{accessible[0]}"] .badge').inner_text()
    assert badge == message("screen.door_accessible", "zh")
    page.goto(cabinet.url + "/screen/doors?lang=en&contrast=high")
    assert page.inner_text("h1") == message("screen.doors_browse", "en")
    assert_axe_clean(page, enhanced_contrast=True)
    page.set_viewport_size({"width": 1920, "height": 1080})
    page.screenshot(path=str(shots / "reader-doors-en-high-contrast-1920x1080.png"))


def test_spoken_prompts_follow_the_events_when_speech_is_on(page: Any, cabinet: Cabinet) -> None:
    cabinet.client.wait_idle()
    page.goto(cabinet.url + "/")
    page.click("#speech")
    page.wait_for_url("**/?speech=on")
    assert page.inner_text("#speech") == message("screen.speech_off", "zh")
    asked: list[str] = []
    page.on("request", lambda r: asked.append(r.url) if "/screen/speech.wav" in r.url else None)
    page.click("#return")
    page.wait_for_url("**/screen/return")
    door = int(page.get_attribute(".door-open", "data-door"))
    until(lambda: door_is_open(cabinet.sim, door), 15, f"door {door} to open")
    cabinet.sim.close_door(door)
    for _ in range(100):  # Playwright delivers its request events only while it waits
        if any("key=return.done" in u for u in asked):
            break
        page.wait_for_timeout(200)
    assert any("key=return.done" in u for u in asked), asked
    closed = [u for u in asked if "key=door.closed" in u]
    assert closed and f"door={door}" in closed[0] and "lang=zh" in closed[0]
    page.click("#end")  # the next reader starts without speech
    page.wait_for_url(cabinet.url + "/")
    assert page.inner_text("#speech") == message("screen.speech_on", "zh")


def test_bad_input_gets_a_4xx_never_a_500(cabinet: Cabinet) -> None:
    import httpx

    cabinet.client.wait_idle()
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    with httpx.Client(base_url=cabinet.url, timeout=10) as http:
        assert http.post("/screen/identify", content="card=" + "9" * 5000,
                         headers=form).status_code == 400
        assert http.post("/screen/identify", content="card=", headers=form).status_code == 400
        assert http.post("/screen/identify", content=b"\xff\xfe%%%", headers=form).status_code == 400
        assert http.post("/screen/rate", content="score=9", headers=form).status_code == 400
        assert http.post("/screen/rate", content="score=abc", headers=form).status_code == 400
        # a valid score with nothing to rate now (no visit just ended here)
        got = http.post("/screen/rate", content="score=4&next=http://evil.example/",
                        headers=form)
        assert got.status_code in (303, 409)
        if got.status_code == 303:  # a visit had just ended: never sent off the kiosk
            assert got.headers["location"] == "/screen/receipt"
        assert http.post("/screen/doors/abc/open").status_code == 422
        assert http.post("/screen/doors/99/open").status_code == 409  # nobody signed in
        assert http.post("/screen/more-time").status_code == 303
        assert http.get("/screen/doors?cls=%00&accessible=x").status_code == 200
        assert http.get("/screen/receipt").status_code == 200
    assert cabinet.client.state()["session"] is None
