"""Helpers of the reader-services journeys (H2: tests/screens/test_services_*.py).

A reader registers online (秒办证) on the real server and identifies at a cabinet with the QR
code of their phone. The cabinet is a third one of the network, with the simulator's camera
(A and B have none), so that a barcode can be scanned for 荐购. Each test leaves the cabinet
idle (:func:`end_session`).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, cast

import httpx
import pytest

from kiosk.messages import message
from lendbox import network_story as ns
from lendbox.kiosk_kit import KioskClient, KioskProcess, KioskRefused, write_kiosk_config
from lendbox.network_story import Cabinet, NetworkStory, demo_id_number

from .conftest import axe_violations, describe

#: id-number seeds of this module's readers (other journeys use other ranges)
_seeds = itertools.count(8100)


CAMERA_CABINET = "sz-city-0009"


def start_camera_cabinet(network: NetworkStory) -> Cabinet:
    """A third cabinet of the city branch, like A but with the simulator's camera (the
    network's A and B have none): registered on the network's server with its key, its
    books catalogued, its kiosk started, its first count adopted as its stock."""
    from kiosk.runtime import _b64, load_or_create_key
    from simulator import Simulator

    assert network.api is not None and network.server is not None
    api, work = network.api, network.workdir
    text = ns.SMALL.read_text(encoding="utf-8")
    text = text.replace('id = "small-0001"', f'id = "{CAMERA_CABINET}"')
    text = text.replace("seed = 11", 'seed = 909\nid_prefix = "390209"\n'
                        'titles = ["红楼梦", "三体", "活着", "围城", "边城", "百年孤独"]')
    text = text.replace("hold_open_limit_s = 0.3", "hold_open_limit_s = 120")
    (work / "C-cabinet.toml").write_text(text + "\n[camera]\nenabled = true\n", encoding="utf-8")
    sim = Simulator.from_file(work / "C-cabinet.toml", control_port=0).start()
    cab = Cabinet("C", sim, ns.CITY, work / "kiosk-C.toml")
    try:
        assert sim.camera is not None, sim.peripheral_errors
        key = load_or_create_key(work / "kiosk-C" / "cabinet.key")
        network._ok(api.post("/api/cabinets", json={
            "id": CAMERA_CABINET, "branch_id": ns.CITY, "name": "cabinet C",
            "location": "深圳北站 B1", "public_key": _b64(key.public_key().public_bytes_raw())}))
        network._ok(api.post("/api/items", json={"items": [
            {"item_id": it.item_id, "title": it.title or "",
             "owner_library": it.owner_library or ns.LIBRARY, "home_branch_id": ns.CITY}
            for it in sim.items.values()]}))
        trusted = NetworkStory._trusted_keys(f"sqlite:///{work / 'server.db'}")
        write_kiosk_config(cab.config, sim, data_dir=work / "kiosk-C",
                           server_url=network.server.url, trusted_keys=trusted,
                           policy=ns.POLICY, network=[ns.LIBRARY, *ns.OTHER_LIBRARIES],
                           # a loaded test machine answers in seconds, not milliseconds:
                           # these pages test the online services, not the offline fallback
                           sync_interval_s=1.0, timeout_s=5.0, resolve_timeout_s=5.0)
        cab.kiosk = KioskProcess(cab.config, log=work / "kiosk-C.log").start()
        wait("cabinet C's first count", lambda: any(
            c["status"] == "ok" for c in network._ok(api.get(
                "/api/reports/discrepancies", params={"cabinet_id": CAMERA_CABINET}))["cabinets"]))
        network._ok(api.post(f"/api/cabinets/{CAMERA_CABINET}/inventory/adopt"))
    except BaseException:
        stop_cabinet(cab)
        raise
    return cab


def stop_cabinet(cab: Cabinet) -> None:
    if cab.kiosk is not None:
        cab.kiosk.stop()
    cab.sim.stop()


#: the camera cabinet of each network, started once per test process whatever the number of
#: modules importing these fixtures (each import would otherwise be a fixture of its own)
_started: dict[int, Cabinet] = {}


@pytest.fixture(scope="session", name="cab_c")
def camera_cabinet(network: NetworkStory, request: pytest.FixtureRequest) -> Cabinet:
    """The camera cabinet; stopped (by pid) when the test session ends."""
    cab = _started.get(id(network))
    if cab is None:
        cab = _started[id(network)] = start_camera_cabinet(network)
        request.config.add_cleanup(lambda: stop_cabinet(cab))
    return cab


@pytest.fixture(name="cab")
def idle_camera_cabinet(cab_c: Cabinet) -> Iterator[Cabinet]:
    """The camera cabinet, idle before and after the test."""
    end_session(cab_c)
    yield cab_c
    end_session(cab_c)


@dataclass
class Reader:
    id: str
    phone: httpx.Client  # the reader's app: their bearer token on the server

    def qr(self) -> str:
        got = self.phone.get("/api/readers/me/qr")
        assert got.status_code == 200, got.text
        return str(got.json()["qr"])


def register(network: NetworkStory, name: str = "读者") -> Reader:
    assert network.server is not None
    seed = next(_seeds)
    made = httpx.post(network.server.url + "/api/readers/register", timeout=10, json={
        "display_name": f"{name}{seed}", "id_number": demo_id_number(seed)})
    assert made.status_code in (200, 201), made.text
    body = made.json()
    return Reader(body["reader_id"], httpx.Client(
        base_url=network.server.url, timeout=10,
        headers={"Authorization": f"Bearer {body['token']}"}))


def wait(what: str, check: Callable[[], Any], timeout: float = 20.0) -> Any:
    """The network story's own polling wait (it uses nothing of the story itself)."""
    return NetworkStory._wait(cast(NetworkStory, None), what, check, timeout)


def recommendations_of(network: NetworkStory, reader: Reader) -> list[tuple[str | None, str]]:
    """(isbn, title) of the reader's 荐购 as staff see them."""
    assert network.api is not None
    got = network.api.get("/api/recommendations").json()["recommendations"]
    return sorted((r["isbn"], r["title"]) for r in got if r["reader_id"] == reader.id)


def identify(cab: Cabinet, reader: Reader) -> dict[str, Any]:
    """The reader's QR code is read at the cabinet; the state once identified.

    Through the kiosk's API with the QR text — what its camera watcher does with a decoded
    QR — rather than ``sim.show_qr``: the watcher reads the simulator's 10 fps stream only
    every 0.3 s while idle, so after a while it decodes frames seconds old (an earlier
    reader's one-time QR: ``token_replayed``). The camera itself is exercised by the 荐购
    scan (test_services_recommend.py), which reopens the stream."""
    client = cab.client()
    try:
        client.wait(lambda s: s["session"] is None and not s["doors"], 20, "cabinet idle")
        client.start_session("qr", reader.qr())
        state = client.wait(lambda s: s["session"] is not None
                            and s["session"]["phase"] == "active", 20, "reader identified")
    finally:
        client.close()
    return state


def end_session(cab: Cabinet) -> None:
    """Close every open door and finish the session (the reader walks away)."""
    client = cab.client()
    try:
        state = client.state()
        for door in state["doors"]:
            with cab.sim.lock:
                is_open = cab.sim.model.door(int(door)).open
            if is_open:
                cab.sim.close_door(int(door))
        client.wait(lambda s: not s["doors"], 20, "doors counted")
        if client.state()["session"] is not None:
            try:
                client.finish()
            except KioskRefused:
                pass
        client.wait_idle(20)
    finally:
        client.close()


def borrow_one(cab: Cabinet, door: int) -> str:
    """In the running session: open ``door``, take its first book, close it; its item id."""
    client: KioskClient = cab.client()
    try:
        client.open_door(door)
        wait(f"door {door} open", lambda: _pull_open(cab, door), 15)
        book = str(cab.sim.door_items(door)[0].item_id)
        cab.sim.take_item(book)
        cab.sim.close_door(door)
        client.wait(lambda s: not s["doors"], 20, "door counted")
        # the door's run ends a moment before its count is committed: the loan is in the
        # ledger once the book is gone from the door's recorded contents (one transaction)
        wait(f"the loan of {book} recorded", lambda: all(
            it["item_id"] != book for d in client.doors() for it in d["items"]))
    finally:
        client.close()
    return book


def _pull_open(cab: Cabinet, door: int) -> bool:
    """A door without a spring stays shut once unlocked: the reader pulls it open."""
    with cab.sim.lock:
        model = cab.sim.model.door(door)
        if not model.open and not model.latched:
            cab.sim.model.open_door(door)
        return bool(model.open)


def synced(cab: Cabinet) -> None:
    client = cab.client()
    try:
        wait(f"cabinet {cab.name} synced", lambda: client.health()["pending_events"] == 0
             and client.health()["online"])
    finally:
        client.close()


def t(key: str, lang: str, **params: Any) -> str:
    return message(key, lang, params)


def assert_axe_clean(page: Any, url: str, shots: Any, name: str) -> None:
    """axe on ``url`` in zh, en and zh high contrast (7:1); screenshots portrait and landscape."""
    for query, enhanced in (("?lang=zh&contrast=normal", False), ("?lang=en", False),
                            ("?lang=zh&contrast=high", True)):
        page.goto(url + query)
        found = axe_violations(page, enhanced_contrast=enhanced)
        assert not found, f"{url}{query}: axe-core found:\n" + describe(found)
    page.goto(url + "?lang=zh&contrast=normal")
    page.screenshot(path=str(shots / f"services-{name}-zh-1080x1920.png"))
    page.set_viewport_size({"width": 1920, "height": 1080})
    page.goto(url + "?lang=en")
    page.screenshot(path=str(shots / f"services-{name}-en-1920x1080.png"))
    page.set_viewport_size({"width": 1080, "height": 1920})
    page.goto(url + "?lang=zh")
