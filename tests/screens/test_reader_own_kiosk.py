"""Timeouts, alarms, classes and returns on a cabinet of our own with a short policy
(session idle 12 s, door prompts at 2 s and 5 s, the alarm at 8 s) and a seeded catalogue.
The steps are seconds apart so that a loaded test machine (axe runs, screenshots, a page
refetch) never skips one.

What a reader notices: "need more time?" appears before the session ends and its button
keeps the session; when the session does end, the screen goes back to the start in Chinese
(the reader's English and high contrast forgotten); a door left open brings prompts that grow
to an alarm (role=alert, a sound cue); the doors can be filtered by 中图法 class; a return
names the books recognised and sends another library's book home.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kiosk.messages import message

from .reader_kit import (
    STAFF_CARD,
    OwnKiosk,
    assert_axe_clean,
    big_targets,
    door_is_open,
    own_kiosk,
    until,
)

IDLE = 12
POLICY = {"session_idle_s": IDLE, "door_prompt_s": [2, 5], "door_alarm_s": 8}


@pytest.fixture(scope="module")
def cab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OwnKiosk]:
    with own_kiosk(Path(tmp_path_factory.mktemp("reader-own")), POLICY) as k:
        yield k


def test_more_time_keeps_the_session_and_its_end_resets_the_readers_choices(
        page: Any, cab: OwnKiosk, shots: Any) -> None:
    cab.client.wait_idle()
    page.goto(cab.url + "/screen/borrow?lang=en&contrast=high")
    page.fill("#card", STAFF_CARD)
    page.click("#card-go")
    page.wait_for_url("**/screen/session")
    started = time.monotonic()
    # 12 s of idleness is less than the prompt's 25 s: the prompt is there at once
    page.wait_for_selector("#more-time-box", timeout=5000)
    assert page.get_attribute("#more-time-box", "role") == "alert"
    assert message("screen.more_time_q", "en") in page.inner_text("#more-time-box")
    assert page.evaluate("document.activeElement.id") == "more-time"  # a switch can answer
    page.screenshot(path=str(shots / "reader-more-time-en-high-contrast-1080x1920.png"))
    assert_axe_clean(page, enhanced_contrast=True)
    until(lambda: time.monotonic() - started > 5, 10)
    page.keyboard.press("Enter")  # "I need more time"
    page.wait_for_url("**/screen/session")
    answered = time.monotonic()
    assert answered - started < IDLE, "the check took longer than the session lasts"
    until(lambda: time.monotonic() - started > IDLE + 1, IDLE)  # past the first deadline
    assert cab.client.state()["session"] is not None, "more time did not extend the session"
    assert page.get_attribute("html", "lang") == "en"
    # then the reader walks away: the session ends and the screen forgets her choices
    page.wait_for_url(cab.url + "/?notice=timeout", timeout=(IDLE + 10) * 1000)
    assert time.monotonic() - answered >= IDLE - 1
    assert page.get_attribute("html", "lang") == "zh-CN"
    assert "contrast-normal" in (page.get_attribute("html", "class") or "")
    assert page.inner_text("[role=status]") == message("session.timeout", "zh")


def test_a_door_left_open_escalates_to_an_alarm(page: Any, cab: OwnKiosk, shots: Any) -> None:
    cab.client.wait_idle()
    page.goto(cab.url + "/")
    page.click("#return")
    page.wait_for_url("**/screen/return")
    door = int(page.get_attribute(".door-open", "data-door"))
    until(lambda: door_is_open(cab.sim, door), 15, f"door {door} to open")
    page.wait_for_selector('.alarm[data-level="1"]', timeout=10_000)
    first = page.evaluate("parseFloat(getComputedStyle(document.querySelector('.alarm')).fontSize)")
    assert page.inner_text(".alarm p") == message("door.close_prompt", "zh", {"door": door})
    page.wait_for_selector('.alarm[data-level="3"]', timeout=15_000)
    last = page.evaluate("parseFloat(getComputedStyle(document.querySelector('.alarm')).fontSize)")
    assert last > first
    assert page.get_attribute(".alarm", "role") == "alert"
    assert page.inner_text(".alarm p") == message("alarm.door_left_open", "zh", {"door": door})
    # live.js sounded its cue at each step (the level it reached is on <html>)
    assert page.get_attribute("html", "data-alarm-level") == "3"
    page.screenshot(path=str(shots / "reader-alarm-zh-1080x1920.png"))
    assert_axe_clean(page)
    cab.sim.close_door(door)
    page.wait_for_selector(".returned, .note", timeout=10000)
    until(lambda: page.locator(".alarm").count() == 0, 10, "the alarm to clear")


def test_doors_filter_by_class_and_spines_show_title_and_author(page: Any, cab: OwnKiosk,
                                                                 shots: Any) -> None:
    page.goto(cab.url + "/screen/doors")
    chips = page.locator(".filters a")
    assert chips.count() >= 4  # all + the classes present (I, K, O, T)
    literature = page.locator(".filters a", has_text=message("clc.I", "zh"))
    literature.click()
    page.wait_for_url("**cls=I**")
    spines = page.locator(".spine")
    assert spines.count() > 0
    assert page.locator(".spine:not(.cls-I)").count() == 0
    first = spines.first.inner_text()
    assert first.startswith("书名") and "作者" in first
    assert page.get_attribute(".filters a[aria-current=true]", "href").endswith("cls=I")
    page.screenshot(path=str(shots / "reader-doors-class-zh-1080x1920.png"))
    assert_axe_clean(page)
    page.goto(cab.url + "/screen/doors?cls=T&lang=en&contrast=high")
    assert page.locator(".spine").count() > 0
    assert page.locator(".spine:not(.cls-T)").count() == 0
    assert_axe_clean(page, enhanced_contrast=True)


def test_return_names_the_books_and_sends_another_librarys_home(page: Any, cab: OwnKiosk,
                                                                shots: Any) -> None:
    sim, client = cab.sim, cab.client
    client.wait_idle()
    with sim.lock:
        ours = next(i for i in sim.items.values() if i.door == 1 and i.owner_library == "CN-440300")
        theirs = next(i for i in sim.items.values() if i.door == 1
                      and i.owner_library == "CN-440305")
    books = [str(ours.item_id), str(theirs.item_id)]
    # a member of staff takes the two books out (restock), so a reader can bring them back
    client.start_session("barcode", STAFF_CARD)
    client.open_door(1)
    until(lambda: door_is_open(sim, 1), 15, "door 1 to open")
    for book in books:
        sim.take_item(book)
    sim.close_door(1)
    client.wait(lambda s: not s["doors"], 20, "door 1 counted")
    client.finish()
    client.wait_idle()

    page.goto(cab.url + "/?lang=en")
    page.click("#return")
    page.wait_for_url("**/screen/return")
    door = int(page.get_attribute(".door-open", "data-door"))
    until(lambda: door_is_open(sim, door), 15, f"door {door} to open")
    for book in books:
        sim.put_item(book, door)
    sim.close_door(door)
    # live.js follows the stream: the page turns to what was recognised without a reload
    page.wait_for_selector(".returned", timeout=15000)
    assert page.inner_text("[role=status]") == message("return.done", "en")
    listed = page.eval_on_selector_all(".returned li", "els => els.map(e => e.dataset.item)")
    assert sorted(listed) == sorted(books)
    assert page.inner_text(f'.returned li[data-item="{ours.item_id}"] .book-title').startswith("书名")
    home = page.inner_text(f'.returned li[data-item="{theirs.item_id}"] .home')
    assert home == message("screen.goes_home", "en", {"home": "CN-440305"})
    assert page.locator(f'.returned li[data-item="{ours.item_id}"] .home').count() == 0
    page.screenshot(path=str(shots / "reader-return-done-en-1080x1920.png"))
    assert_axe_clean(page)
    assert big_targets(page) == []
    page.set_viewport_size({"width": 1920, "height": 1080})
    page.screenshot(path=str(shots / "reader-return-done-en-1920x1080.png"))
    page.click("#end")  # done: back to the start, and the next reader gets Chinese again
    page.wait_for_url(cab.url + "/")
    assert page.get_attribute("html", "lang") == "zh-CN"
