"""The reader touchscreen's idle page and return-without-login, in Debian's Chromium.

What a reader notices: the cabinet's place, hours and help line in Chinese (English one tap
away), big Borrow/Return buttons, a large-text and a high-contrast mode, every control
reachable with the keyboard (assistive switches send Tab/Enter), and no serious or critical
axe-core finding on any variant.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from kiosk.messages import message

from .conftest import CHROMIUM, Cabinet, axe_violations, cjk_fonts, describe

CONTROLS = ["borrow", "return", "return-accessible", "lang", "text", "contrast"]


def _open(page: Any, cabinet: Cabinet, query: str = "") -> None:
    response = page.goto(f"{cabinet.url}/{query}")
    assert response is not None and response.status == 200


def _assert_axe_clean(page: Any, **kwargs: Any) -> None:
    found = axe_violations(page, **kwargs)
    assert not found, "axe-core found:\n" + describe(found)


@pytest.mark.skipif(not CHROMIUM.exists(), reason="no /usr/bin/chromium (./scripts/test installs it)")
def test_a_cjk_font_is_installed_so_chinese_is_not_boxes() -> None:
    assert cjk_fonts(), "fc-list :lang=zh finds no font: apt-get install fonts-noto-cjk"


def test_idle_page_speaks_chinese_by_default(page: Any, cabinet: Cabinet, shots: Any) -> None:
    _open(page, cabinet)
    assert page.get_attribute("html", "lang") == "zh-CN"
    assert page.inner_text("h1") == message("screen.welcome", "zh")
    assert page.locator("main").count() == 1
    body = page.inner_text("main")
    for text in ("深圳北站 2F 候车室", "24 小时", "0755-12345678", message("screen.help_line", "zh")):
        assert text in body
    assert message("screen.borrow", "zh") in page.inner_text("#borrow")
    assert message("screen.return", "zh") in page.inner_text("#return")
    assert page.inner_text("#lang") == "English"
    assert page.get_attribute("#lang", "lang") == "en"
    page.screenshot(path=str(shots / "idle-zh-1080x1920.png"))
    _assert_axe_clean(page)


def test_english_is_one_tap_away_and_stays(page: Any, cabinet: Cabinet, shots: Any) -> None:
    _open(page, cabinet)
    page.click("#lang")
    page.wait_for_url("**/?lang=en")
    assert page.get_attribute("html", "lang") == "en"
    assert page.inner_text("h1") == message("screen.welcome", "en")
    assert "24 hours" in page.inner_text("main")
    assert message("screen.return", "en") in page.inner_text("#return")
    _assert_axe_clean(page)
    _open(page, cabinet)  # the cookie keeps English on the next page
    assert page.get_attribute("html", "lang") == "en"
    page.set_viewport_size({"width": 1920, "height": 1080})
    page.screenshot(path=str(shots / "idle-en-1920x1080.png"))
    page.click("#lang")  # and back
    assert page.get_attribute("html", "lang") == "zh-CN"


def test_high_contrast_mode_passes_aaa_contrast(page: Any, cabinet: Cabinet, shots: Any) -> None:
    _open(page, cabinet, "?contrast=high")
    assert page.evaluate("getComputedStyle(document.body).backgroundColor") == "rgb(0, 0, 0)"
    page.screenshot(path=str(shots / "idle-zh-high-contrast-1080x1920.png"))
    _assert_axe_clean(page, enhanced_contrast=True)  # WCAG AAA 1.4.6: 7:1
    _open(page, cabinet, "?lang=en")
    _assert_axe_clean(page, enhanced_contrast=True)
    page.set_viewport_size({"width": 1920, "height": 1080})
    page.screenshot(path=str(shots / "idle-en-high-contrast-1920x1080.png"))


def test_normal_mode_also_meets_7_to_1(page: Any, cabinet: Cabinet) -> None:
    _open(page, cabinet)
    _assert_axe_clean(page, enhanced_contrast=True)


def test_large_text_mode_enlarges_everything(page: Any, cabinet: Cabinet, shots: Any) -> None:
    _open(page, cabinet)
    normal = page.evaluate("parseFloat(getComputedStyle(document.querySelector('h1')).fontSize)")
    _open(page, cabinet, "?text=large")
    large = page.evaluate("parseFloat(getComputedStyle(document.querySelector('h1')).fontSize)")
    assert large >= 1.4 * normal
    page.screenshot(path=str(shots / "idle-zh-large-text-1080x1920.png"))
    _assert_axe_clean(page)


@pytest.mark.parametrize("size", [(1080, 1920), (1920, 1080)])
def test_every_touch_target_is_at_least_48_px(page: Any, cabinet: Cabinet, size: Any) -> None:
    page.set_viewport_size({"width": size[0], "height": size[1]})
    _open(page, cabinet)
    small = []
    for el in page.query_selector_all("main a, main button"):
        box = el.bounding_box()
        if box is None or box["width"] < 48 or box["height"] < 48:
            small.append((el.inner_text(), box))
    assert small == []


def test_keyboard_reaches_every_control(page: Any, cabinet: Cabinet) -> None:
    _open(page, cabinet)
    reached = []
    for _ in range(12):
        page.keyboard.press("Tab")
        reached.append(page.evaluate("document.activeElement.id"))
    assert set(CONTROLS) <= set(reached), reached
    assert reached.index("borrow") < reached.index("return")  # reading order = focus order


def test_return_without_login_shows_the_door_the_kiosk_opened(page: Any, cabinet: Cabinet) -> None:
    cabinet.client.wait_idle()
    _open(page, cabinet)
    page.focus("#return")
    page.keyboard.press("Enter")  # a switch user's "select"
    page.wait_for_url("**/screen/return")
    state = cabinet.client.state()
    doors = [int(n) for n, run in state["doors"].items() if run["purpose"] == "return"]
    assert len(doors) == 1
    door = doors[0]
    assert page.inner_text(".door-open") == message("screen.return_open", "zh", {"door": door})
    _assert_axe_clean(page)
    deadline = time.monotonic() + 5
    while not _is_open(cabinet, door):
        assert time.monotonic() < deadline, f"door {door} never opened"
        time.sleep(0.02)
    cabinet.sim.close_door(door)
    cabinet.client.wait_idle()
    page.reload()
    assert page.inner_text("[role=status]") == message("return.done", "zh")
    page.click("text=" + message("screen.back", "zh"))
    assert page.inner_text("h1") == message("screen.welcome", "zh")


def _is_open(cabinet: Cabinet, door: int) -> bool:
    with cabinet.sim.lock:
        return bool(cabinet.sim.model.door(door).open)


def test_the_axe_harness_does_report_a_violation(page: Any) -> None:
    """A control: a page with grey-on-grey text and an unnamed button must be reported."""
    page.set_content('<html lang="en"><body><main><p style="color:#999;background:#aaa">faint</p>'
                     "<button></button></main></body></html>")
    found = {v["id"] for v in axe_violations(page)}
    assert {"color-contrast", "button-name"} <= found, found
