"""``server.stats`` and ``GET /api/reports/stats`` on SQLite and PostgreSQL.

The figures are checked against a small history sent through the real sync path, whose
answers are worked out by hand in the comments (not by re-running the code under test).
Then time zones (a loan at 01:30 Shanghai is 17:30 UTC the day before), CSV read back with
the csv module, the JSON shape, and 422s for every bad parameter.
"""

from __future__ import annotations

import csv
import io
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, insert

from server import stats
from server.db import write_tx
from server.schema import branches, cabinets, exceptions, items, libraries, ratings, readers
from syncproto.messages import CabinetEvent
from tests.server.test_ingest import CAB_PUBLIC, batch_of, send
from tests.server.test_security import Clock, add_staff, assert_error, bearer, make_app, token_for

NOW = datetime(2030, 3, 1, 9, 0, tzinfo=UTC)  # 17:00 in Shanghai
LIB = "CN-440300"
SH_DAY = (datetime(2030, 2, 28, 16, 0, tzinfo=UTC), datetime(2030, 3, 1, 16, 0, tzinfo=UTC))
UTC_DAY = (datetime(2030, 3, 1, tzinfo=UTC), datetime(2030, 3, 2, tzinfo=UTC))


def utc(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2030, 2 if day > 3 else 3, day, hour, minute, tzinfo=UTC)


def ev(cab: str, seq: int, kind: str, at: datetime, offline: bool,
       payload: dict[str, Any]) -> CabinetEvent:
    return CabinetEvent(cabinet_id=cab, seq=seq, uuid=uuid.uuid4(), kind=kind,  # type: ignore[arg-type]
                        at=at, mono=float(seq), boot_id="b", offline=offline, payload=payload)


def loan(cab: str, seq: int, item: str, reader: str, at: datetime, offline: bool) -> CabinetEvent:
    return ev(cab, seq, "loan", at, offline, {"item_id": item, "reader_id": reader,
                                              "due": "2030-04-01", "door": 1, "session": "s"})


def ret(cab: str, seq: int, item: str, at: datetime, offline: bool) -> CabinetEvent:
    return ev(cab, seq, "return", at, offline, {"item_id": item, "owner_library": LIB,
                                                "door": 1, "session": "s"})


def build_history(engine: Engine) -> None:
    """Branch B1 (population 1000) with C1 (capacity 10); B2 (population unknown) with C2.

    C1 starts with I1..I4; C2 with Y1; X1 (home B2) is out on loan.
    """
    with write_tx(engine) as conn:
        conn.execute(insert(libraries).values(isil=LIB, name="Shenzhen Library"))
        conn.execute(insert(branches).values(id="B1", name="one", library_isil=LIB,
                                             floating=False, population=1000))
        conn.execute(insert(branches).values(id="B2", name="two", library_isil=LIB,
                                             floating=False, population=None))
        for cab, branch, capacity in (("C1", "B1", 10), ("C2", "B2", 0)):
            conn.execute(insert(cabinets).values(id=cab, branch_id=branch, name=cab,
                                                 location="", public_key=CAB_PUBLIC,
                                                 registered_at=NOW, active=True,
                                                 applied_through=0, deny_version_sent=0,
                                                 capacity=capacity))
        for rid in ("R1", "R2", "R3"):
            conn.execute(insert(readers).values(id=rid, display_name=rid, role="reader",
                                                tier="standard", status="ok", registered_at=NOW))
        for item_id, status, where, home, borrower in (
                ("I1", "in_cabinet", "C1", "B1", None), ("I2", "in_cabinet", "C1", "B1", None),
                ("I3", "in_cabinet", "C1", "B1", None), ("I4", "in_cabinet", "C1", "B1", None),
                ("Y1", "in_cabinet", "C2", "B2", None), ("X1", "loaned", None, "B2", "R3")):
            conn.execute(insert(items).values(id=item_id, status=status, owner_library=LIB,
                                              location_cabinet_id=where, home_branch_id=home,
                                              borrower_id=borrower, version=0))
        # ratings: C1 5, 4, 2; C2 3; phone 5; and a 1 the day before (outside)
        rated: list[tuple[str | None, int, datetime]] = [
            ("C1", 5, utc(1, 2)), ("C1", 4, utc(1, 3)), ("C1", 2, utc(1, 4)),
            ("C2", 3, utc(1, 5)), (None, 5, utc(1, 6)), ("C1", 1, utc(27, 6))]
        for rated_cab, score, at in rated:
            conn.execute(insert(ratings).values(cabinet_id=rated_cab, score=score, at=at, comment=""))
        for kind, status, at in (("t_double", "open", utc(1, 1)), ("t_double", "open", utc(1, 2)),
                                 ("t_double", "resolved", utc(1, 3)),
                                 ("t_overdraft", "open", utc(1, 4)),
                                 ("t_overdraft", "open", utc(27, 4))):
            conn.execute(insert(exceptions).values(kind=kind, evidence={}, actions=[],
                                                   status=status, created_at=at))
    # C1 (UTC / Shanghai):  Feb 28 17:30 / 01:30 loan I3 R1 offline
    #   01:30 / 09:30 loan I1 R1;  01:45 / 09:45 loan I2 R2 offline
    #   03:10 / 11:10 return I1;   04:00 / 12:00 return X1 (home B2: flow B2 → B1)
    send(engine, batch_of([
        loan("C1", 1, "I3", "R1", utc(28, 17, 30), True),
        loan("C1", 2, "I1", "R1", utc(1, 1, 30), False),
        loan("C1", 3, "I2", "R2", utc(1, 1, 45), True),
        ret("C1", 4, "I1", utc(1, 3, 10), False),
        ret("C1", 5, "X1", utc(1, 4), False)], cab="C1", sent_at=NOW), NOW)
    # C2: 02:00 / 10:00 loan Y1 R3;  05:00 / 13:00 return I2 offline (home B1: flow B1 → B2);
    #     05:01 a session event
    send(engine, batch_of([
        loan("C2", 1, "Y1", "R3", utc(1, 2), False),
        ret("C2", 2, "I2", utc(1, 5), True),
        ev("C2", 3, "session", utc(1, 5, 1), False,
           {"session": "s3", "kind": "end", "outcome": "ok"})], cab="C2", sent_at=NOW), NOW)


def compute(engine: Engine, period: tuple[datetime, datetime], tz: str) -> dict[str, Any]:
    with engine.connect() as conn:
        return stats.compute(conn, *period, tz, now=NOW)


def by(rows: list[dict[str, Any]], key: str) -> dict[Any, dict[str, Any]]:
    return {row[key]: row for row in rows}


# ---------------------------------------------------------------------- figures


def test_figures_of_a_hand_built_day_in_shanghai(engine: Engine) -> None:
    build_history(engine)
    result = compute(engine, SH_DAY, "Asia/Shanghai")
    t, totals = result["tables"], result["totals"]
    assert result["period"] == {"from": SH_DAY[0].isoformat(), "to": SH_DAY[1].isoformat(),
                                "tz": "Asia/Shanghai"}
    assert [(r["cabinet_id"], r["hour"], r["hour_of_day"], r["loans"], r["returns"])
            for r in t["hourly"]] == [
        ("C1", "2030-03-01T01:00:00+08:00", 1, 1, 0),
        ("C1", "2030-03-01T09:00:00+08:00", 9, 2, 0),
        ("C1", "2030-03-01T11:00:00+08:00", 11, 0, 1),
        ("C1", "2030-03-01T12:00:00+08:00", 12, 0, 1),
        ("C2", "2030-03-01T10:00:00+08:00", 10, 1, 0),
        ("C2", "2030-03-01T13:00:00+08:00", 13, 0, 1)]

    # stock over [Feb 28 16:00, now = Mar 1 09:00) UTC = 1020 minutes.
    # C1: 4 until 17:30 (90 min), 3 until 01:30 (480), 2 until 01:45 (15), 1 until 03:10
    # (85), 2 until 04:00 (50), 3 until 09:00 (300): 360+1440+30+85+100+900 = 2915
    # C2: 1 until 02:00 (600), 0 until 05:00 (180), 1 until 09:00 (240): 840
    u = by(t["utilisation"], "cabinet_id")
    c1_avg, c2_avg = 2915 / 1020, 840 / 1020
    assert (u["C1"]["loans"], u["C1"]["returns"], u["C1"]["stock_now"]) == (3, 2, 3)
    assert u["C1"]["average_stock"] == pytest.approx(c1_avg)
    assert u["C1"]["utilisation"] == pytest.approx(3 / c1_avg)
    assert u["C1"]["occupancy"] == pytest.approx(c1_avg / 10)
    assert (u["C2"]["loans"], u["C2"]["stock_now"], u["C2"]["capacity"]) == (1, 1, 0)
    assert u["C2"]["utilisation"] == pytest.approx(1 / c2_avg)
    assert u["C2"]["occupancy"] is None  # capacity unknown

    # borrowers: B1 {R1, R2} of 1000; B2 {R3}, population unknown
    p = by(t["participation"], "branch_id")
    assert (p["B1"]["borrowers"], p["B1"]["participation"]) == (2, pytest.approx(0.002))
    assert (p["B2"]["borrowers"], p["B2"]["population"], p["B2"]["participation"]) == (
        1, None, None)
    assert totals["participation"] == {"branch_id": "TOTAL", "borrowers": 2, "population": 1000,
                                       "participation": pytest.approx(0.002)}

    s = by(t["satisfaction"], "cabinet_id")
    assert (s["C1"]["ratings"], s["C1"]["satisfied"]) == (3, 2)
    assert s["C1"]["satisfaction"] == pytest.approx(2 / 3)
    assert (s["C2"]["ratings"], s["C2"]["satisfaction"]) == (1, 0.0)
    assert (s[None]["ratings"], s[None]["satisfaction"]) == (1, 1.0)  # rated on the phone
    assert totals["satisfaction"]["ratings"] == 5
    assert totals["satisfaction"]["satisfaction"] == pytest.approx(0.6)

    assert t["flows"] == [{"from_branch_id": "B1", "to_branch_id": "B2", "returns": 1},
                          {"from_branch_id": "B2", "to_branch_id": "B1", "returns": 1}]

    o = by(t["offline"], "cabinet_id")
    assert (o["C1"]["events"], o["C1"]["offline"]) == (5, 2)
    assert o["C1"]["offline_share"] == pytest.approx(0.4)
    assert (o["C2"]["events"], o["C2"]["offline"]) == (3, 1)
    assert totals["offline"]["offline_share"] == pytest.approx(3 / 8)

    mine = [(r["kind"], r["status"], r["count"]) for r in t["exceptions"]
            if r["kind"].startswith("t_")]
    assert mine == [("t_double", "open", 2), ("t_double", "resolved", 1),
                    ("t_overdraft", "open", 1)]


def test_the_same_history_by_utc_hours(engine: Engine) -> None:
    """The UTC day leaves out the 17:30 UTC loan of Feb 28 (01:30 in Shanghai on Mar 1)."""
    build_history(engine)
    t = compute(engine, UTC_DAY, "UTC")["tables"]
    assert [(r["cabinet_id"], r["hour"], r["loans"], r["returns"]) for r in t["hourly"]] == [
        ("C1", "2030-03-01T01:00:00+00:00", 2, 0), ("C1", "2030-03-01T03:00:00+00:00", 0, 1),
        ("C1", "2030-03-01T04:00:00+00:00", 0, 1), ("C2", "2030-03-01T02:00:00+00:00", 1, 0),
        ("C2", "2030-03-01T05:00:00+00:00", 0, 1)]
    assert by(t["offline"], "cabinet_id")["C1"]["events"] == 4
    # stock over [Mar 1 00:00, 09:00) = 540 min: C1 3 (90), 2 (15), 1 (85), 2 (50), 3 (300)
    avg = (270 + 30 + 85 + 100 + 900) / 540
    assert by(t["utilisation"], "cabinet_id")["C1"]["average_stock"] == pytest.approx(avg)


def test_a_time_zone_moves_a_loan_between_hours_and_days(engine: Engine) -> None:
    build_history(engine)
    wide = (datetime(2030, 2, 28, tzinfo=UTC), datetime(2030, 3, 2, tzinfo=UTC))
    shanghai = compute(engine, wide, "Asia/Shanghai")["tables"]["hourly"]
    in_utc = compute(engine, wide, "UTC")["tables"]["hourly"]
    assert ("2030-03-01", 1, 1) in {(r["date"], r["hour_of_day"], r["loans"]) for r in shanghai}
    assert ("2030-02-28", 17, 1) in {(r["date"], r["hour_of_day"], r["loans"]) for r in in_utc}
    assert sum(r["loans"] for r in shanghai) == sum(r["loans"] for r in in_utc) == 4


def test_average_stock_walks_back_through_restocks() -> None:
    start = datetime(2030, 1, 1, tzinfo=UTC)
    end = start + timedelta(hours=10)
    restock = {"manifest": {"door": 1, "loaded": ["a", "b", "c", "e"], "removed": ["d", "e"],
                            "unreadable": ["c"]}}
    assert stats._stock_delta("restock", restock) == 2  # +a +b +e(put back) −d
    assert stats._stock_delta("alarm", {"reason": "door_forced"}) == 0
    # now 5 items; a restock (+2) at hour 4: 3 for 4 h, then 5 for 6 h → 42 / 10
    changes = [(start + timedelta(hours=4), 2)]
    assert stats._average_stock(5, changes, start, end, end) == pytest.approx(4.2)
    # a period in the future: today's stock is the best estimate
    assert stats._average_stock(5, [], end, end + timedelta(hours=1), start) == 5.0


# ---------------------------------------------------------------------- HTTP


def _client(engine: Engine) -> tuple[TestClient, dict[str, str]]:
    staff_id = add_staff(engine, "staff-1", "operator")
    return (TestClient(make_app(engine, Clock(NOW)), raise_server_exceptions=False),
            bearer(token_for(engine, staff_id, NOW)))


def test_http_json_csv_and_bad_parameters(engine: Engine) -> None:
    build_history(engine)
    client, auth = _client(engine)
    day = {"from": "2030-03-01", "to": "2030-03-02"}  # Shanghai midnights by default
    with client:
        body = client.get("/api/reports/stats", params=day, headers=auth).json()
        assert set(body) == {"period", "tables", "totals"}
        assert set(body["tables"]) == set(stats.TABLES)
        assert body["period"]["from"] == SH_DAY[0].isoformat()
        assert by(body["tables"]["utilisation"], "cabinet_id")["C1"]["loans"] == 3

        one = client.get("/api/reports/stats", params={**day, "table": "offline"},
                         headers=auth).json()
        assert one["table"] == "offline" and one["total"]["events"] == 8

        response = client.get("/api/reports/stats",
                              params={**day, "format": "csv", "table": "utilisation"},
                              headers=auth)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "text/csv; charset=utf-8"
        assert response.headers["content-disposition"] == (
            'attachment; filename="lendbox-stats-utilisation-20300228T1600Z-20300301T1600Z.csv"')
        rows = list(csv.DictReader(io.StringIO(response.content.decode("utf-8"))))
        assert [r["cabinet_id"] for r in rows] == ["C1", "C2"]
        assert float(rows[0]["average_stock"]) == pytest.approx(2915 / 1020)
        assert rows[1]["occupancy"] == ""  # None

        response = client.get("/api/reports/stats",
                              params={**day, "format": "csv", "table": "satisfaction",
                                      "tz": "UTC"}, headers=auth)
        rows = list(csv.DictReader(io.StringIO(response.text)))
        assert rows[-1]["cabinet_id"] == "TOTAL" and rows[-1]["ratings"] == "5"

        response = client.get("/api/reports/stats", params={
            "from": "2030-02-28T00:00:00Z", "to": "2030-03-02T00:00:00Z", "tz": "UTC",
            "format": "csv", "table": "hourly"}, headers=auth)
        hours = list(csv.reader(io.StringIO(response.text)))
        assert hours[0] == list(stats.COLUMNS["hourly"])
        assert ["C1", "2030-02-28T17:00:00+00:00", "2030-02-28", "17", "1", "0"] in hours

        assert client.get("/api/reports/stats", headers=auth).status_code == 200  # last 7 days

        for params, reason in (
                ({"from": "2030-13-01"}, "not a date"),
                ({"from": "2030-03-02", "to": "2030-03-01"}, "must be before"),
                ({"from": "2030-03-01", "to": "2030-03-01"}, "must be before"),
                ({"from": "2029-01-01", "to": "2030-03-01"}, "longer than 366 days"),
                ({**day, "tz": "Mars/Olympus"}, "unknown time zone"),
                ({**day, "tz": "../../etc/passwd"}, "unknown time zone"),
                ({**day, "table": "nope"}, "unknown table"),
                ({**day, "format": "xml"}, "format must be"),
                ({**day, "format": "csv"}, "needs table")):
            body = assert_error(client.get("/api/reports/stats", params=params, headers=auth),
                                422)
            assert reason in body["detail"], (params, body)
