"""Technician diagnostics: what ``lendbox diag`` shows, as typed results.

Why here and not in the CLI: the kiosk's technician screen will show the same checks, so the
logic returns dataclasses (with ``as_dict`` for JSON) and the CLI only formats them. Every
check ends in :class:`Finding`s that *name the faulty part* and what to check, because a
technician standing at the cabinet needs "check lock 7 wiring", not "error 0x06".

Diagnostics never acknowledge board events (``peek_events``), so a look at the cabinet never
steals an event from the kiosk.
"""

from __future__ import annotations

import enum
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from firmware_protocol.const import EventType, PartKind, PartStatus

from .board import BoardCounters, BoardInfo, LendboxBoard, PartCheck
from .errors import (
    DeviceTimeout,
    DeviceUnavailable,
    DriverError,
    FrameError,
    LockJammed,
)
from .hardware import Hardware
from .rfid import InventoriedTag, inventory_door

__all__ = [
    "DETUNED_PERMILLE",
    "LINK_FAULT_FRACTION",
    "NOISY_DBM",
    "BoardReport",
    "DevicesReport",
    "Finding",
    "InventoryReport",
    "SelfTestReport",
    "Severity",
    "TagRate",
    "UnlockCheck",
    "check_devices",
    "inventory_report",
    "run_selftest",
    "test_unlock",
]

#: Reflected power above this (‰) means a detuned antenna (well tuned: < 100).
DETUNED_PERMILLE = 300
#: A noise floor above this (dBm) drowns weak tags.
NOISY_DBM = -70
#: Failed exchanges above this share of a bus's frames mean a wiring problem.
LINK_FAULT_FRACTION = 0.03
#: GET_STATES probes per answering board to measure link quality.
LINK_PROBES = 40


class Severity(enum.Enum):
    WARNING = "warning"
    FAULT = "fault"


@dataclass(frozen=True, slots=True, kw_only=True)
class Finding:
    """One problem: ``subject`` names the part ("door 7", "bus rs485-1"), ``message`` what
    is wrong and what to check."""

    subject: str
    message: str
    severity: Severity = Severity.FAULT

    def __str__(self) -> str:
        return f"{self.subject}: {self.message}"

    def as_dict(self) -> dict[str, str]:
        return {"subject": self.subject, "message": self.message,
                "severity": self.severity.value, "text": str(self)}


class _Findings:
    """Findings keyed by (subject, topic): a part gets one verdict per kind of problem."""

    def __init__(self) -> None:
        self._items: dict[tuple[str, str], Finding] = {}

    def add(self, subject: str, topic: str, message: str,
            severity: Severity = Severity.FAULT) -> None:
        self._items.setdefault((subject, topic),
                               Finding(subject=subject, message=message, severity=severity))

    def list(self) -> list[Finding]:
        return list(self._items.values())


# ---------------------------------------------------------------- devices


@dataclass(frozen=True, slots=True, kw_only=True)
class BoardReport:
    address: int
    bus: str
    availability: str
    reason: str
    info: BoardInfo | None
    counters: BoardCounters | None
    link: dict[str, object]

    def as_dict(self) -> dict[str, object]:
        return {"address": self.address, "bus": self.bus, "availability": self.availability,
                "reason": self.reason, "info": self.info.as_dict() if self.info else None,
                "counters": _counters_dict(self.counters), "link": self.link}


@dataclass(frozen=True, slots=True, kw_only=True)
class DevicesReport:
    buses: list[dict[str, object]]
    boards: list[BoardReport]
    findings: list[Finding]

    @property
    def passed(self) -> bool:
        return not any(f.severity is Severity.FAULT for f in self.findings)

    def as_dict(self) -> dict[str, object]:
        return {"passed": self.passed, "buses": self.buses,
                "boards": [b.as_dict() for b in self.boards],
                "findings": [f.as_dict() for f in self.findings]}


def _counters_dict(c: BoardCounters | None) -> dict[str, object] | None:
    if c is None:
        return None
    return {"uptime_s": c.uptime_s, "frames_ok": c.frames_ok, "crc_errors": c.crc_errors,
            "retransmissions": c.retransmissions, "power_cycles": c.power_cycles,
            "unlocks": list(c.unlocks)}


def _board_subject(hw: Hardware, address: int) -> str:
    return f"board {address} on {hw.bus_of(address)}"


def _unreachable(hw: Hardware, board: LendboxBoard, exc: DriverError, out: _Findings) -> None:
    if isinstance(exc, DeviceUnavailable):
        out.add(f"bus {board.transport.name}", "port",
                f"cannot reach {board.transport.url} ({exc}) — check the serial adapter/cable")
    else:
        out.add(_board_subject(hw, board.address), "answer",
                "not answering — check cable and power")


def check_devices(hw: Hardware) -> DevicesReport:
    """Each board: availability, identity, counters. Unreachable boards become findings."""
    out = _Findings()
    reports: list[BoardReport] = []
    for address, board in sorted(hw.boards.items()):
        info: BoardInfo | None = None
        counters: BoardCounters | None = None
        try:
            info = board.identify()
            counters = board.counters()
        except DriverError as exc:
            _unreachable(hw, board, exc, out)
        status = board.status()
        reports.append(BoardReport(address=address, bus=board.transport.name,
                                   availability=status.availability.value, reason=status.reason,
                                   info=info, counters=counters,
                                   link=board.diagnostics()["counters"]))  # type: ignore[arg-type]
    buses = [t.diagnostics() for t in hw.buses.values()]
    return DevicesReport(buses=buses, boards=reports, findings=out.list())


# ---------------------------------------------------------------- unlock


@dataclass(frozen=True, slots=True, kw_only=True)
class UnlockCheck:
    door: int
    board: int
    lock: int
    pulsed: bool
    door_opened: bool
    seconds: float
    findings: list[Finding] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not any(f.severity is Severity.FAULT for f in self.findings)

    def as_dict(self) -> dict[str, object]:
        return {"door": self.door, "board": self.board, "lock": self.lock,
                "pulsed": self.pulsed, "door_opened": self.door_opened,
                "seconds": round(self.seconds, 3), "passed": self.passed,
                "findings": [f.as_dict() for f in self.findings]}


def test_unlock(hw: Hardware, door: int, *, watch_s: float = 3.0, poll_s: float = 0.1,
                sensor_broken: bool = False,
                clock: Callable[[], float] = time.monotonic) -> UnlockCheck:
    """Pulse ``door``'s lock and watch whether its door sensor follows.

    Args:
        sensor_broken: the self-test already found this door's sensor broken, so a sensor
            that does not follow is blamed on the sensor, not the lock.
    Raises:
        ConfigError: no such door.
    """
    spec = hw.door(door)
    board = hw.boards[spec.board]
    subject = f"door {door}"
    out = _Findings()
    start = clock()
    pulsed = opened = False
    try:
        before = board.states()
        if len(before) >= spec.lock and before[spec.lock - 1].open:
            out.add(subject, "open", "already open — close it and test again", Severity.WARNING)
            return UnlockCheck(door=door, board=spec.board, lock=spec.lock, pulsed=False,
                               door_opened=True, seconds=clock() - start, findings=out.list())
        result = board.unlock(spec.lock)
        pulsed = True
        opened = result.door_open
        deadline = clock() + watch_s
        while not opened and clock() < deadline:
            time.sleep(poll_s)
            states = board.states()
            opened = len(states) >= spec.lock and states[spec.lock - 1].open
    except LockJammed:
        out.add(subject, "lock", "lock jammed")
    except DeviceTimeout as exc:
        out.add(subject, "lock", f"unlock not confirmed — {exc}")
    except DriverError as exc:
        _unreachable(hw, board, exc, out)
    else:
        if not opened:
            if sensor_broken:
                out.add(subject, "sensor", "door sensor open circuit — check sensor wiring")
            else:
                out.add(subject, "lock", f"lock pulsed, door sensor never changed — check "
                        f"lock {spec.lock} wiring")
    return UnlockCheck(door=door, board=spec.board, lock=spec.lock, pulsed=pulsed,
                       door_opened=opened, seconds=clock() - start, findings=out.list())


# ---------------------------------------------------------------- inventory


@dataclass(frozen=True, slots=True, kw_only=True)
class TagRate:
    uid: str
    item_id: str | None
    owner_library: str | None
    rssi: int  # strongest seen
    seen: int
    rounds: int
    error: str = ""

    @property
    def rate(self) -> float:
        return self.seen / self.rounds if self.rounds else 0.0

    def as_dict(self) -> dict[str, object]:
        return {"uid": self.uid, "item_id": self.item_id, "owner_library": self.owner_library,
                "rssi": self.rssi, "seen": self.seen, "rounds": self.rounds,
                "rate": round(self.rate, 3), "error": self.error}


@dataclass(frozen=True, slots=True, kw_only=True)
class InventoryReport:
    door: int
    antenna: int
    rounds: int
    tags: list[TagRate]
    findings: list[Finding]

    @property
    def passed(self) -> bool:
        return not any(f.severity is Severity.FAULT for f in self.findings)

    def as_dict(self) -> dict[str, object]:
        return {"door": self.door, "antenna": self.antenna, "rounds": self.rounds,
                "passed": self.passed, "tags": [t.as_dict() for t in self.tags],
                "findings": [f.as_dict() for f in self.findings]}


def inventory_report(hw: Hardware, door: int, *, repeat: int = 1) -> InventoryReport:
    """Inventory ``door`` ``repeat`` times: each tag's item id, strongest RSSI, read rate.
    Tag data is read once per tag (then cached). Raises ConfigError for an unknown door."""
    spec = hw.door(door)
    reader = hw.readers[spec.board]
    out = _Findings()
    seen: Counter[bytes] = Counter()
    best: dict[bytes, InventoriedTag] = {}
    done = 0
    for _ in range(max(1, repeat)):
        try:
            tags = inventory_door(reader, spec.antenna, hw.tag_cache)
        except DriverError as exc:
            if isinstance(exc, (DeviceTimeout, DeviceUnavailable, FrameError)):
                _unreachable(hw, hw.boards[spec.board], exc, out)
            else:
                out.add(f"door {door}", "inventory", f"inventory failed: {exc}")
            break
        done += 1
        for t in tags:
            seen[t.uid] += 1
            old = best.get(t.uid)
            if old is None or t.rssi > old.rssi or (old.data is None and t.data is not None):
                best[t.uid] = t
    rates = [TagRate(uid=uid.hex().upper(), item_id=t.item_id,
                     owner_library=t.data.owner_library if t.data else None, rssi=t.rssi,
                     seen=seen[uid], rounds=done, error=t.error)
             for uid, t in best.items()]
    rates.sort(key=lambda r: (r.item_id or "", r.uid))
    for r in rates:
        if done > 1 and r.rate < 1.0:
            out.add(f"door {door}", f"rate {r.uid}",
                    f"tag {r.uid} ({r.item_id or 'unknown item'}) read in {r.seen}/{done} "
                    f"rounds — a neighbouring book may detune it", Severity.WARNING)
        if r.error:
            out.add(f"door {door}", f"data {r.uid}", f"tag {r.uid}: data unreadable ({r.error})",
                    Severity.WARNING)
    return InventoryReport(door=door, antenna=spec.antenna, rounds=done, tags=rates,
                           findings=out.list())


# ---------------------------------------------------------------- self-test


@dataclass(frozen=True, slots=True, kw_only=True)
class SelfTestReport:
    findings: list[Finding]
    boards: list[dict[str, object]]
    unlocks: list[UnlockCheck]
    links: list[dict[str, object]]

    @property
    def passed(self) -> bool:
        return not any(f.severity is Severity.FAULT for f in self.findings)

    @property
    def verdict(self) -> list[str]:
        return [str(f) for f in self.findings] or ["all parts passed"]

    def as_dict(self) -> dict[str, object]:
        return {"passed": self.passed, "verdict": self.verdict,
                "findings": [f.as_dict() for f in self.findings], "boards": self.boards,
                "unlocks": [u.as_dict() for u in self.unlocks], "links": self.links}


def _door_label(hw: Hardware, board: int, *, lock: int | None = None,
                antenna: int | None = None) -> tuple[str, list[int]]:
    doors = hw.doors_of(board, lock=lock, antenna=antenna)
    return ", ".join(f"door {d}" for d in doors), doors


def _part_findings(hw: Hardware, address: int, checks: tuple[PartCheck, ...],
                   out: _Findings) -> set[int]:
    """Turn SELF_TEST results into findings; returns doors whose sensor is broken."""
    broken_sensors: set[int] = set()
    for c in checks:
        if c.status is PartStatus.OK:
            continue
        status = c.status.name.lower().replace("_", " ")
        if c.part is PartKind.LOCK:
            label, doors = _door_label(hw, address, lock=c.index)
            subject = label or f"board {address} lock {c.index}"
            out.add(subject, "lock", f"lock coil {status} — check lock {c.index} wiring")
        elif c.part is PartKind.DOOR_SENSOR:
            label, doors = _door_label(hw, address, lock=c.index)
            broken_sensors.update(doors)
            subject = label or f"board {address} sensor {c.index}"
            out.add(subject, "sensor", f"door sensor {status} — check sensor wiring")
        elif c.part is PartKind.ANTENNA:
            continue  # ANTENNA_DIAG gives the numbers; see _antenna_findings
        else:
            out.add(f"board {address}", c.part.name.lower(),
                    f"{c.part.name.lower()} {status} — replace the board")
    return broken_sensors


def _antenna_findings(hw: Hardware, board: LendboxBoard, antennas: list[int],
                      checks: tuple[PartCheck, ...], out: _Findings) -> list[dict[str, object]]:
    flagged = {(c.index, c.status) for c in checks if c.part is PartKind.ANTENNA}
    rows: list[dict[str, object]] = []
    for n in antennas:
        label, _ = _door_label(hw, board.address, antenna=n)
        subject = f"antenna {n} ({label})" if label else f"antenna {n} of board {board.address}"
        try:
            h = board.antenna_diag(n)
        except DriverError as exc:
            out.add(subject, "diag", f"antenna diagnosis failed: {exc}", Severity.WARNING)
            continue
        rows.append({"antenna": n, "reflected_permille": h.reflected_permille,
                     "noise_floor_dbm": h.noise_floor_dbm})
        if h.reflected_permille > DETUNED_PERMILLE or (n, PartStatus.DETUNED) in flagged:
            out.add(subject, "tuning", f"detuned, reflected {h.reflected_permille}‰ — check "
                    f"antenna cable/tuning")
        if h.noise_floor_dbm > NOISY_DBM or (n, PartStatus.NOISY) in flagged:
            out.add(subject, "noise", f"noise floor {h.noise_floor_dbm} dBm — interference")
    return rows


def _event_findings(hw: Hardware, board: LendboxBoard, out: _Findings) -> list[dict[str, object]]:
    batch = board.peek_events()
    power_lost = 0
    for e in batch.events:
        label = (_door_label(hw, board.address, lock=e.lock)[0] if e.lock
                 else f"board {board.address}") or f"board {board.address} lock {e.lock}"
        if e.kind is EventType.POWER_LOST:
            power_lost += 1
        elif e.kind is EventType.DOOR_FORCED:
            out.add(label, "forced", "forced open")
        elif e.kind is EventType.LOCK_JAMMED:
            out.add(label, "lock", "lock jammed")
        elif e.kind is EventType.TAMPER:
            out.add(label, "tamper", "tamper switch triggered — check the housing")
        elif e.kind is EventType.DOOR_HELD_OPEN:
            out.add(label, "held", "held open too long", Severity.WARNING)
    if power_lost:
        times = "once" if power_lost == 1 else f"{power_lost} times"
        out.add(f"board {board.address}", "power", f"power was lost ({times})",
                Severity.WARNING)
    return [{"seq": e.seq, "kind": e.kind.name, "lock": e.lock, "uptime_ms": e.uptime_ms}
            for e in batch.events]


def _link_findings(hw: Hardware, answering: list[LendboxBoard], out: _Findings,
                   probes: int) -> list[dict[str, object]]:
    """Probe each answering board and judge each bus by its failed attempts."""
    for board in answering:
        for _ in range(probes):
            try:
                board.states()
            except DriverError:
                pass
    rows: list[dict[str, object]] = []
    for name, transport in hw.buses.items():
        sent = unreadable = silent = 0
        for b in answering:
            if b.transport is transport:
                c = transport.device_counters(b.address)
                sent += c.frames_sent
                unreadable += c.attempts_unreadable
                silent += c.attempts_silent
        failed = unreadable + silent
        frac = failed / sent if sent else 0.0
        rows.append({"bus": name, "frames_sent": sent, "unreadable": unreadable,
                     "unanswered": silent, "failed_fraction": round(frac, 4)})
        if sent and frac > LINK_FAULT_FRACTION:
            out.add(f"bus {name}", "link", f"{frac:.0%} of frames corrupted or lost — check "
                    f"RS-485 wiring/termination")
    return rows


def run_selftest(hw: Hardware, *, unlock: bool = False, link_probes: int = LINK_PROBES,
                 watch_s: float = 3.0) -> SelfTestReport:
    """Check every board, antenna and (with ``unlock``) door; name each faulty part.

    Steps per board: IDENTIFY (answering?), SELF_TEST (coils, sensors), ANTENNA_DIAG of every
    antenna, door states (jammed/forced), event history (forced doors, power loss), then a
    test-unlock of each door if asked, then link quality per bus.
    """
    out = _Findings()
    boards: list[dict[str, object]] = []
    unlocks: list[UnlockCheck] = []
    answering: list[LendboxBoard] = []
    for address, board in sorted(hw.boards.items()):
        row: dict[str, object] = {"board": address, "bus": board.transport.name}
        boards.append(row)
        try:
            info = board.identify()
        except DriverError as exc:
            _unreachable(hw, board, exc, out)
            row["answering"] = False
            continue
        row.update(answering=True, info=info.as_dict())
        answering.append(board)
        try:
            checks = board.self_test()
            broken = _part_findings(hw, address, checks, out)
            row["self_test"] = [{"part": c.part.name, "index": c.index,
                                 "status": c.status.name} for c in checks]
            antennas = sorted({d.antenna for d in hw.doors.values() if d.board == address}
                              | set(range(1, info.antennas + 1)))
            row["antennas"] = _antenna_findings(hw, board, antennas, checks, out)
            for s in board.states():
                label, _ = _door_label(hw, address, lock=s.lock)
                if not label:
                    continue
                if s.jammed:
                    out.add(label, "lock", "lock jammed")
                if s.forced:
                    out.add(label, "forced", "forced open")
            row["events"] = _event_findings(hw, board, out)
        except DriverError as exc:
            out.add(_board_subject(hw, address), "test", f"self-test interrupted: {exc}")
            continue
        if unlock:
            for number in hw.doors_of(address):
                check = test_unlock(hw, number, watch_s=watch_s,
                                    sensor_broken=number in broken)
                unlocks.append(check)
                for f in check.findings:
                    # One verdict per part: a coil the self-test already named stays named.
                    topic = "sensor" if "sensor wiring" in f.message else "lock"
                    out.add(f.subject, topic, f.message, f.severity)
    links = _link_findings(hw, answering, out, link_probes)
    return SelfTestReport(findings=out.list(), boards=boards, unlocks=unlocks, links=links)

