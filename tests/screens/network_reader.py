"""Helpers of H1's network browser tests: a registered reader with a QR on her phone, and the
whole borrow-with-QR journey driven through the touchscreen."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from kiosk.messages import message
from lendbox import network_story as ns
from lendbox.kiosk_kit import KioskProcess, write_kiosk_config
from lendbox.network_story import Cabinet, NetworkStory, demo_id_number

from .reader_kit import door_is_open, until


@contextmanager
def camera_cabinet(network: NetworkStory, cabinet_id: str, seed: int,
                   policy: dict[str, Any] | None = None) -> Iterator[Cabinet]:
    """One more cabinet of the city branch, with the simulator's camera (A and B have none):
    its key registered on the server, its books catalogued (and in the ILS), its kiosk run,
    its first count adopted as stock. Stopped (kiosk, then simulator) on leaving."""
    from kiosk.runtime import _b64, load_or_create_key
    from simulator import Simulator

    assert network.api is not None and network.server is not None
    api, work = network.api, network.workdir
    prefix = f"39{seed:04d}"
    text = ns.SMALL.read_text(encoding="utf-8")
    text = text.replace('id = "small-0001"', f'id = "{cabinet_id}"')
    text = text.replace("seed = 11", f'seed = {seed}\nid_prefix = "{prefix}"\n'
                        'titles = ["呐喊", "家", "子夜", "骆驼祥子", "城南旧事", "茶馆"]')
    text = text.replace("hold_open_limit_s = 0.3", "hold_open_limit_s = 120")
    sim_toml = work / f"{cabinet_id}-sim.toml"
    sim_toml.write_text(text + "\n[camera]\nenabled = true\n", encoding="utf-8")
    sim = Simulator.from_file(sim_toml, control_port=0).start()
    kiosk = None
    try:
        data = work / f"kiosk-{cabinet_id}"
        key = load_or_create_key(data / "cabinet.key")
        network._ok(api.post("/api/cabinets", json={
            "id": cabinet_id, "branch_id": ns.CITY, "name": f"cabinet {cabinet_id}",
            "location": "深圳北站 3F", "public_key": _b64(key.public_key().public_bytes_raw())}))
        records = [{"item_id": it.item_id, "title": it.title or "",
                    "owner_library": it.owner_library or ns.LIBRARY, "home_branch_id": ns.CITY}
                   for it in sim.items.values()]
        network._ok(api.post("/api/items", json={"items": records}))
        for r in records:
            network._ils("/items", {"item_id": r["item_id"], "title": r["title"],
                                    "branch": ns.CITY})
        trusted = NetworkStory._trusted_keys(f"sqlite:///{work / 'server.db'}")
        config = write_kiosk_config(work / f"kiosk-{cabinet_id}.toml", sim, data_dir=data,
                                    server_url=network.server.url, trusted_keys=trusted,
                                    policy={**ns.POLICY, **(policy or {})},
                                    network=[ns.LIBRARY, *ns.OTHER_LIBRARIES],
                                    # a loaded test machine answers in seconds: these pages
                                    # test the online flows, not the offline fallback
                                    sync_interval_s=1.0, timeout_s=5.0, resolve_timeout_s=5.0)
        kiosk = KioskProcess(config, log=work / f"kiosk-{cabinet_id}.log").start()
        until(lambda: any(c["status"] == "ok" for c in network._ok(api.get(
            "/api/reports/discrepancies", params={"cabinet_id": cabinet_id}))["cabinets"]),
            20, f"cabinet {cabinet_id}'s first count")
        network._ok(api.post(f"/api/cabinets/{cabinet_id}/inventory/adopt"))
        cab = Cabinet(cabinet_id, sim, ns.CITY, config, kiosk)
        # the item cache (titles) arrives with the first syncs
        client = cab.client()
        try:
            until(lambda: not client.health()["pending_events"], 20, "the first sync")
        finally:
            client.close()
        yield cab
    finally:
        if kiosk is not None:
            kiosk.stop()
        sim.stop()


@dataclass
class Reader:
    reader_id: str
    token: str
    server: str

    def qr(self) -> str:
        r = httpx.get(self.server + "/api/readers/me/qr", timeout=10,
                      headers={"Authorization": f"Bearer {self.token}"})
        r.raise_for_status()
        return str(r.json()["qr"])


def register(network: NetworkStory, name: str, seed: int) -> Reader:
    """A reader registers online (秒办证) and the library's ILS knows her too."""
    assert network.server is not None
    r = httpx.post(network.server.url + "/api/readers/register", timeout=10, json={
        "display_name": name, "id_number": demo_id_number(seed), "phone": f"1390000{seed:04d}"})
    r.raise_for_status()
    reg = r.json()
    network._ils("/readers", {"patron_id": reg["reader_id"], "name": name})
    return Reader(reg["reader_id"], reg["token"], network.server.url)


def show_qr_and_wait_for_session(page: Any, sim: Any, qr: str) -> None:
    """The reader holds her phone to the camera while the identify page is shown."""
    sim.show_qr(qr)
    try:
        page.wait_for_url("**/screen/session", timeout=15000)
        page.wait_for_selector("#choose", timeout=15000)
    finally:
        sim.clear_camera()


def borrow_through_the_screen(page: Any, sim: Any, lang: str, door: int) -> tuple[str, str]:
    """From the session page: choose ``door``, take its first book, close it; the page must
    say the door is open and then name the book with its due date. Returns (item, due)."""
    page.click("#choose")
    page.wait_for_url("**/screen/doors")
    page.click(f"#open-{door}")
    page.wait_for_url("**/screen/session")
    until(lambda: door_is_open(sim, door), 15, f"door {door} to open")
    open_text = message("door.open", lang, {"door": door})
    page.wait_for_function("t => document.querySelector('main').innerText.includes(t)",
                           arg=open_text, timeout=15_000)
    book = str(sim.door_items(door)[0].item_id)
    sim.take_item(book)
    sim.close_door(door)
    page.wait_for_selector(f'.borrowed li[data-item="{book}"]', timeout=20000)
    due = (datetime.now(UTC) + timedelta(days=30)).date().isoformat()
    text = page.inner_text(f'.borrowed li[data-item="{book}"] .due')
    assert text == message("screen.due", lang, {"due": due})
    return book, due
