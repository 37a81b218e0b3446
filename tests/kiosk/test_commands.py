"""Remote commands on the cabinet: a real runtime on the small simulator, a real ledger file.

What a stuck reader, a technician and the library would notice: the door unlocks once (never
twice for a replayed reply), not during someone else's session and not when the command is
late; a recount finds a book that vanished behind the ledger's back; the status names the
devices, the fill of each door and an alarm until the door is counted again; a command a
crash interrupted is answered, not repeated.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from kiosk.commands import RemoteCommands
from kiosk.config import load_config
from kiosk.runtime import KioskRuntime
from lendbox.kiosk_kit import write_kiosk_config
from simulator import Simulator
from syncproto.messages import CabinetStatus, Command, CommandResult

SMALL = Path(__file__).resolve().parents[2] / "simulator" / "cabinets" / "small.toml"


class Cab:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.sim = Simulator.from_file(SMALL, control_port=None).start()
        self.cfg = write_kiosk_config(tmp / "kiosk.toml", self.sim, data_dir=tmp / "data")
        self.runtime: KioskRuntime | None = None

    def start(self) -> KioskRuntime:
        self.runtime = KioskRuntime(load_config(self.cfg)).start()
        return self.runtime

    def stop(self) -> None:
        if self.runtime is not None:
            self.runtime.stop()
            self.runtime = None

    @property
    def remote(self) -> RemoteCommands:
        assert self.runtime is not None and self.runtime.remote is not None
        return self.runtime.remote

    def results(self, n: int, timeout: float = 15.0) -> list[CommandResult]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.remote.results.pending()
            if len(got) >= n:
                return got
            time.sleep(0.05)
        raise AssertionError(f"expected {n} results, have {self.remote.results.pending()}")

    def latched(self, door: int) -> bool:
        with self.sim.lock:
            return bool(self.sim.model.door(door).latched)

    def idle(self) -> None:
        assert self.runtime is not None and self.runtime.wait_idle(20)


@pytest.fixture
def cab(tmp_path: Path) -> Iterator[Cab]:
    c = Cab(tmp_path)
    try:
        c.start()
        yield c
    finally:
        c.stop()
        c.sim.stop()


_ids = iter(range(1, 10_000))


def command(kind: str, args: dict[str, Any] | None = None, *, late: bool = False) -> Command:
    now = datetime.now(UTC)
    issued = now - timedelta(minutes=20 if late else 0)
    return Command(id=next(_ids), kind=kind, args=args or {}, issued_at=issued,  # type: ignore[arg-type]
                   expires_at=issued + timedelta(minutes=10))


def test_open_door_unlocks_once_even_when_the_reply_is_replayed(cab: Cab) -> None:
    cmd = command("open_door", {"door": 3, "reason": "stuck reader"})
    assert cab.latched(3)
    cab.remote.receive([cmd])
    [res] = cab.results(1)
    assert (res.id, res.status, res.result["door"], res.result["unlocked"]) == (
        cmd.id, "done", 3, True)
    assert not cab.latched(3)  # door 3 has no spring: unlatched, waiting to be pulled
    cab.sim.open_door(3)
    book = cab.sim.door_items(3)[0].item_id
    cab.sim.take_item(book)  # the reader takes back what was stuck behind the door
    cab.sim.close_door(3)
    cab.idle()
    # counted like any door opened without a session: the book taken is an alarm for staff
    assert cab.runtime is not None and cab.runtime.ledger is not None
    alarms = [e.payload for e in cab.runtime.ledger.events_after(0, 1000) if e.kind == "alarm"]
    assert {"reason": "removed_without_session", "item_id": book}.items() <= alarms[-1].items()

    cab.remote.receive([cmd])  # the same reply again (its ack was lost)
    time.sleep(0.5)
    assert cab.latched(3)  # not opened a second time
    assert [r.id for r in cab.remote.results.pending()] == [cmd.id]


def test_open_door_is_refused_during_a_session_and_when_late(cab: Cab) -> None:
    assert cab.runtime is not None
    cab.runtime.begin_return()  # a passer-by returning a book: their door opens
    door = int(next(iter(cab.runtime.state()["doors"])))
    other = 3 if door != 3 else 2
    busy = command("open_door", {"door": other, "reason": "stuck"})
    late = command("open_door", {"door": other, "reason": "stuck"}, late=True)
    cab.remote.receive([busy, late])
    by_id = {r.id: r for r in cab.results(2)}
    assert by_id[busy.id].status == "failed"
    assert by_id[busy.id].result["reason"] == "session_running"
    assert by_id[late.id].result["reason"] == "expired"
    assert cab.latched(other)
    missing = command("open_door", {"door": 42, "reason": "stuck"})
    cab.remote.receive([missing])
    assert {r.id: r for r in cab.results(3)}[missing.id].result["reason"] == "no_such_door"


def test_reinventory_counts_every_door_and_finds_what_vanished(cab: Cab) -> None:
    assert cab.runtime is not None and cab.runtime.ledger is not None
    ledger = cab.runtime.ledger
    before = {s.door: s.taken_at for s in ledger.door_snapshots()}
    # a book disappears without the kiosk seeing it (a door prised and shut, power off…)
    with cab.sim.lock:
        gone = cab.sim.model.door(2).items.pop(0)
        cab.sim.model.items[gone].door = None
    cmd = command("reinventory")
    cab.remote.receive([cmd])
    [res] = cab.results(1, timeout=30)
    assert res.status == "done", res.result
    counts = {int(d): v["count"] for d, v in res.result["doors"].items()}
    assert counts == {n: len(cab.sim.door_items(n)) for n in (1, 2, 3, 4)}
    assert res.result["failed_doors"] == []
    after = {s.door: s.taken_at for s in ledger.door_snapshots()}
    assert all(after[d] > before[d] for d in before)  # new snapshots for the next batch
    alarms = [e.payload for e in ledger.events_after(0, 1000) if e.kind == "alarm"]
    assert any(a.get("item_id") == gone and a["reason"] == "removed_without_session"
               for a in alarms)


def test_status_reports_devices_fill_and_an_alarm_until_the_door_is_counted(cab: Cab) -> None:
    status = cab.remote.status()
    assert status.devices and set(status.devices.values()) == {"ok"}
    fill = {f.door: (f.count, f.capacity) for f in status.fill}
    assert fill == {1: (30, 40), 2: (6, 10), 3: (4, 10), 4: (0, 10)}
    assert status.open_alarms == [] and status.offline_exposure == 0
    assert status.kiosk_version

    cab.sim.jam_lock(2)
    cab.remote.receive([command("open_door", {"door": 2, "reason": "stuck"})])
    [res] = cab.results(1)
    assert res.status == "failed" and res.result["reason"] == "unlock_failed"
    [alarm] = cab.remote.status().open_alarms
    assert alarm.door == 2 and alarm.kind.startswith("unlock_failed")

    cab.sim.jam_lock(2, False)
    cab.remote.receive([command("reinventory")])
    cab.results(2, timeout=30)
    assert cab.remote.status().open_alarms == []  # counted since: cleared


def test_a_command_interrupted_by_a_restart_is_answered_not_repeated(cab: Cab) -> None:
    assert cab.runtime is not None and cab.runtime.ledger is not None
    cmd = command("open_door", {"door": 3, "reason": "stuck"})
    # what a crash right after "seen" and before the unlock leaves in the ledger
    cab.runtime.ledger.set_meta("commands_seen", {str(cmd.id): "started"})
    cab.stop()
    cab.start()
    [res] = cab.results(1)
    assert (res.id, res.status, res.result["reason"]) == (cmd.id, "failed", "interrupted")
    cab.remote.receive([cmd])
    time.sleep(0.5)
    assert cab.latched(3)
    cab.remote.results.delivered([cmd.id])
    assert cab.remote.results.pending() == []


def test_fetch_diagnostics_answers_with_the_devices(cab: Cab) -> None:
    cab.remote.receive([command("fetch_diagnostics")])
    [res] = cab.results(1, timeout=30)
    assert res.status == "done", res.result
    devices = res.result.get("devices") or res.result.get("health", {}).get("boards")
    assert devices, res.result
    CommandResult.model_validate_json(res.model_dump_json())  # it fits the wire as it is


def test_an_older_server_that_refuses_the_status_still_gets_the_events(tmp_path: Path) -> None:
    """A server from before the fleet status answers 422 to the unknown fields: the agent
    goes on with plain batches instead of going offline. (The older server is played by a
    transport that validates like it did: no such server exists to run.)"""
    import json as json_mod

    import httpx

    from kiosk.ledger import Ledger, NewEvent
    from kiosk.sync import SyncAgent
    from syncproto.grants import generate_keypair

    bodies: list[dict[str, Any]] = []

    def old_server(request: httpx.Request) -> httpx.Response:
        body = json_mod.loads(request.content)
        bodies.append(body)
        if {"status", "command_results"} & set(body):
            return httpx.Response(422, json={"error": "validation_error", "detail": "extra",
                                             "server_time": datetime.now(UTC).isoformat()})
        last = max((e["seq"] for e in body["events"]), default=0)
        return httpx.Response(200, json={"version": 1, "applied_through": last,
                                         "server_time": datetime.now(UTC).isoformat()})

    with Ledger(tmp_path / "ledger.db", "cab-old") as ledger:
        ledger.append([NewEvent("session", {"session": "s1", "outcome": "finished"})])
        agent = SyncAgent(ledger, cabinet_id="cab-old", server_url="http://old.invalid",
                          private_key=generate_keypair()[0],
                          transport=httpx.MockTransport(old_server))
        agent.status_provider = lambda: CabinetStatus(reported_at=datetime.now(UTC))
        try:
            outcome = agent.sync_once()
            assert outcome.ok and ledger.acked_through() == 1
            assert "status" in bodies[0] and "status" not in bodies[-1]
            agent.sync_once()
            assert "status" not in bodies[-1]  # not tried again on every round
        finally:
            agent.close()
