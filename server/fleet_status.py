"""The fleet overview and remote commands, between the console and the cabinets.

Why it works this way:

- **The cabinet reports, the server remembers the latest.** Every sync batch of a current
  kiosk carries a :class:`syncproto.messages.CabinetStatus` (devices, open alarms, fill per
  door, offline exposure, version). The server keeps one row per cabinet (the newest by the
  cabinet's ``reported_at``) and the overview reads it; nothing is polled.
- **Online** means a sync within :data:`ONLINE_WINDOW_S` (5 minutes: a kiosk syncs every few
  seconds, so several minutes of silence is a cabinet that is off, not a slow one).
- **Commands ride on sync replies.** Staff queue a command; the next reply to that cabinet
  carries it (``queued`` → ``sent``) and every reply after that carries it again until the
  cabinet's result arrives — a lost reply must not lose the command. The cabinet executes
  each id at most once (it remembers them), and answers with a ``command_result`` in the
  batch field ``SyncBatch.command_results`` (chosen over a new event kind: a result is not
  circulation, needs no sequence number, and an older server's event kinds stay as they
  are). The first result wins: ``done``/``failed`` are final, a repeated result changes
  nothing.
- **Expiry.** A command not delivered or not answered by ``expires_at`` is ``expired`` and
  never delivered again: ten minutes for ``open_door`` (a door that opens an hour after the
  reader left is a theft risk, not a help), an hour for the others. A result that still
  arrives for an expired command is stored (the cabinet did act — the record must say so).
- **Older kiosks.** Commands go only to cabinets whose batch carries a ``status`` (a kiosk
  that knows the protocol addition): an older kiosk's reply model refuses unknown fields,
  so sending it a command would break its sync.
- Every queueing and every result is in ``audit`` (``command.queue``, ``command.result``,
  ``command.expire``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, and_, func, insert, select, update

from syncproto.messages import COMMAND_KINDS, CabinetStatus, Command, CommandResult

from .schema import cabinet_commands, cabinet_status, cabinets, events
from .security import record_audit

__all__ = [
    "COMMAND_EXPIRY",
    "ONLINE_WINDOW_S",
    "OPEN_STATUSES",
    "RESULT_MAX_BYTES",
    "CommandRefused",
    "cabinet_overview",
    "commands_for_delivery",
    "expire_commands",
    "fleet_overview",
    "list_commands",
    "queue_command",
    "store_results",
    "store_status",
]

_log = logging.getLogger(__name__)

#: A cabinet is online when its last sync is at most this old.
ONLINE_WINDOW_S = 300.0
#: How long a queued command may wait for delivery and its result.
COMMAND_EXPIRY: dict[str, timedelta] = {
    "open_door": timedelta(minutes=10),
    "reinventory": timedelta(hours=1),
    "fetch_diagnostics": timedelta(hours=1),
}
#: Statuses of a command still to be delivered or answered.
OPEN_STATUSES = ("queued", "sent")
#: A result bigger than this (JSON) is stored as a note saying so: a diagnostics summary is
#: a few kilobytes; megabytes would be a cabinet bug filling the database.
RESULT_MAX_BYTES = 256_000
_REASON_MAX = 500


class CommandRefused(ValueError):
    """A command that cannot be queued: ``status`` (HTTP) 404 for an unknown cabinet, 409 for
    an inactive one, 422 for a bad kind or bad arguments; ``code`` is the error code."""

    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("datetimes must be timezone-aware")
    return value.astimezone(UTC)


def _iso(value: datetime | None) -> str | None:
    return None if value is None else _utc(value).isoformat()


def _iso_text(value: Any) -> str | None:
    """A stored ISO time (pydantic writes ``Z``) in the ``+00:00`` form the rest uses."""
    try:
        return _utc(datetime.fromisoformat(str(value))).isoformat()
    except ValueError:
        return None


# ----------------------------------------------------------------------------- commands


def _check_args(kind: str, args: Any) -> dict[str, Any]:
    """The arguments a command of ``kind`` keeps, or CommandRefused (422) saying what is wrong."""
    if kind not in COMMAND_KINDS:
        raise CommandRefused(422, "unknown_command",
                             f"kind must be one of {', '.join(COMMAND_KINDS)}, not {kind!r}")
    if not isinstance(args, dict):
        raise CommandRefused(422, "invalid_args", "args must be a JSON object")
    if kind == "open_door":
        door = args.get("door")
        if isinstance(door, bool) or not isinstance(door, int) or not 1 <= door <= 999:
            raise CommandRefused(422, "invalid_args", "open_door needs a door number 1..999")
        reason = args.get("reason")
        if not isinstance(reason, str) or not reason.strip():
            raise CommandRefused(422, "reason_required",
                                 "open_door needs a reason (who is stuck, and why)")
        if len(reason) > _REASON_MAX:
            raise CommandRefused(422, "invalid_args",
                                 f"the reason is longer than {_REASON_MAX} characters")
        extra = set(args) - {"door", "reason"}
        if extra:
            raise CommandRefused(422, "invalid_args", f"unknown arguments: {sorted(extra)}")
        return {"door": door, "reason": reason.strip()}
    if args:
        raise CommandRefused(422, "invalid_args", f"{kind} takes no arguments")
    return {}


def _row_dict(row: Any, now: datetime | None = None) -> dict[str, Any]:
    status = row.status
    if now is not None and status in OPEN_STATUSES and _utc(row.expires_at) <= _utc(now):
        status = "expired"  # shown as it will be stored at the next delivery or listing
    return {"id": row.id, "cabinet_id": row.cabinet_id, "kind": row.kind, "args": row.args,
            "status": status, "result": row.result, "actor": row.actor,
            "created_at": _iso(row.created_at), "expires_at": _iso(row.expires_at),
            "sent_at": _iso(row.sent_at), "finished_at": _iso(row.finished_at)}


def queue_command(conn: Connection, *, cabinet_id: str, kind: str, args: dict[str, Any],
                  actor: str, now: datetime) -> dict[str, Any]:
    """Queue ``kind`` for ``cabinet_id`` (kinds and arguments: open_door ``{door, reason}``,
    reinventory ``{}``, fetch_diagnostics ``{}``); audited as ``command.queue``. Returns the
    command as :func:`list_commands` shows it (``status`` ``queued``). Raises
    :class:`CommandRefused`. ``open_door`` must name a door of the cabinet's last reported
    status when it reported its doors."""
    now = _utc(now)
    clean = _check_args(kind, args)
    cabinet = conn.execute(select(cabinets.c.id, cabinets.c.active)
                           .where(cabinets.c.id == cabinet_id)).first()
    if cabinet is None:
        raise CommandRefused(404, "unknown_cabinet", f"no cabinet {cabinet_id!r}")
    if not cabinet.active:
        raise CommandRefused(409, "inactive_cabinet", f"cabinet {cabinet_id!r} is deactivated")
    if kind == "open_door":
        reported = conn.execute(select(cabinet_status.c.status)
                                .where(cabinet_status.c.cabinet_id == cabinet_id)).scalar()
        doors = {f.get("door") for f in (reported or {}).get("fill", [])}
        if doors and clean["door"] not in doors:
            raise CommandRefused(422, "unknown_door",
                                 f"cabinet {cabinet_id!r} has no door {clean['door']}")
    new_id = conn.execute(insert(cabinet_commands).values(
        cabinet_id=cabinet_id, kind=kind, args=clean, status="queued", actor=actor[:64],
        created_at=now, expires_at=now + COMMAND_EXPIRY[kind]).returning(
            cabinet_commands.c.id)).scalar_one()
    record_audit(conn, at=now, actor=actor, action="command.queue", target=f"cabinet:{cabinet_id}",
                 detail={"command": new_id, "kind": kind, "args": clean})
    row = conn.execute(select(cabinet_commands).where(cabinet_commands.c.id == new_id)).one()
    return _row_dict(row)


def list_commands(conn: Connection, cabinet_id: str, limit: int = 20, *,
                  now: datetime | None = None) -> list[dict[str, Any]]:
    """Newest first: id, kind, args, status (queued|sent|done|failed|expired), result, actor,
    created_at, expires_at, sent_at, finished_at. With ``now``, an open command past its
    expiry shows as ``expired`` (what the next delivery will store)."""
    rows = conn.execute(select(cabinet_commands).where(cabinet_commands.c.cabinet_id == cabinet_id)
                        .order_by(cabinet_commands.c.id.desc()).limit(max(1, limit))).all()
    return [_row_dict(r, now) for r in rows]


def expire_commands(conn: Connection, now: datetime, cabinet_id: str | None = None) -> int:
    """Mark every open command past its expiry ``expired`` (audited); how many."""
    now = _utc(now)
    where = and_(cabinet_commands.c.status.in_(OPEN_STATUSES), cabinet_commands.c.expires_at <= now)
    if cabinet_id is not None:
        where = and_(where, cabinet_commands.c.cabinet_id == cabinet_id)
    rows = conn.execute(select(cabinet_commands.c.id, cabinet_commands.c.cabinet_id,
                               cabinet_commands.c.kind, cabinet_commands.c.status)
                        .where(where)).all()
    for row in rows:
        conn.execute(update(cabinet_commands).where(cabinet_commands.c.id == row.id)
                     .values(status="expired", finished_at=now))
        record_audit(conn, at=now, actor="server", action="command.expire",
                     target=f"cabinet:{row.cabinet_id}",
                     detail={"command": row.id, "kind": row.kind, "was": row.status})
    return len(rows)


def commands_for_delivery(conn: Connection, cabinet_id: str, now: datetime) -> list[Command]:
    """The open commands to put in this cabinet's sync reply (oldest first); expired ones are
    marked so first and never delivered; ``queued`` ones become ``sent``."""
    now = _utc(now)
    expire_commands(conn, now, cabinet_id)
    rows = conn.execute(select(cabinet_commands).where(
        cabinet_commands.c.cabinet_id == cabinet_id,
        cabinet_commands.c.status.in_(OPEN_STATUSES)).order_by(cabinet_commands.c.id)
        .limit(100)).all()
    fresh = [r.id for r in rows if r.status == "queued"]
    if fresh:
        conn.execute(update(cabinet_commands).where(cabinet_commands.c.id.in_(fresh))
                     .values(status="sent", sent_at=now))
    return [Command(id=r.id, kind=r.kind, args=dict(r.args or {}),
                    issued_at=_utc(r.created_at), expires_at=_utc(r.expires_at)) for r in rows]


def _bounded(result: dict[str, Any]) -> dict[str, Any]:
    size = len(json.dumps(result, default=str))
    if size > RESULT_MAX_BYTES:
        return {"truncated": True, "bytes": size,
                "note": f"the cabinet's result was larger than {RESULT_MAX_BYTES} bytes"}
    return result


def store_results(conn: Connection, cabinet_id: str, results: Iterable[CommandResult],
                  now: datetime) -> int:
    """Store the cabinet's command results; how many changed a command.

    Only the first result of a command counts (``done``/``failed`` are final); a result for
    another cabinet's command or an unknown id is ignored (logged): a cabinet may only answer
    for itself, and a re-sent result must never fail its batch.
    """
    now = _utc(now)
    changed = 0
    for res in results:
        row = conn.execute(select(cabinet_commands).where(cabinet_commands.c.id == res.id)).first()
        if row is None or row.cabinet_id != cabinet_id:
            _log.warning("cabinet %s: result for command %d that is not its own; ignored",
                         cabinet_id, res.id)
            continue
        if row.status in ("done", "failed"):
            continue  # a repeated result: the first one stands
        done = conn.execute(update(cabinet_commands).where(
            cabinet_commands.c.id == res.id,
            cabinet_commands.c.status.notin_(("done", "failed"))).values(
                status=res.status, result=_bounded(dict(res.result)), finished_at=now))
        if not done.rowcount:
            continue
        changed += 1
        record_audit(conn, at=now, actor=f"cabinet:{cabinet_id}", action="command.result",
                     target=f"cabinet:{cabinet_id}",
                     detail={"command": res.id, "kind": row.kind, "status": res.status,
                             "was": row.status,
                             "cabinet_finished_at": _utc(res.finished_at).isoformat()})
    return changed


def store_status(conn: Connection, cabinet_id: str, status: CabinetStatus, now: datetime) -> bool:
    """Keep ``status`` as the cabinet's latest unless a newer one (by the cabinet's
    ``reported_at``) is already stored; True if stored."""
    now = _utc(now)
    reported = _utc(status.reported_at)
    stored = conn.execute(select(cabinet_status.c.reported_at)
                          .where(cabinet_status.c.cabinet_id == cabinet_id)).scalar()
    values = {"reported_at": reported, "received_at": now,
              "kiosk_version": status.kiosk_version, "status": status.model_dump(mode="json")}
    if stored is None:
        conn.execute(insert(cabinet_status).values(cabinet_id=cabinet_id, **values))
        return True
    if _utc(stored) > reported:
        return False
    conn.execute(update(cabinet_status).where(cabinet_status.c.cabinet_id == cabinet_id)
                 .values(**values))
    return True


# ----------------------------------------------------------------------------- overview


def _overview_row(cab: Any, st: Any, held: int, pending: int, now: datetime) -> dict[str, Any]:
    status: dict[str, Any] = dict(st.status) if st is not None else {}
    devices = {str(k): str(v) for k, v in (status.get("devices") or {}).items()}
    fill: dict[int, dict[str, int]] = {}
    for f in status.get("fill") or []:
        fill[int(f["door"])] = {"count": int(f["count"]), "capacity": int(f["capacity"])}
    capacity = sum(f["capacity"] for f in fill.values())
    count = sum(f["count"] for f in fill.values())
    last = _utc(cab.last_sync_at) if cab.last_sync_at is not None else None
    online = bool(cab.active and last is not None
                  and (now - last).total_seconds() <= ONLINE_WINDOW_S)
    return {
        "id": cab.id, "name": cab.name, "branch_id": cab.branch_id, "location": cab.location,
        "active": bool(cab.active), "online": online, "last_sync_at": _iso(last),
        "status_at": _iso(st.received_at) if st is not None else None,
        "reported_at": _iso(st.reported_at) if st is not None else None,
        "kiosk_version": st.kiosk_version if st is not None else "",
        "devices": devices,
        "device_faults": sum(1 for v in devices.values() if v != "ok"),
        "open_alarms": [{"kind": a.get("kind"), "door": a.get("door"), "at": _iso_text(a.get("at"))}
                        for a in status.get("open_alarms") or []],
        "fill": fill,
        "fill_share": min(1.0, count / capacity) if capacity > 0 else 0.0,
        "offline_exposure": int(status.get("offline_exposure") or 0),
        "offline_exposure_cap": int(status.get("offline_exposure_cap")
                                    or cab.offline_exposure_cap),
        "pending_events": int(status.get("pending_events") or 0),
        "held_events": held,
        "pending_commands": pending,
    }


def _cabinet_rows(conn: Connection, now: datetime, cabinet_id: str | None) -> list[dict[str, Any]]:
    now = _utc(now)
    stmt = (select(cabinets, cabinet_status.c.reported_at, cabinet_status.c.received_at,
                   cabinet_status.c.kiosk_version, cabinet_status.c.status)
            .select_from(cabinets.outerjoin(cabinet_status,
                                            cabinet_status.c.cabinet_id == cabinets.c.id))
            .order_by(cabinets.c.branch_id, cabinets.c.id))
    held_q = (select(events.c.cabinet_id, func.count()).where(events.c.applied.is_(False))
              .group_by(events.c.cabinet_id))
    pending_q = (select(cabinet_commands.c.cabinet_id, func.count())
                 .where(cabinet_commands.c.status.in_(OPEN_STATUSES),
                        cabinet_commands.c.expires_at > now)
                 .group_by(cabinet_commands.c.cabinet_id))
    if cabinet_id is not None:
        stmt = stmt.where(cabinets.c.id == cabinet_id)
        held_q = held_q.where(events.c.cabinet_id == cabinet_id)
        pending_q = pending_q.where(cabinet_commands.c.cabinet_id == cabinet_id)
    held = {r[0]: int(r[1]) for r in conn.execute(held_q)}
    pending = {r[0]: int(r[1]) for r in conn.execute(pending_q)}
    out = []
    for row in conn.execute(stmt).all():
        st = row if row.status is not None else None
        out.append(_overview_row(row, st, held.get(row.id, 0), pending.get(row.id, 0), now))
    return out


def fleet_overview(conn: Connection, now: datetime) -> list[dict[str, Any]]:
    """One dict per cabinet (by branch, then id): id, name, branch_id, location, active,
    online (a sync within :data:`ONLINE_WINDOW_S`), last_sync_at (iso|None), status_at,
    kiosk_version, devices {name: availability}, device_faults (devices not ``ok``),
    open_alarms [{kind, door, at}], fill {door: {count, capacity}}, fill_share (0..1, 0 when
    no capacity is known), offline_exposure (unsynced offline loans the cabinet reported),
    offline_exposure_cap, pending_events, held_events (events waiting behind a gap on the
    server), pending_commands (queued or sent, not expired)."""
    return _cabinet_rows(conn, now, None)


def cabinet_overview(conn: Connection, cabinet_id: str, now: datetime) -> dict[str, Any] | None:
    """:func:`fleet_overview`'s dict of one cabinet, or None when there is no such cabinet."""
    rows = _cabinet_rows(conn, now, cabinet_id)
    return rows[0] if rows else None
