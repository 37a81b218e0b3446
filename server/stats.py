"""Circulation statistics over a period ``[start, end)`` (issue 6, requirement 8).

``compute(conn, start, end, tz)`` returns every table at once as plain dicts (JSON-ready;
:func:`table_rows` flattens one for CSV). The definitions (README "Reports"):

- ``hourly``: applied loan / return events per cabinet per hour, by ``at_corrected`` (the
  server's idea of when it happened), bucketed in ``tz`` — cities report local hours.
- ``utilisation`` (利用率) = loans ÷ average stock; average stock is the time-weighted number
  of items ``in_cabinet`` at the cabinet over the period, rebuilt backwards from today's
  ``items`` through the applied events (loan −1, return +1, alarm naming an item −1,
  restock +loaded −removed); ``occupancy`` = average stock ÷ ``capacity`` (None when the
  capacity is unknown, i.e. 0).
- ``participation`` (参与率) = distinct borrowers (``reader_id`` of applied loans) at the
  branch's cabinets ÷ ``branches.population``; None when the population is unknown. The
  total counts only branches whose population is known.
- ``satisfaction`` (满意率) = ratings with score ≥ 4 ÷ all ratings (by ``ratings.at``), per
  cabinet (None: rated on the phone) and in total, with the counts.
- ``flows``: applied returns whose item's home branch differs from the returning cabinet's
  branch, counted per (home → returning) pair; items with no home branch are left out.
- ``offline``: events the cabinet decided offline ÷ all its stored events (all kinds).
- ``exceptions``: exceptions created in the period, by kind and status.

Why hour buckets are made in Python: SQLite and PostgreSQL truncate dates and convert time
zones with different functions (and SQLite knows no zones); fetching ``at_corrected`` and
bucketing with ``zoneinfo`` is identical on both and cheap at report sizes (one row per
loan/return of the period, ≤ 366 days). Everything else is a GROUP BY in SQL.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import Connection, and_, case, func, select

from .schema import branches, cabinets, events, exceptions, items, ratings
from .security import aware_utc

__all__ = ["DEFAULT_TZ", "MAX_DAYS", "TABLES", "compute", "parse_period", "parse_tz",
           "table_rows"]

DEFAULT_TZ = "Asia/Shanghai"
MAX_DAYS = 366
TABLES = ("hourly", "utilisation", "participation", "satisfaction", "flows", "offline",
          "exceptions")

#: The columns of each table, in CSV order (a total row, where there is one, has the first
#: column set to ``TOTAL``).
COLUMNS: dict[str, tuple[str, ...]] = {
    "hourly": ("cabinet_id", "hour", "date", "hour_of_day", "loans", "returns"),
    "utilisation": ("cabinet_id", "branch_id", "loans", "returns", "average_stock",
                    "stock_now", "capacity", "utilisation", "occupancy"),
    "participation": ("branch_id", "borrowers", "population", "participation"),
    "satisfaction": ("cabinet_id", "ratings", "satisfied", "satisfaction"),
    "flows": ("from_branch_id", "to_branch_id", "returns"),
    "offline": ("cabinet_id", "events", "offline", "offline_share"),
    "exceptions": ("kind", "status", "count"),
}
TOTAL = "TOTAL"


# ----------------------------------------------------------------------------- parameters


def parse_tz(name: str) -> ZoneInfo:
    """The IANA zone ``name``; ValueError naming it when unknown."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, KeyError, OSError):
        raise ValueError(f"unknown time zone {name!r} (an IANA name such as Asia/Shanghai "
                         "or UTC)") from None


def _parse_instant(text: str, tz: ZoneInfo, what: str) -> datetime:
    """A date (midnight in ``tz``) or an ISO datetime (naive: in ``tz``) → aware UTC."""
    text = text.strip()
    try:
        if len(text) == 10:
            return datetime.combine(date.fromisoformat(text), time(), tz).astimezone(UTC)
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{what} {text!r} is not a date (YYYY-MM-DD) or an ISO datetime"
                         ) from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=tz)
    return value.astimezone(UTC)


def parse_period(start: str | None, end: str | None, tz: ZoneInfo,
                 now: datetime) -> tuple[datetime, datetime]:
    """``[start, end)`` from query text; defaults: ``end`` = next local midnight, ``start`` =
    ``end`` − 7 days. ValueError with the reason for a bad date, start ≥ end, or a period
    over :data:`MAX_DAYS` days (a report, not a data export)."""
    if end:
        end_at = _parse_instant(end, tz, "to")
    else:
        local_today = aware_utc(now).astimezone(tz).date()
        end_at = datetime.combine(local_today + timedelta(days=1), time(), tz).astimezone(UTC)
    start_at = _parse_instant(start, tz, "from") if start else end_at - timedelta(days=7)
    if start_at >= end_at:
        raise ValueError(f"from ({start_at.isoformat()}) must be before to ({end_at.isoformat()})")
    if end_at - start_at > timedelta(days=MAX_DAYS):
        raise ValueError(f"the period is longer than {MAX_DAYS} days")
    return start_at, end_at


# ----------------------------------------------------------------------------- tables


def _ratio(num: float, den: float | None) -> float | None:
    return None if not den else num / den


def _in_period(col: Any, start: datetime, end: datetime) -> Any:
    return and_(col >= start, col < end)


def _hourly(loans_returns: Sequence[Any], tz: ZoneInfo) -> list[dict[str, Any]]:
    buckets: dict[tuple[str, datetime], dict[str, int]] = defaultdict(
        lambda: {"loans": 0, "returns": 0})
    for row in loans_returns:
        local = aware_utc(row.at_corrected).astimezone(tz)
        hour = local.replace(minute=0, second=0, microsecond=0)
        buckets[(row.cabinet_id, hour)]["loans" if row.kind == "loan" else "returns"] += 1
    return [{"cabinet_id": cab, "hour": hour.isoformat(), "date": hour.date().isoformat(),
             "hour_of_day": hour.hour, **counts}
            for (cab, hour), counts in sorted(buckets.items(),
                                              key=lambda kv: (kv[0][0], kv[0][1]))]


def _stock_delta(kind: str, payload: Mapping[str, Any]) -> int:
    if kind == "loan":
        return -1
    if kind == "return":
        return 1
    if kind == "alarm":
        return -1 if payload.get("item_id") else 0
    manifest = payload.get("manifest") if kind == "restock" else None
    if not isinstance(manifest, Mapping):
        return 0

    def ids(key: str) -> set[str]:
        value = manifest.get(key)
        return {v for v in value if isinstance(v, str)} if isinstance(value, list) else set()

    # as server.routing reads a manifest: unreadable tags are no load, a book both removed
    # and loaded was put back
    loaded = ids("loaded") - ids("unreadable")
    return len(loaded) - len(ids("removed") - loaded)


def _average_stock(stock_now: int, changes: Sequence[tuple[datetime, int]], start: datetime,
                   end: datetime, now: datetime) -> float:
    """Time-weighted stock over ``[start, min(end, now))``, walking back from ``stock_now``
    through ``changes`` (time, delta) at or after ``start``. Negative walk-backs (a history
    that does not add up, e.g. items loaded by hand) count as 0."""
    stop = min(end, now)
    if stop <= start:
        return float(stock_now)
    stock, cursor, area = stock_now, max([now, *(t for t, _ in changes)]), 0.0
    for at, delta in sorted(changes, reverse=True):
        lo, hi = max(at, start), min(cursor, stop)
        if hi > lo:
            area += max(stock, 0) * (hi - lo).total_seconds()
        stock -= delta
        cursor = at
    lo, hi = start, min(cursor, stop)
    if hi > lo:
        area += max(stock, 0) * (hi - lo).total_seconds()
    return area / (stop - start).total_seconds()


def _utilisation(conn: Connection, cabs: Sequence[Any], loans_returns: Sequence[Any],
                 start: datetime, end: datetime, now: datetime) -> list[dict[str, Any]]:
    stock_now = {cab: int(n) for cab, n in conn.execute(
        select(items.c.location_cabinet_id, func.count())
        .where(items.c.status == "in_cabinet", items.c.location_cabinet_id.is_not(None))
        .group_by(items.c.location_cabinet_id))}
    changes: dict[str, list[tuple[datetime, int]]] = defaultdict(list)
    # only alarms and restocks need their payload (whether an item left, manifest sizes)
    since = and_(events.c.applied.is_(True), events.c.at_corrected >= start)
    for row in conn.execute(select(events.c.cabinet_id, events.c.kind, events.c.at_corrected)
                            .where(since, events.c.kind.in_(("loan", "return")))):
        changes[row.cabinet_id].append((aware_utc(row.at_corrected),
                                        _stock_delta(row.kind, {})))
    for cab_id, kind, at, payload in conn.execute(
            select(events.c.cabinet_id, events.c.kind, events.c.at_corrected, events.c.payload)
            .where(since, events.c.kind.in_(("alarm", "restock")))):
        delta = _stock_delta(kind, payload or {})
        if delta:
            changes[cab_id].append((aware_utc(at), delta))
    counts: dict[str, dict[str, int]] = defaultdict(lambda: {"loans": 0, "returns": 0})
    for row in loans_returns:
        counts[row.cabinet_id]["loans" if row.kind == "loan" else "returns"] += 1
    out = []
    for cab in cabs:
        avg = _average_stock(int(stock_now.get(cab.id, 0)), changes[cab.id], start, end, now)
        loans = counts[cab.id]["loans"]
        capacity = int(cab.capacity or 0)
        out.append({"cabinet_id": cab.id, "branch_id": cab.branch_id, "loans": loans,
                    "returns": counts[cab.id]["returns"], "average_stock": avg,
                    "stock_now": int(stock_now.get(cab.id, 0)), "capacity": capacity,
                    "utilisation": _ratio(loans, avg), "occupancy": _ratio(avg, capacity)})
    return out


def _participation(conn: Connection, start: datetime,
                   end: datetime) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    # the reader id is read out of the JSON payload in SQL (JSON_EXTRACT on SQLite, ->> on
    # PostgreSQL, both spelled the same in SQLAlchemy), so distinct counting stays in SQL
    reader = events.c.payload["reader_id"].as_string()
    loans = (select(cabinets.c.branch_id.label("branch_id"), reader.label("reader_id"))
             .select_from(events.join(cabinets, cabinets.c.id == events.c.cabinet_id))
             .where(events.c.kind == "loan", events.c.applied.is_(True),
                    _in_period(events.c.at_corrected, start, end), reader.is_not(None),
                    reader != "")
             .subquery())
    borrowers = {branch: int(n) for branch, n in conn.execute(
        select(loans.c.branch_id, func.count(func.distinct(loans.c.reader_id)))
        .group_by(loans.c.branch_id))}
    served = {branch for (branch,) in conn.execute(select(cabinets.c.branch_id).distinct())}
    rows = []
    for branch in conn.execute(select(branches.c.id, branches.c.population)
                               .order_by(branches.c.id)):
        if branch.id not in served and branch.population is None:
            continue
        population = branch.population or None  # 0 is as unknown as NULL
        count = borrowers.get(branch.id, 0)
        rows.append({"branch_id": branch.id, "borrowers": count, "population": population,
                     "participation": _ratio(count, population)})
    # a reader who borrowed in two branches counts once in the total
    known = [r["branch_id"] for r in rows if r["population"] is not None]
    known_readers = int(conn.execute(
        select(func.count(func.distinct(loans.c.reader_id)))
        .where(loans.c.branch_id.in_(known))).scalar_one()) if known else 0
    known_population = sum(r["population"] for r in rows if r["population"] is not None)
    total = {"branch_id": TOTAL, "borrowers": known_readers,
             "population": known_population or None,
             "participation": _ratio(known_readers, known_population)}
    return rows, total


def _satisfaction(conn: Connection, start: datetime,
                  end: datetime) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    good = func.sum(case((ratings.c.score >= 4, 1), else_=0))
    rows = conn.execute(select(ratings.c.cabinet_id, func.count(), good)
                        .where(_in_period(ratings.c.at, start, end))
                        .group_by(ratings.c.cabinet_id)).all()
    out = [{"cabinet_id": cab, "ratings": int(n), "satisfied": int(ok or 0),
            "satisfaction": _ratio(int(ok or 0), int(n))}
           for cab, n, ok in sorted(rows, key=lambda r: (r[0] is None, r[0] or ""))]
    n_all, ok_all = sum(r["ratings"] for r in out), sum(r["satisfied"] for r in out)
    return out, {"cabinet_id": TOTAL, "ratings": n_all, "satisfied": ok_all,
                 "satisfaction": _ratio(ok_all, n_all)}


def _flows(conn: Connection, start: datetime, end: datetime) -> list[dict[str, Any]]:
    stmt = (select(items.c.home_branch_id, cabinets.c.branch_id, func.count())
            .select_from(events.join(cabinets, cabinets.c.id == events.c.cabinet_id)
                         .join(items, items.c.id == events.c.item_id))
            .where(events.c.kind == "return", events.c.applied.is_(True),
                   _in_period(events.c.at_corrected, start, end),
                   items.c.home_branch_id.is_not(None),
                   items.c.home_branch_id != cabinets.c.branch_id)
            .group_by(items.c.home_branch_id, cabinets.c.branch_id))
    return [{"from_branch_id": home, "to_branch_id": to, "returns": int(n)}
            for home, to, n in sorted(conn.execute(stmt).all())]


def _offline(conn: Connection, start: datetime,
             end: datetime) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    off = func.sum(case((events.c.offline.is_(True), 1), else_=0))
    rows = conn.execute(select(events.c.cabinet_id, func.count(), off)
                        .where(_in_period(events.c.at_corrected, start, end))
                        .group_by(events.c.cabinet_id).order_by(events.c.cabinet_id)
                        ).all()
    out = [{"cabinet_id": cab, "events": int(n), "offline": int(o or 0),
            "offline_share": _ratio(int(o or 0), int(n))} for cab, n, o in rows]
    n_all, o_all = sum(r["events"] for r in out), sum(r["offline"] for r in out)
    return out, {"cabinet_id": TOTAL, "events": n_all, "offline": o_all,
                 "offline_share": _ratio(o_all, n_all)}


def _exceptions(conn: Connection, start: datetime, end: datetime) -> list[dict[str, Any]]:
    rows = conn.execute(select(exceptions.c.kind, exceptions.c.status, func.count())
                        .where(_in_period(exceptions.c.created_at, start, end))
                        .group_by(exceptions.c.kind, exceptions.c.status)
                        .order_by(exceptions.c.kind, exceptions.c.status)).all()
    return [{"kind": kind, "status": status, "count": int(n)} for kind, status, n in rows]


def compute(conn: Connection, start: datetime, end: datetime, tz: str | ZoneInfo = DEFAULT_TZ,
            *, now: datetime | None = None) -> dict[str, Any]:
    """Every statistic over ``[start, end)`` (aware datetimes); hour buckets in ``tz``.

    ``now`` (default: the current time) bounds the stock walk-back: stock after ``now`` is
    not known yet. Returns ``{"period": {...}, "tables": {name: rows}, "totals": {name:
    row}}``; the benches and the demo call this directly.
    """
    zone = parse_tz(tz) if isinstance(tz, str) else tz
    start, end = aware_utc(start), aware_utc(end)
    if start >= end:
        raise ValueError("start must be before end")
    now = aware_utc(now) if now is not None else datetime.now(UTC)
    cabs = conn.execute(select(cabinets.c.id, cabinets.c.branch_id, cabinets.c.capacity)
                        .order_by(cabinets.c.id)).all()
    loans_returns = conn.execute(
        select(events.c.cabinet_id, events.c.kind, events.c.at_corrected)
        .where(events.c.applied.is_(True), events.c.kind.in_(("loan", "return")),
               _in_period(events.c.at_corrected, start, end))).all()
    participation, participation_total = _participation(conn, start, end)
    satisfaction, satisfaction_total = _satisfaction(conn, start, end)
    offline, offline_total = _offline(conn, start, end)
    return {
        "period": {"from": start.isoformat(), "to": end.isoformat(), "tz": zone.key},
        "tables": {
            "hourly": _hourly(loans_returns, zone),
            "utilisation": _utilisation(conn, cabs, loans_returns, start, end, now),
            "participation": participation,
            "satisfaction": satisfaction,
            "flows": _flows(conn, start, end),
            "offline": offline,
            "exceptions": _exceptions(conn, start, end),
        },
        "totals": {"participation": participation_total, "satisfaction": satisfaction_total,
                   "offline": offline_total},
    }


def table_rows(result: Mapping[str, Any], table: str) -> tuple[tuple[str, ...],
                                                               list[list[Any]]]:
    """(header, rows) of one table of a :func:`compute` result, its total row last."""
    columns = COLUMNS[table]
    rows = [*result["tables"][table]]
    if table in result["totals"]:
        rows.append(result["totals"][table])
    return columns, [[row.get(c) for c in columns] for row in rows]
