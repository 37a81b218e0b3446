"""My loans and renew on the touchscreen, against the real server and a camera cabinet (Chromium).

What a reader notices: after showing their QR code, "my loans" lists the book they just
borrowed with its due date; "renew" moves the due date (the server's record too); a book
another reader has reserved cannot be renewed and the screen says why and what to do; in
English as in Chinese; pages without an identified reader send them to identify first.
"""

from __future__ import annotations

from typing import Any

import pytest

from lendbox.network_story import NetworkStory

from .conftest import axe_violations, describe

from .services_fixtures import (  # noqa: F401 - fixtures cab_c, cab
    assert_axe_clean,
    borrow_one,
    camera_cabinet,
    idle_camera_cabinet,
    identify,
    register,
    synced,
    t,
)


def test_without_a_reader_the_pages_send_to_identify(page: Any, network: NetworkStory,
                                                     cab: Any) -> None:
    url = cab.kiosk.url.rstrip("/")
    for path in ("/screen/loans", "/screen/holds", "/screen/recommend"):
        page.goto(url + path)
        assert page.url == url + "/screen/borrow", path
    refused = page.request.post(url + "/screen/loans/X1/renew", max_redirects=0)
    assert refused.status == 303 and refused.headers["location"] == "/screen/borrow"


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_see_loans_and_renew(page: Any, network: NetworkStory, cab: Any, lang: str,
                             shots: Any) -> None:
    assert network.api is not None
    url = cab.kiosk.url.rstrip("/")
    reader = register(network)
    identify(cab, reader)
    book = borrow_one(cab, 2)
    synced(cab)
    before = network.api.get(f"/api/items/{book}").json()
    assert before["status"] == "loaned"
    title = before["title"]

    page.goto(f"{url}/screen/loans?lang={lang}")
    assert page.inner_text("h1") == t("services.loans", lang)
    row = page.locator(f'li.loan[data-item="{book}"]')
    assert title in row.inner_text()
    assert t("services.due", lang, due=before["due"]) in row.inner_text()
    assert page.locator("#offline").count() == 0
    if lang == "zh":
        assert_axe_clean(page, f"{url}/screen/loans", shots, "loans")
        page.goto(f"{url}/screen/loans?lang={lang}")

    # keyboard only (an assistive switch): Tab to the renew button, Enter
    button = row.locator("button")
    assert button.get_attribute("aria-label") == t("services.renew_label", lang, title=title)
    button.focus()
    page.keyboard.press("Enter")
    page.wait_for_selector("#result")
    after = network.api.get(f"/api/items/{book}").json()
    assert after["due"] > before["due"]
    assert page.inner_text("#result") == t("services.renewed", lang, title=title,
                                           due=after["due"])
    page.click("#loans-again")
    assert t("services.renewals", lang, count=1) in page.locator(
        f'li.loan[data-item="{book}"]').inner_text()


def test_a_renewal_refused_says_why_and_what_to_do(page: Any, network: NetworkStory,
                                                    cab: Any, shots: Any) -> None:
    assert network.api is not None
    url = cab.kiosk.url.rstrip("/")
    reader, other = register(network), register(network, "预约者")
    identify(cab, reader)
    book = borrow_one(cab, 3)
    synced(cab)
    placed = other.phone.post("/api/readers/me/holds", json={
        "item_id": book, "pickup_cabinet_id": cab.id})
    assert placed.status_code == 201, placed.text
    due = network.api.get(f"/api/items/{book}").json()["due"]

    page.goto(f"{url}/screen/loans")
    row = page.locator(f'li.loan[data-item="{book}"]')
    assert t("services.wanted", "zh") in row.inner_text()
    row.locator("button").click()
    assert page.locator("#reason").get_attribute("data-code") == "held_for_another"
    assert page.inner_text("#reason") == t("services.refused_held_for_another", "zh")
    assert network.api.get(f"/api/items/{book}").json()["due"] == due  # nothing changed
    found = axe_violations(page)
    assert not found, describe(found)
    page.screenshot(path=str(shots / "services-renew-refused-zh-1080x1920.png"))
    # the same in English
    en = page.request.post(f"{url}/screen/loans/{book}/renew?lang=en")
    assert en.status == 409
    assert t("services.refused_held_for_another", "en") in en.text()
