"""The whole cabinet: a kiosk *process*, the simulator on real sockets, a real SQLite file,
a stand-in central server on a real port and real Ed25519 signatures.

Each test plays what a reader, a returning passer-by or a staff member does at the cabinet
and checks what they would notice (the API's answers, the screen's event stream) and what the
library would (the ledger, the events that reached the server).
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from kiosk.ledger import Ledger
from kiosk.runtime import load_or_create_key
from lendbox.kiosk_kit import KioskClient, KioskProcess, KioskRefused, write_kiosk_config
from lendbox.standin_server import StandinServer
from simulator import Simulator
from syncproto import ItemInfo

SMALL = Path(__file__).resolve().parents[2] / "simulator" / "cabinets" / "small.toml"


@dataclass
class Stack:
    sim: Any
    server: StandinServer
    kiosk: KioskProcess
    client: KioskClient
    data: Path
    cabinet_id: str

    def ledger(self) -> Ledger:
        return Ledger(self.data / "ledger.db", self.cabinet_id)

    def events(self) -> list[Any]:
        with self.ledger() as led:
            return led.events_after(0, limit=100000)

    def take(self, door: int, n: int) -> list[str]:
        items = [i.item_id for i in self.sim.door_items(door)][:n]
        for item in items:
            self.sim.take_item(item)
        return items

    def wait_open(self, door: int, timeout: float = 3.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.sim.lock:
                if self.sim.model.door(door).open:
                    return
            time.sleep(0.01)
        raise AssertionError(f"door {door} never opened")

    def counted(self, timeout: float = 10.0) -> dict[str, Any]:
        return self.client.wait(lambda s: not s["doors"], timeout, "doors counted")


def _make_stack(tmp_path: Path, policy: dict[str, Any] | None = None) -> Stack:
    sim = Simulator.from_file(SMALL, control_port=None).start()
    server = StandinServer().start()
    try:
        for i, item in enumerate(sim.items.values()):
            server.add_item(ItemInfo(item_id=item.item_id, title=f"书名 {i}",
                                     owner_library=item.owner_library or ""))
        data = tmp_path / "data"
        cfg = write_kiosk_config(tmp_path / "kiosk.toml", sim, data_dir=data,
                                 server_url=server.url, trusted_keys=server.public_keys,
                                 policy=policy, sync_interval_s=0.5)
        key = load_or_create_key(data / "cabinet.key")
        from kiosk.runtime import _b64  # the cabinet's public key, as `kiosk key` prints it

        server.register_cabinet(sim.config.id, _b64(key.public_key().public_bytes_raw()))
        kiosk = KioskProcess(cfg, log=tmp_path / "kiosk.log", log_level="info").start()
    except BaseException:
        server.stop()
        sim.stop()
        raise
    return Stack(sim, server, kiosk, KioskClient(kiosk.url), data, sim.config.id)


def _close(s: Stack) -> None:
    s.client.close()
    s.kiosk.stop()
    s.server.stop()
    s.sim.stop()
    # The kiosk logged at INFO level: sessions, resolutions, refusals. Never a reader id or
    # a card number in clear (only 12-character hashes).
    log = (s.kiosk.log or Path("/dev/null")).read_text()
    for secret in ("R00", "04A1B2C3D4E5F6", "STAFF-0001", "S0001"):
        assert secret not in log.upper()


@pytest.fixture
def stack(tmp_path: Path) -> Any:
    s = _make_stack(tmp_path)
    yield s
    _close(s)


@pytest.fixture
def tight(tmp_path: Path) -> Any:
    """A cabinet with small offline limits and short door timeouts."""
    s = _make_stack(tmp_path, policy={"offline_allowance": 2, "offline_exposure_cap": 3,
                                      "door_prompt_s": [0.5, 1.0], "door_alarm_s": 1.5})
    yield s
    _close(s)


def _borrow(st: Stack, credential: str, door: int, n: int) -> list[str]:
    st.client.start_session("qr", credential)
    st.client.open_door(door)
    st.wait_open(door)
    taken = st.take(door, n)
    st.sim.close_door(door)
    st.counted()
    return taken


def test_borrow_two_books_with_a_qr_code_reaches_the_server(stack: Stack) -> None:
    stack.server.add_reader(card=None, reader_id="R0001", display_name="李雷")
    taken = _borrow(stack, stack.server.issue_qr("R0001"), 1, 2)
    stack.client.finish()
    loans = [e for e in stack.events() if e.kind == "loan"]
    assert sorted(e.payload["item_id"] for e in loans) == sorted(taken)
    assert {e.payload["reader_id"] for e in loans} == {"R0001"}
    assert not any(e.offline for e in loans)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # the agent pushes the outbox by itself
        got = [e for e in stack.server.events(stack.cabinet_id) if e.kind == "loan"]
        if len(got) == 2:
            break
        time.sleep(0.1)
    assert sorted(e.payload["item_id"] for e in got) == sorted(taken)


def test_a_library_card_is_resolved_by_its_hash(stack: Stack) -> None:
    stack.server.add_reader(card="04A1B2C3D4E5F6", reader_id="R0002", display_name="韩梅梅")
    state = stack.client.start_session("card", "04a1b2c3d4e5f6")
    assert state["session"]["role"] == "reader"
    stack.client.finish()
    log = (stack.kiosk.log or Path("/dev/null")).read_text()
    assert "resolved (online)" in log  # logged, by hash only (checked at teardown)


def test_refused_credentials_say_why(stack: Stack) -> None:
    stack.server.add_reader(card=None, reader_id="R0003", display_name="x", blocked=True)
    with pytest.raises(KioskRefused) as blocked:
        stack.client.start_session("qr", stack.server.issue_qr("R0003"))
    assert blocked.value.status == 403 and blocked.value.detail["reason"] == "blocked"
    stack.server.add_reader(card=None, reader_id="R0004", display_name="y")
    token = stack.server.issue_qr("R0004")
    stack.client.start_session("qr", token)
    stack.client.finish()
    with pytest.raises(KioskRefused) as replay:
        stack.client.start_session("qr", token)
    assert replay.value.detail["reason"] == "token_replayed"
    forged = token[:-6] + ("AAAAAA" if not token.endswith("AAAAAA") else "BBBBBB")
    with pytest.raises(KioskRefused) as bad:
        stack.client.start_session("qr", forged)
    assert bad.value.detail["reason"] in ("token_bad_signature", "token_malformed")
    with pytest.raises(KioskRefused) as cut:
        stack.client.start_session("qr", token[:30])
    assert cut.value.detail["reason"] in ("token_truncated", "token_malformed")
    assert "二维码" in cut.value.detail["message_zh"]


def test_item_on_hold_for_someone_else_is_put_back_and_never_lent(stack: Stack) -> None:
    stack.server.add_reader(card=None, reader_id="R0005", display_name="a")
    stack.server.add_reader(card=None, reader_id="R0006", display_name="b")
    held = [i.item_id for i in stack.sim.door_items(2)][0]
    stack.server.add_hold(held, "R0006", cabinet_id=stack.cabinet_id)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with stack.ledger() as led:
            if led.hold_on(held) is not None:
                break
        time.sleep(0.1)
    stack.client.start_session("qr", stack.server.issue_qr("R0005"))
    stack.client.open_door(2)
    stack.wait_open(2)
    stack.sim.take_item(held)
    stack.sim.close_door(2)
    # the door re-opens with a message naming the book and why
    st = stack.client.wait(lambda s: s["doors"].get("2", {}).get("purpose") == "reopen"
                           and any(r["key"] == "borrow.put_back" for r in s["recent"]),
                           10, "door re-opened")
    put_back = [r for r in st["recent"] if r["key"] == "borrow.put_back"]
    assert put_back and "预约" in put_back[-1]["text"]["zh"]
    stack.wait_open(2)
    stack.sim.put_item(held, 2)
    stack.sim.close_door(2)
    stack.counted()
    stack.client.finish()
    assert not [e for e in stack.events() if e.kind == "loan"]
    assert not [e for e in stack.events() if e.kind == "alarm" and e.payload.get("item_id")]


def test_return_without_login_accepts_another_branchs_book(stack: Stack) -> None:
    stack.server.add_reader(card=None, reader_id="R0007", display_name="c")
    other = next(i for i in stack.sim.items.values()
                 if i.owner_library and i.owner_library != "CN-440300" and i.door is not None)
    door_of_other = other.door
    stack.client.start_session("qr", stack.server.issue_qr("R0007"))
    stack.client.open_door(door_of_other)
    stack.wait_open(door_of_other)
    stack.sim.take_item(other.item_id)
    stack.sim.close_door(door_of_other)
    stack.counted()
    stack.client.finish()
    st = stack.client.start_return(accessible=True)
    door = int(next(iter(st["doors"])))
    assert door in (3, 4)  # the accessible half of the small cabinet
    stack.wait_open(door)
    stack.sim.put_item(other.item_id, door)
    stack.sim.close_door(door)
    stack.client.wait_idle()
    returns = [e for e in stack.events() if e.kind == "return"]
    assert [(e.payload["item_id"], e.payload["owner_library"]) for e in returns] == [
        (other.item_id, other.owner_library)]


def test_taking_a_book_during_a_return_is_an_alarm_not_a_loan(stack: Stack) -> None:
    st = stack.client.start_return()
    door = int(next(iter(st["doors"])))
    stack.wait_open(door)
    taken = stack.take(door, 1)
    stack.sim.close_door(door)
    stack.client.wait_idle()
    events = stack.events()
    assert not [e for e in events if e.kind == "loan"]
    if taken:
        alarms = [e for e in events if e.kind == "alarm" and e.payload.get("item_id")]
        assert [(a.payload["item_id"], a.payload["reason"]) for a in alarms] == [
            (taken[0], "removed_during_return")]


def _refused_at_close(st: Stack, door: int) -> dict[str, Any]:
    snap = st.client.wait(lambda s: s["doors"].get(str(door), {}).get("purpose") == "reopen"
                          and any(r["key"] == "borrow.put_back" for r in s["recent"]),
                          10, f"door {door} re-opened with a message")
    return [r for r in snap["recent"] if r["key"] == "borrow.put_back"][-1]


def test_offline_loans_within_credit_then_refused_at_the_cap(tight: Stack) -> None:
    """Offline: allowance 2 a reader, 3 items for the cabinet (the ``tight`` policy)."""
    st = tight
    readers = ("R0010", "R0011", "R0012")
    for r in readers:
        st.server.add_reader(card=None, reader_id=r, display_name=r)
    tokens = {r: st.server.issue_qr(r, ttl_s=60) for r in readers}
    st.server.pause()  # the network drops
    st.client.start_session("qr", tokens["R0010"])
    assert st.client.state()["online"] is False
    st.client.open_door(1)
    st.wait_open(1)
    taken = st.take(1, 3)  # allowance 2: two loans, the third must go back
    st.sim.close_door(1)
    refusal = _refused_at_close(st, 1)
    back = refusal["params"]["items"]
    assert [b["reason"] for b in back] == ["offline_allowance"] and back[0]["item_id"] in taken
    st.wait_open(1)
    st.sim.put_item(back[0]["item_id"], 1)
    st.sim.close_door(1)
    st.counted()
    st.client.finish()

    st.client.start_session("qr", tokens["R0011"])  # one item left under the cabinet's cap
    st.client.open_door(1)
    st.wait_open(1)
    st.take(1, 2)
    st.sim.close_door(1)
    refusal = _refused_at_close(st, 1)
    assert refusal["params"]["items"][0]["reason"] == "exposure_cap"
    assert "离线" in refusal["text"]["zh"] and "offline" in refusal["text"]["en"]
    st.wait_open(1)
    st.sim.put_item(refusal["params"]["items"][0]["item_id"], 1)
    st.sim.close_door(1)
    st.counted()
    st.client.finish()

    with pytest.raises(KioskRefused) as capped:  # the cap is reached: said before any door
        st.client.start_session("qr", tokens["R0012"])
    assert capped.value.status == 403 and capped.value.detail["reason"] == "exposure_cap"
    assert "还书" in capped.value.detail["message_zh"]  # … and that returning still works

    loans = [e for e in st.events() if e.kind == "loan"]
    assert [(e.payload["reader_id"], e.offline) for e in loans] == [
        ("R0010", True), ("R0010", True), ("R0011", True)]
    st.server.resume()  # back online: everything done offline is pushed, flagged
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        got = [e for e in st.server.events(st.cabinet_id) if e.kind == "loan"]
        if len(got) == 3:
            break
        time.sleep(0.2)
    assert all(e.offline for e in got) and len(got) == 3


def test_door_left_open_prompts_then_alarms(tight: Stack) -> None:
    st = tight
    st.server.add_reader(card=None, reader_id="R0013", display_name="d")
    events: list[dict[str, Any]] = []
    stop = threading.Event()

    def listen() -> None:
        try:
            with httpx.stream("GET", st.kiosk.url + "/api/events", timeout=10) as r:
                for line in r.iter_lines():
                    if line.startswith("data: "):
                        events.append(json.loads(line[6:]))
                    if stop.is_set():
                        return
        except httpx.HTTPError:
            pass  # the kiosk stopped at the end of the test

    t = threading.Thread(target=listen, daemon=True)
    t.start()
    time.sleep(0.3)
    st.client.start_session("qr", st.server.issue_qr("R0013"))
    st.client.open_door(3)
    st.sim.leave_door_open(3)  # a door without a spring: the reader pulls it, walks away
    deadline = time.monotonic() + 6
    while time.monotonic() < deadline and not any(
            e["key"] == "alarm.door_left_open" for e in events):
        time.sleep(0.05)
    st.sim.close_door(3)
    st.counted()
    stop.set()
    keys = [e["key"] for e in events]
    assert keys.index("door.open") < keys.index("door.close_prompt") < keys.index(
        "alarm.door_left_open")
    levels = [e["params"]["level"] for e in events if e["key"] == "door.close_prompt"]
    assert levels[:2] == [1, 2]
    assert any(e.kind == "alarm" and e.payload["reason"] == "door_left_open"
               for e in st.events())


def test_staff_restock_records_a_signed_manifest(stack: Stack) -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    from syncproto.grants import canonical_json

    stack.server.add_reader(card="STAFF-0001", reader_id="S0001", display_name="馆员",
                            role="staff")
    st = stack.client.start_session("barcode", "STAFF-0001")
    assert st["session"]["kind"] == "restock"
    stack.client.open_door(2)  # staff take two books out of door 2 …
    stack.wait_open(2)
    moved = stack.take(2, 2)
    stack.sim.close_door(2)
    stack.counted()
    stack.client.open_door(4)  # … and load them into door 4
    stack.wait_open(4)
    for item in moved:
        stack.sim.put_item(item, 4)
    stack.sim.close_door(4)
    stack.counted()
    stack.client.finish()
    manifests = [e.payload["manifest"] for e in stack.events() if e.kind == "restock"]
    assert [(m["door"], m["removed"], m["loaded"]) for m in manifests] == [
        (2, sorted(moved), []), (4, [], sorted(moved))]
    assert {m["staff_id"] for m in manifests} == {"S0001"}
    assert not [e for e in stack.events() if e.kind in ("loan", "alarm")]
    import base64

    for manifest in manifests:
        m = dict(manifest)
        sig, pub = m.pop("signature"), m.pop("public_key")
        key = Ed25519PublicKey.from_public_bytes(base64.urlsafe_b64decode(pub + "=="))
        key.verify(base64.urlsafe_b64decode(sig + "=="), canonical_json(m))  # raises if forged


def test_bad_requests_get_clear_4xx_and_write_nothing(stack: Stack) -> None:
    before = len(stack.events())
    h = stack.client.http
    r = h.post("/api/session", json={"credential": {"kind": "iris", "value": "x"}})
    assert r.status_code == 422
    r = h.post("/api/session", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 422
    r = h.post("/api/session/doors/1/open")
    assert r.status_code == 409 and "no session" in r.json()["detail"]
    stack.server.add_reader(card=None, reader_id="R0014", display_name="e")
    stack.client.start_session("qr", stack.server.issue_qr("R0014"))
    r = h.post("/api/session/doors/99/open")
    assert r.status_code == 404 and "no door 99" in r.json()["detail"]
    r = h.post("/api/return")
    assert r.status_code == 409
    stack.client.finish()
    kinds = [e.kind for e in stack.events()[before:]]
    assert kinds == ["session"]  # only the session's own end: nothing half-written
    assert h.get("/openapi.json").json()["paths"]["/api/session"]
    assert "/api/events" in h.get("/docs").text


def test_event_stream_resumes_after_last_event_id(stack: Stack) -> None:
    """A screen that reconnects with Last-Event-ID gets what it missed, in order."""
    stack.server.add_reader(card=None, reader_id="R0015", display_name="f")
    _borrow(stack, stack.server.issue_qr("R0015"), 2, 1)
    stack.client.finish()
    recent = stack.client.state()["recent"]
    keys = [r["key"] for r in recent]
    assert keys.index("door.open") < keys.index("borrow.loaned") < keys.index("session.ended")
    cut = recent[keys.index("door.open")]["id"]
    missed = [r["key"] for r in recent if r["id"] > cut]
    got: list[str] = []
    with httpx.stream("GET", stack.kiosk.url + "/api/events", timeout=10,
                      headers={"Last-Event-ID": str(cut)}) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        for line in r.iter_lines():
            if line.startswith("event: "):
                got.append(line[7:])
            if len(got) == len(missed):
                break
    assert got == missed
