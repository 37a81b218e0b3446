"""荐购 at the touchscreen, in Chromium against the real server and a camera cabinet.

What a reader notices: an ISBN typed with hyphens (ISBN-13 or ISBN-10) or scanned from the
barcode on the back of the book reaches the library's staff (``GET /api/recommendations``);
a typo is caught at the cabinet with the text kept for correcting; an empty camera is said
plainly with what to do.
"""

from __future__ import annotations

from typing import Any

from lendbox.network_story import NetworkStory

from .conftest import axe_violations, describe

from .services_fixtures import (  # noqa: F401 - fixtures cab_c, cab
    assert_axe_clean,
    camera_cabinet,
    idle_camera_cabinet,
    identify,
    recommendations_of,
    register,
    t,
)


def test_recommend_typed_and_scanned_reaches_staff(page: Any, network: NetworkStory, cab: Any,
                                                    shots: Any) -> None:
    url = cab.kiosk.url.rstrip("/")
    reader = register(network)
    identify(cab, reader)
    page.goto(f"{url}/screen/recommend")
    assert page.inner_text("h1") == t("services.recommend", "zh")
    assert_axe_clean(page, f"{url}/screen/recommend", shots, "recommend")

    # a typo: caught on the cabinet, what was typed kept for correcting, nothing sent
    page.fill("#isbn", "978-7-02-000220-8")
    page.click("#send")
    assert page.locator("#problem").get_attribute("data-code") == "check_digit"
    assert page.inner_text("#problem") == t("services.isbn_check_digit", "zh")
    assert page.input_value("#isbn") == "978-7-02-000220-8"
    assert recommendations_of(network, reader) == []

    # typed with hyphens, with a title, keyboard only
    page.fill("#isbn", "978-7-02-000220-7")
    page.fill("#title", "红楼梦")
    page.focus("#title")
    page.keyboard.press("Enter")
    assert page.inner_text("#result") == t("services.recommended", "zh", isbn="9787020002207")
    found = axe_violations(page)
    assert not found, describe(found)
    page.screenshot(path=str(shots / "services-recommend-sent-zh-1080x1920.png"))

    # scanned: the barcode on the back of the book held to the cabinet's camera
    cab.sim.show_isbn("9787544253994")
    try:
        page.goto(f"{url}/screen/recommend?lang=en")
        page.click("#scan")
        assert page.inner_text("#scanned") == t("services.scanned", "en", isbn="9787544253994")
        assert page.inner_text("#result") == t("services.recommended", "en",
                                               isbn="9787544253994")
    finally:
        cab.sim.clear_camera()
    # an ISBN-10 typed in English
    page.goto(f"{url}/screen/recommend?lang=en")
    page.fill("#isbn", "0-306-40615-2")
    page.click("#send")
    assert page.inner_text("#result") == t("services.recommended", "en", isbn="0306406152")
    assert recommendations_of(network, reader) == [
        ("0306406152", ""), ("9787020002207", "红楼梦"), ("9787544253994", "")]

    # nothing in front of the camera: said plainly, with what to do
    page.click("#recommend-again")
    page.click("#scan")
    assert page.inner_text("#problem") == t("services.scan_none", "en")
