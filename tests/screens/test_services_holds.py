"""Holds pickup at the touchscreen, in Chromium against the real server and a camera cabinet.

What a reader notices: a book reserved for pickup at this cabinet has its door opened when
they identify, the page says which door holds which book (zh and en), and once they take it
and close the door it is on loan to them — at the cabinet and at the server.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from lendbox.network_story import NetworkStory

from .services_fixtures import (  # noqa: F401 - fixtures cab_c, cab
    assert_axe_clean,
    camera_cabinet,
    idle_camera_cabinet,
    identify,
    register,
    synced,
    t,
    wait,
)


def test_a_hold_is_picked_up_at_its_door(page: Any, network: NetworkStory, cab: Any,
                                         shots: Any) -> None:
    assert network.api is not None
    url = cab.kiosk.url.rstrip("/")
    reader = register(network)
    book = str(cab.sim.door_items(1)[0].item_id)
    placed = reader.phone.post("/api/readers/me/holds", json={
        "item_id": book, "pickup_cabinet_id": cab.id})
    assert placed.status_code == 201, placed.text
    assert placed.json()["status"] == "ready"
    title = network.api.get(f"/api/items/{book}").json()["title"]
    client = cab.client()
    try:  # the cabinet learns of the hold at its next sync
        wait("the hold at the cabinet", lambda: any(
            it["item_id"] == book and it["on_hold"] for d in client.doors() for it in d["items"]))
    finally:
        client.close()

    state = identify(cab, reader)
    assert 1 in state["session"]["hold_doors"]
    wait("door 1 open", lambda: cab.sim.model.door(1).open, 15)
    page.goto(f"{url}/screen/holds")
    row = page.locator(f'li.hold[data-item="{book}"]')
    assert row.get_attribute("data-door") == "1"
    assert row.inner_text() == t("services.hold_open", "zh", door=1, title=title)
    assert_axe_clean(page, f"{url}/screen/holds", shots, "holds")
    page.goto(f"{url}/screen/holds?lang=en")
    assert page.locator(f'li.hold[data-item="{book}"]').inner_text() == t(
        "services.hold_open", "en", door=1, title=title)

    cab.sim.take_item(book)
    cab.sim.close_door(1)
    c = cab.client()
    try:
        c.wait(lambda s: not s["doors"], 20, "door 1 counted")
    finally:
        c.close()
    # The loan fulfils the hold, and the sync after it drops the hold from the cabinet.
    # Wait for that, so the page is checked in the state the reader most often meets:
    # the book is still listed, as taken.
    wait("the fulfilled hold dropped at the cabinet", lambda: not cabinet_holds(cab, book))
    page.goto(f"{url}/screen/holds?lang=zh")
    assert page.locator(f'li.hold[data-item="{book}"]').inner_text() == t(
        "services.hold_taken", "zh", title=title)
    page.goto(f"{url}/screen/loans")
    assert title in page.locator(f'li.loan[data-item="{book}"]').inner_text()
    synced(cab)
    item = network.api.get(f"/api/items/{book}").json()
    assert (item["status"], item.get("borrower_id", reader.id)) == ("loaned", reader.id)
    holds = reader.phone.get("/api/readers/me/holds").json()["holds"]
    assert [h["status"] for h in holds if h["item_id"] == book] != ["ready"]


def cabinet_holds(cab: Any, item_id: str) -> list[str]:
    """The holds on ``item_id`` in the cabinet's own ledger (a read-only connection)."""
    path = cab.config.parent / "kiosk-C" / "ledger.db"
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=2.0)
    try:
        return [r[0] for r in conn.execute("SELECT item_id FROM holds WHERE item_id = ?",
                                           (item_id,))]
    finally:
        conn.close()
