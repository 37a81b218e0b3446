"""The fleet overview (``server.fleet_status.fleet_overview``), on both databases, fed by the
real sync path: what the console's first page shows of each cabinet."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine

from server import fleet_status
from server.db import write_tx
from syncproto.messages import CabinetStatus, DoorFill, StatusAlarm
from tests.server.test_ingest import CAB, NOW, OTHER, batch_of, loan, send, setup_network


def overview(engine: Engine, now: datetime) -> dict[str, dict[str, Any]]:
    with engine.connect() as conn:
        return {row["id"]: row for row in fleet_status.fleet_overview(conn, now)}


def reported(at: datetime = NOW, **kw: Any) -> CabinetStatus:
    values: dict[str, Any] = {
        "reported_at": at, "kiosk_version": "0.1.0",
        "devices": {"board-1": "ok", "reader-1": "degraded", "card_reader": "ok"},
        "open_alarms": [StatusAlarm(kind="door_left_open", door=2, at=at - timedelta(minutes=3))],
        "fill": [DoorFill(door=1, count=30, capacity=40), DoorFill(door=2, count=5, capacity=10)],
        "offline_exposure": 3, "offline_exposure_cap": 20}
    values.update(kw)
    return CabinetStatus(**values)


def test_a_reporting_cabinet_shows_its_status_and_a_silent_one_shows_nothing(engine: Engine) -> None:
    setup_network(engine)
    send(engine, batch_of([], status=reported()), NOW)
    with write_tx(engine) as conn:
        fleet_status.queue_command(conn, cabinet_id=CAB, kind="reinventory", args={},
                                   actor="op", now=NOW)
    rows = overview(engine, NOW + timedelta(minutes=1))
    cab = rows[CAB]
    assert cab["online"] is True and cab["last_sync_at"] == NOW.isoformat()
    assert cab["devices"] == {"board-1": "ok", "reader-1": "degraded", "card_reader": "ok"}
    assert cab["device_faults"] == 1
    assert cab["open_alarms"] == [{"kind": "door_left_open", "door": 2,
                                   "at": (NOW - timedelta(minutes=3)).isoformat()}]
    assert cab["fill"] == {1: {"count": 30, "capacity": 40}, 2: {"count": 5, "capacity": 10}}
    assert cab["fill_share"] == 35 / 50
    assert cab["offline_exposure"] == 3 and cab["offline_exposure_cap"] == 20
    assert cab["pending_commands"] == 1 and cab["held_events"] == 0
    assert cab["kiosk_version"] == "0.1.0"

    other = rows[OTHER]  # registered, never synced
    assert other["online"] is False and other["last_sync_at"] is None
    assert other["devices"] == {} and other["fill"] == {} and other["fill_share"] == 0.0
    assert other["pending_commands"] == 0


def test_online_means_a_sync_within_the_window(engine: Engine) -> None:
    setup_network(engine)
    send(engine, batch_of([], status=reported()), NOW)
    window = timedelta(seconds=fleet_status.ONLINE_WINDOW_S)
    assert overview(engine, NOW + window)[CAB]["online"] is True
    assert overview(engine, NOW + window + timedelta(seconds=1))[CAB]["online"] is False
    # a sync without a status (an older kiosk) still counts as online
    send(engine, batch_of([]), NOW + window * 2)
    row = overview(engine, NOW + window * 2)[CAB]
    assert row["online"] is True and row["offline_exposure"] == 3


def test_the_newest_report_wins_and_a_late_older_one_is_ignored(engine: Engine) -> None:
    setup_network(engine)
    send(engine, batch_of([], status=reported(offline_exposure=7, open_alarms=[])),
         NOW + timedelta(seconds=10))
    send(engine, batch_of([], status=reported(at=NOW - timedelta(minutes=5))),
         NOW + timedelta(seconds=20))
    row = overview(engine, NOW + timedelta(seconds=30))[CAB]
    assert row["offline_exposure"] == 7 and row["open_alarms"] == []


def test_events_held_behind_a_gap_and_expired_commands_show(engine: Engine) -> None:
    setup_network(engine)
    send(engine, batch_of([loan(2, "I2")], status=reported()), NOW)  # seq 1 missing
    with write_tx(engine) as conn:
        fleet_status.queue_command(conn, cabinet_id=CAB, kind="open_door",
                                   args={"door": 1, "reason": "stuck"}, actor="op", now=NOW)
    assert overview(engine, NOW)[CAB]["held_events"] == 1
    assert overview(engine, NOW)[CAB]["pending_commands"] == 1
    assert overview(engine, NOW + timedelta(minutes=11))[CAB]["pending_commands"] == 0
    with engine.connect() as conn:
        [listed] = fleet_status.list_commands(conn, CAB, now=NOW + timedelta(minutes=11))
        assert listed["status"] == "expired"
        detail = fleet_status.cabinet_overview(conn, CAB, NOW)
        assert detail is not None and detail["id"] == CAB
        assert fleet_status.cabinet_overview(conn, "nope", NOW) is None
