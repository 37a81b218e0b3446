"""Technician diagnostics: what ``lendbox diag`` shows, as typed results.

Why here and not in the CLI: the kiosk's technician screen will show the same checks, so the
logic returns dataclasses (with ``as_dict`` for JSON) and the CLI only formats them. Every
check ends in :class:`Finding`s that *name the faulty part* and what to check, because a
technician standing at the cabinet needs "check lock 7 wiring", not "error 0x06".

Diagnostics never acknowledge board events (``peek_events``), so a look at the cabinet never
steals an event from the kiosk.

Family-neutral (issue 2/6): everything here goes through the ``ControllerBoard`` and
``RfidReader`` interfaces, so it runs unchanged on any mix of families (docs/families.md). A
check whose method a family lacks (``measure_latency`` exists only on our boards) or refuses
(``NotSupported``, e.g. ``antenna_diag`` on a lock board) is skipped and listed under
``not_available`` ("not available for this family"), never reported as a fault. Stand-alone
readers (``hw.readers`` keyed by name) are checked as parts of their own: identity where the
protocol has one, and a read-only inventory of each door they read.
"""

from __future__ import annotations

import enum
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from firmware_protocol.const import EventType, PartKind, PartStatus, Timing

from .board import BoardCounters, BoardInfo, ControllerBoard, PartCheck
from .errors import (
    CardError,
    ConfigError,
    DeviceTimeout,
    DeviceUnavailable,
    DriverError,
    FrameError,
    LockJammed,
    NotSupported,
)
from .hardware import Hardware
from .rfid import InventoriedTag, RfidReader, inventory_door
from .transport import usb_latency_timer_ms

__all__ = [
    "DETUNED_PERMILLE",
    "LINK_FAULT_FRACTION",
    "LINK_FAULT_MIN_FAILED",
    "NOISY_DBM",
    "NOT_AVAILABLE",
    "BoardReport",
    "CameraCheck",
    "CardCheck",
    "DevicesReport",
    "Finding",
    "InventoryReport",
    "PeripheralReport",
    "ReaderReport",
    "SelfTestReport",
    "Severity",
    "TagRate",
    "UnlockCheck",
    "check_devices",
    "check_peripherals",
    "inventory_report",
    "link_fault",
    "read_card",
    "run_selftest",
    "test_unlock",
    "watch_camera",
]

Progress = Callable[[str], None] | None
"""Told the name of each step of a long diagnosis as it starts."""

#: Reflected power above this (‰) means a detuned antenna (well tuned: < 100).
DETUNED_PERMILLE = 300
#: A noise floor above this (dBm) drowns weak tags.
NOISY_DBM = -70
#: Failed exchanges above this share of a bus's frames mean a wiring problem ...
LINK_FAULT_FRACTION = 0.03
#: ... once there are at least this many: one or two lost among the self-test's few dozen
#: frames is what a busy host or a single burst of noise leaves; bad wiring keeps failing.
LINK_FAULT_MIN_FAILED = 3
#: GET_STATES probes per answering board to measure link quality.
LINK_PROBES = 40
#: Replies later than this (beyond wire time, ms) mean a slow converter or USB latency timer.
#: A healthy board answers in a few ms (its firmware time); SPEC §4 gives plain commands
#: 50 ms, so 10 ms already eats a fifth of that margin. At or past the timeout itself every
#: request times out and is re-sent (a fault, not a warning).
SLOW_REPLY_MS = 10
#: Latency probes per answering board (GET_STATES with a long timeout); the first is not
#: counted, it only lets late duplicates of earlier re-sent requests clear the line.
LATENCY_PROBES = 4
#: How a check a family cannot do is reported.
NOT_AVAILABLE = "not available for this family"


class Severity(enum.Enum):
    WARNING = "warning"
    FAULT = "fault"


@dataclass(frozen=True, slots=True, kw_only=True)
class Finding:
    """One problem: ``subject`` names the part ("door 7", "bus rs485-1"), ``message`` what
    is wrong and what to check.

    ``code`` and ``params`` say the same as ``message`` in a form a screen can put into any
    language (the kiosk's technician pages: ``tech.finding.<code>``); ``message`` stays the
    English that ``lendbox diag`` prints and the service manuals quote."""

    subject: str
    message: str
    severity: Severity = Severity.FAULT
    code: str = ""
    # left out of the hash: a dict has none, and the message already says the same
    params: Mapping[str, object] = field(default_factory=dict, hash=False)

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
            severity: Severity = Severity.FAULT, *, code: str = "",
            params: Mapping[str, object] | None = None) -> None:
        self._items.setdefault((subject, topic),
                               Finding(subject=subject, message=message, severity=severity,
                                       code=code, params=dict(params or {})))

    def has(self, subject: str, topic: str) -> bool:
        return (subject, topic) in self._items

    def list(self) -> list[Finding]:
        return list(self._items.values())


# ---------------------------------------------------------------- devices


@dataclass(frozen=True, slots=True, kw_only=True)
class BoardReport:
    """One lock board. ``counters_kept_by``: "board" (our boards count on the board) or
    "driver" (third-party boards keep none; the driver counts). ``not_available``: what this
    family cannot report (firmware version, serial, …)."""

    address: int
    bus: str
    availability: str
    reason: str
    info: BoardInfo | None
    counters: BoardCounters | None
    link: dict[str, object]
    family: str = "lendbox"
    counters_kept_by: str = "board"
    not_available: list[str] = field(default_factory=list)
    limits: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return {"address": self.address, "bus": self.bus, "family": self.family,
                "availability": self.availability,
                "reason": self.reason, "info": self.info.as_dict() if self.info else None,
                "counters": _counters_dict(self.counters),
                "counters_kept_by": self.counters_kept_by, "link": self.link,
                "not_available": self.not_available, "limits": self.limits}


@dataclass(frozen=True, slots=True, kw_only=True)
class ReaderReport:
    """One stand-alone RFID reader (FEIG, RR3036 …): ``info`` is what its protocol tells
    about it (firmware …), None when it has no such command."""

    name: str
    family: str
    bus: str
    address: int | None
    availability: str
    reason: str
    info: dict[str, object] | None
    link: dict[str, object]
    doors: list[int] = field(default_factory=list)
    not_available: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return {"name": self.name, "family": self.family, "bus": self.bus,
                "address": self.address, "availability": self.availability,
                "reason": self.reason, "info": self.info, "link": self.link,
                "doors": self.doors, "not_available": self.not_available}


@dataclass(frozen=True, slots=True, kw_only=True)
class DevicesReport:
    buses: list[dict[str, object]]
    boards: list[BoardReport]
    findings: list[Finding]
    peripherals: list[PeripheralReport] = field(default_factory=list)
    readers: list[ReaderReport] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not any(f.severity is Severity.FAULT for f in self.findings)

    def as_dict(self) -> dict[str, object]:
        return {"passed": self.passed, "buses": self.buses,
                "boards": [b.as_dict() for b in self.boards],
                "readers": [r.as_dict() for r in self.readers],
                "peripherals": [p.as_dict() for p in self.peripherals],
                "findings": [f.as_dict() for f in self.findings]}


def _counters_dict(c: BoardCounters | None) -> dict[str, object] | None:
    if c is None:
        return None
    return {"uptime_s": c.uptime_s, "frames_ok": c.frames_ok, "crc_errors": c.crc_errors,
            "retransmissions": c.retransmissions, "power_cycles": c.power_cycles,
            "unlocks": list(c.unlocks)}


def _board_subject(hw: Hardware, address: int) -> str:
    return f"board {address} on {hw.bus_of(address)}"


def _bus_family(hw: Hardware, bus: str) -> str:
    return next(b.family for b in hw.spec.buses if b.name == bus)


def _board_family(hw: Hardware, address: int) -> str:
    return _bus_family(hw, hw.bus_of(address))


def _reader_bus(hw: Hardware, name: str) -> str:
    return next(r.bus for r in hw.spec.readers if r.name == name)


def _reader_subject(hw: Hardware, name: str) -> str:
    return f"reader {name} on {_reader_bus(hw, name)}"


def _standalone_readers(hw: Hardware) -> list[tuple[str, RfidReader]]:
    """The stand-alone readers (``hw.readers`` keyed by name), in config order."""
    return [(r.name, hw.readers[r.name]) for r in hw.spec.readers if r.name in hw.readers]


def _unreachable_part(hw: Hardware, bus: str, subject: str, exc: DriverError,
                      out: _Findings) -> None:
    """A part that did not answer: the bus when its port is down, else the part itself."""
    if isinstance(exc, DeviceUnavailable):
        url = hw.buses[bus].url
        out.add(f"bus {bus}", "port",
                f"cannot reach {url} ({exc}) — check the serial adapter/cable",
                code="bus_unreachable", params={"url": str(url), "error": str(exc)})
    else:
        out.add(subject, "answer", "not answering — check cable and power",
                code="not_answering", params={})


def _unreachable(hw: Hardware, address: int, exc: DriverError, out: _Findings) -> None:
    _unreachable_part(hw, hw.bus_of(address), _board_subject(hw, address), exc, out)


def _reader_unreachable(hw: Hardware, name: str, exc: DriverError, out: _Findings) -> None:
    _unreachable_part(hw, _reader_bus(hw, name), _reader_subject(hw, name), exc, out)


def _unknown(value: object) -> bool:
    return value in ("", "unknown", None)


def _counters_kept_by(family: str) -> str:
    """Our boards count on the board; every third-party family's driver counts for it
    (docs/families.md)."""
    return "board" if family == "lendbox" else "driver"


def _reader_identify(reader: RfidReader) -> dict[str, object] | None:
    """What the reader's protocol tells about it (``identify()``: FEIG [0x65], RR3036 init
    device). Raises NotSupported when it has no such command, DriverError when it fails."""
    identify = getattr(reader, "identify", None)
    if identify is None:
        raise NotSupported(f"{reader.name}: no identify command in this family's driver")
    info = identify()
    if info is None:
        return None
    out = dict(info)
    version = out.get("version")
    if "firmware" not in out and isinstance(version, int) and not isinstance(version, bool):
        out["firmware"] = f"{version >> 8}.{version & 0xFF:02d}"  # RR3036: major, minor byte
    return out


def _link_counters(hw: Hardware, bus: str, address: int | None) -> dict[str, object]:
    transport = hw.buses[bus]
    counters = getattr(transport, "device_counters", None)
    if counters is None or address is None:
        return {}
    return counters(address).as_dict()  # type: ignore[no-any-return]


def _latency_warning(hw: Hardware, out: _Findings, sys_root: Path) -> dict[str, int]:
    """A warning per bus on a ``/dev/ttyUSB*`` adapter whose latency timer holds replies."""
    timers: dict[str, int] = {}
    for name, transport in hw.buses.items():
        ms = usb_latency_timer_ms(str(transport.url), sys_root)
        if ms is None:
            continue
        timers[name] = ms
        if ms > 1:
            device = str(transport.url).rsplit("/", 1)[-1]
            out.add(f"bus {name}", "usb latency",
                    f"USB-serial latency timer is {ms} ms: each reply may be held that long — "
                    f"set it to 1 ms (echo 1 > /sys/bus/usb-serial/devices/{device}/"
                    f"latency_timer)", Severity.WARNING,
                    code="usb_latency_timer", params={"ms": ms, "device": device})
    return timers


def check_devices(hw: Hardware, *, sys_root: Path = Path("/sys")) -> DevicesReport:
    """Each board and stand-alone reader: availability, identity (firmware where the family
    reports one), counters (the board's, or the driver's for families whose boards keep
    none); each bus: the addresses that answered, link counters, USB latency timer.
    Unreachable parts become findings; what a family cannot report is listed, not faulted."""
    out = _Findings()
    reports: list[BoardReport] = []
    present: dict[str, list[int]] = {name: [] for name in hw.buses}
    for address, board in sorted(hw.boards.items()):
        bus = hw.bus_of(address)
        family = _bus_family(hw, bus)
        info: BoardInfo | None = None
        counters: BoardCounters | None = None
        missing: list[str] = []
        try:
            try:
                info = board.identify()
            except NotSupported:
                missing.append("identity")
                board.states()  # does it answer at all?
            present[bus].append(address)
            if info is not None:
                missing += [what for what, value in (("firmware version", info.firmware),
                                                     ("serial number", info.serial))
                            if _unknown(value)]
            try:
                counters = board.counters()
            except NotSupported:
                missing.append("counters")
        except DriverError as exc:
            _unreachable(hw, address, exc, out)
        status = board.status()
        diag = board.diagnostics()
        reports.append(BoardReport(
            address=address, bus=bus, family=family, availability=status.availability.value,
            reason=status.reason, info=info, counters=counters,
            link=diag.get("counters") or _link_counters(hw, bus, address),  # type: ignore[arg-type]
            counters_kept_by=_counters_kept_by(family), not_available=missing,
            limits=list(diag.get("limits") or [])))  # type: ignore[call-overload]
    readers: list[ReaderReport] = []
    for name, reader in _standalone_readers(hw):
        bus = _reader_bus(hw, name)
        raddress: int | None = getattr(reader, "address", None)
        rinfo: dict[str, object] | None = None
        missing = ["antenna diagnostics"]
        try:
            rinfo = _reader_identify(reader)
            if raddress is not None:
                present[bus].append(raddress)
        except NotSupported:
            missing.insert(0, "firmware version")
            if raddress is not None and hasattr(reader, "identify"):  # "unknown command"
                present[bus].append(raddress)
        except DriverError as exc:
            _reader_unreachable(hw, name, exc, out)
        if rinfo is not None and _unknown(rinfo.get("firmware")):
            missing.insert(0, "firmware version")
        status = reader.status()
        readers.append(ReaderReport(
            name=name, family=_bus_family(hw, bus), bus=bus, address=raddress,
            availability=status.availability.value, reason=status.reason, info=rinfo,
            link=_link_counters(hw, bus, raddress), doors=hw.doors_read_by(name),
            not_available=missing))
    timers = _latency_warning(hw, out, sys_root)
    buses = []
    for name, transport in hw.buses.items():
        row = dict(transport.diagnostics())
        row.setdefault("family", _bus_family(hw, name))
        row["addresses_present"] = sorted(set(present[name]))
        if name in timers:
            row.setdefault("usb_latency_timer_ms", timers[name])
        buses.append(row)
    peripherals = _peripheral_reports(hw, out)
    return DevicesReport(buses=buses, boards=reports, findings=out.list(),
                         peripherals=peripherals, readers=readers)


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
    family = _board_family(hw, spec.board)
    subject = f"door {door}"
    out = _Findings()
    start = clock()
    pulsed = opened = False
    try:
        before = board.states()
        if len(before) >= spec.lock and before[spec.lock - 1].open:
            out.add(subject, "open", "already open — close it and test again", Severity.WARNING,
                    code="already_open", params={})
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
        pulsed = True
        if family == "lendbox":
            out.add(subject, "lock", "lock jammed", code="lock_jammed", params={})
        else:  # a polled family only sees that a sprung door stayed shut
            out.add(subject, "lock", f"lock pulsed but the sprung door stayed shut — lock "
                    f"jammed or lock {spec.lock} wiring broken ({family} boards cannot tell "
                    f"which)", code="door_stayed_shut",
                    params={"lock": spec.lock, "family": family})
    except DeviceTimeout as exc:
        out.add(subject, "lock", f"unlock not confirmed — {exc}",
                code="unlock_not_confirmed", params={"error": str(exc)})
    except DriverError as exc:
        _unreachable(hw, spec.board, exc, out)
    else:
        if not opened:
            if sensor_broken:
                out.add(subject, "sensor", "door sensor open circuit — check sensor wiring",
                        code="sensor_did_not_follow", params={})
            else:
                out.add(subject, "lock", f"lock pulsed, door sensor never changed — check "
                        f"lock {spec.lock} wiring", code="sensor_never_changed",
                        params={"lock": spec.lock})
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
    undecodable: bool = False  # its memory was read but is not ISO 28560 data

    @property
    def rate(self) -> float:
        return self.seen / self.rounds if self.rounds else 0.0

    def as_dict(self) -> dict[str, object]:
        return {"uid": self.uid, "item_id": self.item_id, "owner_library": self.owner_library,
                "rssi": self.rssi, "seen": self.seen, "rounds": self.rounds,
                "rate": round(self.rate, 3), "error": self.error,
                "undecodable": self.undecodable}


@dataclass(frozen=True, slots=True, kw_only=True)
class InventoryReport:
    door: int
    antenna: int
    rounds: int
    tags: list[TagRate]
    findings: list[Finding]
    expected: list[str] = field(default_factory=list)  # item ids the caller said are there
    missing: list[str] = field(default_factory=list)  # of those, never seen

    @property
    def passed(self) -> bool:
        return not any(f.severity is Severity.FAULT for f in self.findings)

    def as_dict(self) -> dict[str, object]:
        return {"door": self.door, "antenna": self.antenna, "rounds": self.rounds,
                "passed": self.passed, "tags": [t.as_dict() for t in self.tags],
                "expected": self.expected, "missing": self.missing,
                "findings": [f.as_dict() for f in self.findings]}


def _inventories(n: int) -> str:
    return "1 inventory" if n == 1 else f"{n} inventories"


def _undecodable(out: _Findings, subject: str, uid: str, error: str) -> None:
    reason = error.split(": ", 1)[1] if error.startswith(f"tag {uid}: ") else error
    out.add(subject, f"data {uid}",
            f"tag {uid} answers but its data cannot be decoded ({reason}) — re-tag the item",
            code="tag_undecodable", params={"uid": uid, "reason": reason})


def inventory_report(hw: Hardware, door: int, *, repeat: int = 1,
                     expect: Sequence[str] = (), expect_count: int | None = None
                     ) -> InventoryReport:
    """Inventory ``door`` ``repeat`` times: each tag's item id, strongest RSSI, read rate.
    Tag data is read once per tag (then cached). Raises ConfigError for an unknown door.

    Faults found: a tag that answered only some of the rounds (detuned by a neighbouring
    book or badly placed), a tag that answers but whose memory does not decode, and — since
    a dead tag cannot be seen by the radio at all — each item of ``expect`` (item ids the
    caller knows are in the door, e.g. the kiosk's ledger) that was never seen, or fewer
    tags than ``expect_count``.
    """
    spec = hw.door(door)
    reader = hw.reader_of(door)
    out = _Findings()
    seen: Counter[bytes] = Counter()
    best: dict[bytes, InventoriedTag] = {}
    done = 0
    for _ in range(max(1, repeat)):
        try:
            tags = inventory_door(reader, spec.antenna, hw.tag_cache)
        except DriverError as exc:
            if isinstance(exc, (DeviceTimeout, DeviceUnavailable, FrameError)):
                if spec.reader is None:
                    _unreachable(hw, spec.board, exc, out)
                else:
                    _reader_unreachable(hw, spec.reader, exc, out)
            else:
                out.add(f"door {door}", "inventory", f"inventory failed: {exc}",
                        code="inventory_failed", params={"error": str(exc)})
            break
        done += 1
        for t in tags:
            seen[t.uid] += 1
            old = best.get(t.uid)
            if old is None or t.rssi > old.rssi or (old.data is None and t.data is not None):
                best[t.uid] = t
    rates = [TagRate(uid=uid.hex().upper(), item_id=t.item_id,
                     owner_library=t.data.owner_library if t.data else None, rssi=t.rssi,
                     seen=seen[uid], rounds=done, error=t.error, undecodable=t.undecodable)
             for uid, t in best.items()]
    rates.sort(key=lambda r: (r.item_id or "", r.uid))
    subject = f"door {door}"
    for r in rates:
        if done > 1 and r.rate < 1.0:
            item = f"item {r.item_id}" if r.item_id else "unknown item"
            message = (f"tag {r.uid} ({item}) answered {r.seen} of {_inventories(done)} — "
                       f"detuned by a neighbouring book or badly placed; reposition it")
            if r.item_id:
                out.add(subject, f"rate {r.uid}", message, code="tag_rate_low",
                        params={"uid": r.uid, "item_id": r.item_id, "seen": r.seen,
                                "rounds": done})
            else:
                out.add(subject, f"rate {r.uid}", message, code="unknown_tag_rate_low",
                        params={"uid": r.uid, "seen": r.seen, "rounds": done})
        if r.undecodable:
            _undecodable(out, subject, r.uid, r.error)
        elif r.error:
            out.add(subject, f"data {r.uid}", f"tag {r.uid} answered the inventory but not "
                    f"the read of its data ({r.error}) — detuned or badly placed",
                    Severity.WARNING, code="tag_data_unread",
                    params={"uid": r.uid, "error": r.error})
    expected = list(dict.fromkeys(expect))
    missing: list[str] = []
    if done:
        seen_ids = {r.item_id for r in rates if r.item_id}
        undecodable = sum(r.undecodable for r in rates)
        rounds = _inventories(done)
        missing = [i for i in expected if i not in seen_ids]
        for item_id in missing:
            message = f"item {item_id} expected but not seen in {rounds} — tag dead or missing"
            # the hint is a clause of its own in other languages: a code of its own
            if undecodable:
                out.add(subject, f"missing {item_id}",
                        message + " (or it is one of the undecodable tags)",
                        code="item_missing_or_undecodable",
                        params={"item_id": item_id, "rounds": done})
            else:
                out.add(subject, f"missing {item_id}", message, code="item_missing",
                        params={"item_id": item_id, "rounds": done})
        if expect_count is not None and len(rates) < expect_count:
            out.add(subject, "count", f"{expect_count} tags expected, {len(rates)} seen in "
                    f"{rounds} — a tag is dead or a book is missing", code="tags_missing",
                    params={"expected": expect_count, "seen": len(rates), "rounds": done})
    return InventoryReport(door=door, antenna=spec.antenna, rounds=done, tags=rates,
                           findings=out.list(), expected=expected, missing=missing)


# ---------------------------------------------------------------- self-test


@dataclass(frozen=True, slots=True, kw_only=True)
class SelfTestReport:
    findings: list[Finding]
    boards: list[dict[str, object]]
    unlocks: list[UnlockCheck]
    links: list[dict[str, object]]
    peripherals: list[PeripheralReport] = field(default_factory=list)
    latency: list[dict[str, object]] = field(default_factory=list)  # per answering board
    readers: list[dict[str, object]] = field(default_factory=list)  # stand-alone readers

    @property
    def passed(self) -> bool:
        return not any(f.severity is Severity.FAULT for f in self.findings)

    @property
    def verdict(self) -> list[str]:
        return [str(f) for f in self.findings] or ["all parts passed"]

    def as_dict(self) -> dict[str, object]:
        return {"passed": self.passed, "verdict": self.verdict,
                "findings": [f.as_dict() for f in self.findings], "boards": self.boards,
                "readers": self.readers,
                "unlocks": [u.as_dict() for u in self.unlocks], "links": self.links,
                "latency": self.latency,
                "peripherals": [p.as_dict() for p in self.peripherals]}


def _door_label(hw: Hardware, board: int, *, lock: int | None = None,
                antenna: int | None = None) -> tuple[str, list[int]]:
    """Doors of ``board``'s ``lock``, or read by ``board``'s own ``antenna``."""
    doors = (hw.doors_read_by(board, antenna) if antenna is not None
             else hw.doors_of(board, lock=lock))
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
            out.add(subject, "lock", f"lock coil {status} — check lock {c.index} wiring",
                    code="lock_coil", params={"status": status, "lock": c.index})
        elif c.part is PartKind.DOOR_SENSOR:
            label, doors = _door_label(hw, address, lock=c.index)
            broken_sensors.update(doors)
            subject = label or f"board {address} sensor {c.index}"
            out.add(subject, "sensor", f"door sensor {status} — check sensor wiring",
                    code="door_sensor", params={"status": status})
        elif c.part is PartKind.ANTENNA:
            continue  # ANTENNA_DIAG gives the numbers; see _antenna_findings
        else:
            part = c.part.name.lower().replace("_", " ")
            out.add(f"board {address}", c.part.name.lower(),
                    f"{c.part.name.lower()} {status} — replace the board",
                    code="board_part", params={"part": part, "status": status})
    return broken_sensors


def _antenna_findings(hw: Hardware, address: int, board: ControllerBoard, antennas: list[int],
                      checks: tuple[PartCheck, ...], out: _Findings,
                      not_available: list[str]) -> list[dict[str, object]]:
    flagged = {(c.index, c.status) for c in checks if c.part is PartKind.ANTENNA}
    rows: list[dict[str, object]] = []
    for n in antennas:
        label, _ = _door_label(hw, address, antenna=n)
        subject = f"antenna {n} ({label})" if label else f"antenna {n} of board {address}"
        try:
            h = board.antenna_diag(n)
        except NotSupported:
            not_available.append("antenna diagnostics")
            break
        except DriverError as exc:
            out.add(subject, "diag", f"antenna diagnosis failed: {exc}", Severity.WARNING,
                    code="antenna_diag_failed", params={"error": str(exc)})
            continue
        rows.append({"antenna": n, "reflected_permille": h.reflected_permille,
                     "noise_floor_dbm": h.noise_floor_dbm})
        if h.reflected_permille > DETUNED_PERMILLE or (n, PartStatus.DETUNED) in flagged:
            out.add(subject, "tuning", f"detuned, reflected {h.reflected_permille}‰ — check "
                    f"antenna cable/tuning", code="antenna_detuned",
                    params={"permille": h.reflected_permille})
        if h.noise_floor_dbm > NOISY_DBM or (n, PartStatus.NOISY) in flagged:
            out.add(subject, "noise", f"noise floor {h.noise_floor_dbm} dBm — interference",
                    code="antenna_noisy", params={"dbm": h.noise_floor_dbm})
    return rows


def _event_findings(hw: Hardware, address: int, board: ControllerBoard, out: _Findings,
                    still_open: set[int]) -> list[dict[str, object]]:
    """Findings from the events the board still holds; ``still_open``: locks whose door is
    open now (a held-open alarm of a door closed since is only a warning). Polled families
    hold only what this process's polls inferred."""
    batch = board.peek_events()
    power_lost = 0
    held: set[int] = set()  # locks whose door raised the held-open alarm
    for e in batch.events:
        label = (_door_label(hw, address, lock=e.lock)[0] if e.lock
                 else f"board {address}") or f"board {address} lock {e.lock}"
        if e.kind is EventType.POWER_LOST:
            power_lost += 1
        elif e.kind is EventType.DOOR_FORCED:
            out.add(label, "forced", "forced open", code="forced_open", params={})
        elif e.kind is EventType.LOCK_JAMMED:
            out.add(label, "lock", "lock jammed", code="lock_jammed", params={})
        elif e.kind is EventType.TAMPER:
            out.add(label, "tamper", "tamper switch triggered — check the housing",
                    code="tamper", params={})
        elif e.kind is EventType.DOOR_HELD_OPEN:
            held.add(e.lock)
    for lock in sorted(held):
        label = _door_label(hw, address, lock=lock)[0] or f"board {address} lock {lock}"
        if lock in still_open:
            out.add(label, "open", "left open (held-open alarm)", code="left_open", params={})
        else:
            out.add(label, "open", "was left open (held-open alarm), closed since",
                    Severity.WARNING, code="was_left_open", params={})
    if power_lost == 1:
        out.add(f"board {address}", "power", "power was lost (once)", Severity.WARNING,
                code="power_lost_once", params={})
    elif power_lost:
        out.add(f"board {address}", "power", f"power was lost ({power_lost} times)",
                Severity.WARNING, code="power_lost", params={"times": power_lost})
    return [{"seq": e.seq, "kind": e.kind.name, "lock": e.lock, "uptime_ms": e.uptime_ms}
            for e in batch.events]


def _inventory_findings(hw: Hardware, source: int | str, out: _Findings,
                        progress: Progress = None, *,
                        on_failure: Callable[[DriverError], bool] | None = None
                        ) -> list[dict[str, object]]:
    """Inventory each door ``source`` (a board address or a stand-alone reader's name)
    reads, once (read-only: inventory and block reads), and name tags that answer but whose
    data cannot be decoded. Tags that do not answer cannot be told from absent books here
    (``inventory_report(expect=...)`` can); a failing inventory is left to the link and
    board findings, or to ``on_failure`` (returning True stops the remaining doors)."""
    reader = hw.readers.get(source)
    rows: list[dict[str, object]] = []
    if reader is None:
        return rows
    for number in hw.doors_read_by(source):
        spec = hw.door(number)
        if progress is not None:
            progress(f"door {number}: inventory")
        try:
            tags = inventory_door(reader, spec.antenna, hw.tag_cache)
        except DriverError as exc:
            rows.append({"door": number, "antenna": spec.antenna, "error": str(exc)})
            if on_failure is not None and on_failure(exc):
                break
            continue
        bad = [t for t in tags if t.undecodable]
        rows.append({"door": number, "antenna": spec.antenna, "tags": len(tags),
                     "undecodable": [t.uid.hex().upper() for t in bad]})
        for t in bad:
            uid = t.uid.hex().upper()
            _undecodable(out, f"door {number}", uid, t.error)
    return rows


def _probe_latency(measure: Callable[[], float], probes: int) -> list[float]:
    """How late a board's replies come (``measure``: its ``measure_latency``, GET_STATES with
    a long timeout, seconds each). The first probe is not counted: on a line slower than the
    timeout it waits out the late duplicates of earlier re-sent requests."""
    samples: list[float] = []
    for i in range(probes + 1):
        try:
            late = measure()
        except DriverError:
            continue
        if i:
            samples.append(late)
    return samples


def _latency_row(address: int, bus: str, samples: list[float]) -> dict[str, object]:
    return {"board": address, "bus": bus, "probes": len(samples),
            "latency_mean_ms": round(sum(samples) / len(samples) * 1000, 1) if samples
            else None,
            "latency_max_ms": round(max(samples) * 1000, 1) if samples else None}


def _slow_bus(bus: str, samples: list[float], out: _Findings) -> bool:
    """A finding for a bus whose replies come late; True when later than the plain-command
    timeout (every request times out and is re-sent: its boards cannot be tested)."""
    if not samples:
        return False
    timeout_ms = Timing.RESPONSE_TIMEOUT_MS
    mean_ms = sum(samples) / len(samples) * 1000
    if mean_ms >= timeout_ms:
        out.add(f"bus {bus}", "latency", f"replies {mean_ms:.0f} ms late on average, past "
                f"the {timeout_ms} ms reply timeout: requests time out and are re-sent — "
                f"check the converter/USB latency timer (its boards were not tested further)",
                code="bus_past_timeout", params={"ms": f"{mean_ms:.0f}", "timeout_ms": timeout_ms})
        return True
    if mean_ms >= SLOW_REPLY_MS:
        out.add(f"bus {bus}", "latency", f"replies {mean_ms:.0f} ms late on average — "
                f"check the converter/USB latency timer", Severity.WARNING,
                code="bus_slow", params={"ms": f"{mean_ms:.0f}"})
    return False


def link_fault(sent: int, failed: int) -> bool:
    """Whether ``failed`` of a bus's ``sent`` frames (no reply, or one that did not decode)
    mean a wiring problem: more than :data:`LINK_FAULT_FRACTION` of them, and at least
    :data:`LINK_FAULT_MIN_FAILED`."""
    return sent > 0 and failed >= LINK_FAULT_MIN_FAILED and failed / sent > LINK_FAULT_FRACTION


def _link_findings(hw: Hardware, answering: list[int], out: _Findings,
                   probes: int, skip: set[str] | frozenset[str] = frozenset(),
                   readers: Sequence[tuple[str, int]] = ()) -> list[dict[str, object]]:
    """Probe each answering board (door-state reads, any family) and judge each bus by the
    failed attempts in its counters (buses in ``skip`` are too slow to judge this way: their
    failures are late replies). Stand-alone readers (``(bus, address)`` of those that
    answered) are judged by the traffic the self-test already sent them, not probed again."""
    for address in answering:
        if hw.bus_of(address) in skip:
            continue
        board = hw.boards[address]
        for _ in range(probes):
            try:
                board.states()
            except DriverError:
                pass
    rows: list[dict[str, object]] = []
    for name, transport in hw.buses.items():
        if name in skip:
            continue
        addresses = [a for a in answering if hw.bus_of(a) == name]
        addresses += [a for bus, a in readers if bus == name and a not in addresses]
        sent = unreadable = silent = 0
        if not hasattr(transport, "device_counters"):
            addresses = []
        for a in addresses:
            c = transport.device_counters(a)
            sent += c.frames_sent
            unreadable += c.attempts_unreadable
            silent += c.attempts_silent
        failed = unreadable + silent
        frac = failed / sent if sent else 0.0
        rows.append({"bus": name, "frames_sent": sent, "unreadable": unreadable,
                     "unanswered": silent, "failed_fraction": round(frac, 4)})
        if link_fault(sent, failed):
            out.add(f"bus {name}", "link", f"{frac:.0%} of frames corrupted or lost — check "
                    f"RS-485 wiring/termination", code="link_errors",
                    params={"percent": f"{frac:.0%}".removesuffix("%")})
    return rows


def _reader_checks(hw: Hardware, out: _Findings, *, inventory: bool, progress: Progress
                   ) -> tuple[list[dict[str, object]], list[tuple[str, int]]]:
    """Each stand-alone reader: does it answer (its identify where the family has one),
    then a read-only inventory of every door it reads (undecodable tags named). Returns the
    rows and ``(bus, address)`` of the readers that answered."""
    rows: list[dict[str, object]] = []
    answered: list[tuple[str, int]] = []
    for name, reader in _standalone_readers(hw):
        bus = _reader_bus(hw, name)
        address = getattr(reader, "address", None)
        row: dict[str, object] = {"reader": name, "bus": bus,
                                  "family": _bus_family(hw, bus), "address": address,
                                  "doors": hw.doors_read_by(name)}
        not_available = ["antenna diagnostics"]
        row["not_available"] = not_available
        rows.append(row)
        if progress is not None:
            progress(f"reader {name} on {bus}: identify, inventory of its doors")
        try:
            row["info"] = _reader_identify(reader)
            row["answering"] = True
        except NotSupported:
            not_available.insert(0, "firmware version")
            if hasattr(reader, "identify"):  # it answered that it does not know the command
                row["answering"] = True
        except DriverError as exc:
            _reader_unreachable(hw, name, exc, out)
            row["answering"] = False
            continue
        dead: list[DriverError] = []

        def failed(exc: DriverError, name: str = name, dead: list[DriverError] = dead) -> bool:
            if isinstance(exc, (DeviceTimeout, DeviceUnavailable, FrameError)):
                _reader_unreachable(hw, name, exc, out)
                dead.append(exc)
                return True  # the other doors would only fail the same way, slowly
            return False

        if inventory:
            row["inventory"] = _inventory_findings(hw, name, out, progress, on_failure=failed)
        if "answering" not in row:  # no identify command: the inventory told
            row["answering"] = not dead and (inventory and bool(row["doors"]))
        if row["answering"] and address is not None:
            answered.append((bus, address))
    return rows, answered


def run_selftest(hw: Hardware, *, unlock: bool = False, link_probes: int = LINK_PROBES,
                 watch_s: float = 3.0, latency_probes: int = LATENCY_PROBES,
                 inventory: bool = True, progress: Progress = None) -> SelfTestReport:
    """Check every board, reader, antenna and (with ``unlock``) door; name each faulty part.

    Steps per board, each where its family can do it (else listed as not available): identify
    (answering?), reply latency (our boards: GET_STATES with a long timeout — a slow
    converter or USB latency timer; replies later than SPEC's 50 ms timeout make every
    request time out, so the bus's boards are not tested further), self-test (coils,
    sensors; polled families: the board answers, inferred jams), antenna diagnosis of every
    antenna, door states (jammed/forced/open/held open), event history (forced doors, doors
    left open, power loss), one read-only inventory of each door its own antennas read (tags
    whose data does not decode), then a test-unlock of each door if asked. Then each
    stand-alone reader (identify where the protocol has it, one read-only inventory of each
    door it reads), then link quality per bus. ``progress`` is told each step as it starts
    (the whole test takes seconds per door on a slow bus, so a technician should see it move).
    """
    def step(what: str) -> None:
        if progress is not None:
            progress(what)

    out = _Findings()
    boards: list[dict[str, object]] = []
    unlocks: list[UnlockCheck] = []
    answering: list[int] = []
    latency: list[dict[str, object]] = []
    bus_samples: dict[str, list[float]] = {}
    too_slow: set[str] = set()
    for address, board in sorted(hw.boards.items()):
        bus = hw.bus_of(address)
        family = _bus_family(hw, bus)
        row: dict[str, object] = {"board": address, "bus": bus, "family": family}
        not_available: list[str] = []
        boards.append(row)
        measure: Callable[[], float] | None = getattr(board, "measure_latency", None)
        if bus in too_slow:  # normal timeouts would only cascade: is it there at all?
            try:
                if measure is not None:
                    measure()
                else:
                    board.states()
                row["answering"] = True
            except DriverError as exc:
                _unreachable(hw, address, exc, out)
                row["answering"] = False
            row["skipped"] = "bus replies later than the timeout"
            continue
        if family == "lendbox":
            step(f"board {address} on {bus}: identify, latency, self-test, antennas")
        else:
            step(f"board {address} on {bus} ({family}): identify, self-test, door states")
        try:
            info: BoardInfo | None = board.identify()
        except NotSupported:
            info = None
            not_available.append("identity")
        except DriverError as exc:
            _unreachable(hw, address, exc, out)
            row["answering"] = False
            continue
        row.update(answering=True, info=info.as_dict() if info else None,
                   not_available=not_available)
        if info is not None and _unknown(info.firmware):
            not_available.append("firmware version")
        answering.append(address)
        if measure is not None:
            samples = _probe_latency(measure, latency_probes)
            latency.append(_latency_row(address, bus, samples))
            bus_samples.setdefault(bus, []).extend(samples)
            if samples and sum(samples) / len(samples) * 1000 >= Timing.RESPONSE_TIMEOUT_MS:
                too_slow.add(bus)
                row["skipped"] = "bus replies later than the timeout"
                continue
        else:
            not_available.append("reply latency probe")
        try:
            try:
                checks: tuple[PartCheck, ...] = board.self_test()
            except NotSupported:
                checks = ()
                not_available.append("self-test")
            broken = _part_findings(hw, address, checks, out)
            row["self_test"] = [{"part": c.part.name, "index": c.index,
                                 "status": c.status.name} for c in checks]
            antennas = sorted({hw.door(d).antenna for d in hw.doors_read_by(address)}
                              | set(range(1, (info.antennas if info else 0) + 1)))
            if antennas:
                row["antennas"] = _antenna_findings(hw, address, board, antennas, checks, out,
                                                    not_available)
            else:
                not_available.append("antenna diagnostics")
            still_open: set[int] = set()
            for s in board.states():
                label, _ = _door_label(hw, address, lock=s.lock)
                if not label:
                    continue
                if s.open:
                    still_open.add(s.lock)
                if s.jammed:
                    out.add(label, "lock", "lock jammed", code="lock_jammed", params={})
                if s.forced:
                    out.add(label, "forced", "forced open", code="forced_open", params={})
                elif s.held_open:
                    out.add(label, "open", "left open (held-open alarm)", code="left_open",
                            params={})
            try:
                row["events"] = _event_findings(hw, address, board, out, still_open)
            except NotSupported:
                not_available.append("event history")
            for lock in sorted(still_open):
                label, _ = _door_label(hw, address, lock=lock)
                if label and not out.has(label, "forced"):
                    out.add(label, "open", "open — close it (no held-open alarm yet)",
                            Severity.WARNING, code="open_now", params={})
            if inventory and address in hw.readers:  # ~50 ms per tag at 19200 baud
                row["inventory"] = _inventory_findings(hw, address, out, progress)
        except DriverError as exc:
            out.add(_board_subject(hw, address), "test", f"self-test interrupted: {exc}",
                    code="selftest_interrupted", params={"error": str(exc)})
            continue
        if unlock:
            for number in hw.doors_of(address):
                step(f"door {number}: test-unlock")
                check = test_unlock(hw, number, watch_s=watch_s,
                                    sensor_broken=number in broken)
                unlocks.append(check)
                for f in check.findings:
                    # One verdict per part: a coil the self-test already named stays named.
                    topic = "sensor" if "sensor wiring" in f.message else "lock"
                    out.add(f.subject, topic, f.message, f.severity, code=f.code,
                            params=f.params)
    readers, reader_addresses = _reader_checks(hw, out, inventory=inventory, progress=progress)
    for bus, samples in bus_samples.items():
        _slow_bus(bus, samples, out)
    step("link quality")
    links = _link_findings(hw, answering, out, link_probes, too_slow, reader_addresses)
    peripherals = _peripheral_reports(hw, out)
    return SelfTestReport(findings=out.list(), boards=boards, unlocks=unlocks, links=links,
                          peripherals=peripherals, latency=latency, readers=readers)



# ---------------------------------------------------------------- card reader and camera

CARD_READER = "card reader"
CAMERA = "camera"


@dataclass(frozen=True, slots=True, kw_only=True)
class PeripheralReport:
    """The card reader or the camera: its availability (and why) and what it is."""

    device: str  # CARD_READER or CAMERA
    availability: str
    reason: str
    details: dict[str, object] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        return {"device": self.device, "availability": self.availability,
                "reason": self.reason, "details": self.details}


def _card_reader_report(hw: Hardware) -> PeripheralReport | None:
    reader = hw.card_reader
    if reader is None:
        return None
    status = reader.status()
    spec = hw.spec.card_reader
    details: dict[str, object] = {"reader": reader.diagnostics().get("reader") or "",
                                  "reader_match": reader.reader_match}
    if spec is not None and spec.pcsc_socket:
        details["pcsc_socket"] = spec.pcsc_socket
    return PeripheralReport(device=CARD_READER, availability=status.availability.value,
                            reason=status.reason, details=details)


def _camera_report(hw: Hardware) -> PeripheralReport | None:
    camera = hw.camera
    if camera is None:
        return None
    opened_here = not camera.is_open
    reason = ""
    try:
        camera.open()
        camera.read_frame()
    except DriverError as exc:
        reason = str(exc)
    try:
        status = camera.status()
        diag = camera.diagnostics()
    finally:
        if opened_here:
            camera.close()
    availability = "unavailable" if reason else status.availability.value
    details = {k: diag[k] for k in ("source", "kind", "decoder", "isbn_decoder", "frames_read")}
    return PeripheralReport(device=CAMERA, availability=availability,
                            reason=reason or status.reason, details=details)


def _peripheral_reports(hw: Hardware, out: _Findings) -> list[PeripheralReport]:
    reports = [r for r in (_card_reader_report(hw), _camera_report(hw)) if r is not None]
    for r in reports:
        if r.availability == "unavailable":
            out.add(r.device, "availability", f"unavailable — {r.reason}",
                    code="unavailable", params={"reason": r.reason})
        elif r.availability == "degraded":
            out.add(r.device, "availability", f"degraded — {r.reason}", Severity.WARNING,
                    code="degraded", params={"reason": r.reason})
    return reports


def check_peripherals(hw: Hardware) -> tuple[list[PeripheralReport], list[Finding]]:
    """The configured card reader and camera: availability, and findings for the faulty ones.
    (``check_devices`` and ``run_selftest`` include this.)"""
    out = _Findings()
    return _peripheral_reports(hw, out), out.list()


def _require(device: object, section: str) -> None:
    if device is None:
        raise ConfigError(f"the hardware config has no [{section}] section")


@dataclass(frozen=True, slots=True, kw_only=True)
class CardCheck:
    """One card read. The UID itself is never kept: only its per-process digest and length."""

    reader: str
    timeout_s: float
    uid_digest: str | None
    uid_length: int | None
    seconds: float
    findings: list[Finding] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not any(f.severity is Severity.FAULT for f in self.findings)

    def as_dict(self) -> dict[str, object]:
        return {"reader": self.reader, "timeout_s": self.timeout_s,
                "uid_digest": self.uid_digest, "uid_length": self.uid_length,
                "seconds": round(self.seconds, 3), "passed": self.passed,
                "findings": [f.as_dict() for f in self.findings]}


def read_card(hw: Hardware, *, timeout: float = 10.0,
              clock: Callable[[], float] = time.monotonic) -> CardCheck:
    """Wait up to ``timeout`` s for a card on the reader and read its UID.

    No card in time is a fault (the check is "does the reader read a card?").
    Raises:
        ConfigError: the hardware config has no card reader.
    """
    from .card_reader import CardCommandRefused, uid_digest

    _require(hw.card_reader, "card_reader")
    reader = hw.card_reader
    assert reader is not None
    out = _Findings()
    digest: str | None = None
    length: int | None = None
    start = clock()
    try:
        uid = reader.read_uid(timeout)
    except CardCommandRefused as exc:
        out.add(CARD_READER, "card", f"the card refused GET DATA (SW {exc.sw:04X}) — not a "
                "card this reader can identify", code="card_refused",
                params={"sw": f"{exc.sw:04X}"})
    except CardError as exc:
        out.add(CARD_READER, "card", f"card present but unreadable ({exc}) — hold it still "
                "on the reader and try again", code="card_unreadable",
                params={"error": str(exc)})
    except DeviceTimeout as exc:
        out.add(CARD_READER, "card", f"no answer ({exc})", code="card_no_answer",
                params={"error": str(exc)})
    except DeviceUnavailable as exc:
        out.add(CARD_READER, "availability", f"unavailable — {exc}", code="unavailable",
                params={"reason": str(exc)})
    else:
        if uid is None:
            out.add(CARD_READER, "card", f"no card within {timeout:g} s — hold a card flat on "
                    "the reader; if one was there, check the reader's antenna", code="no_card",
                    params={"seconds": f"{timeout:g}"})
        else:
            digest, length = uid_digest(uid), len(uid)
    name = reader.diagnostics().get("reader") or reader.reader_match
    return CardCheck(reader=str(name), timeout_s=timeout, uid_digest=digest, uid_length=length,
                     seconds=clock() - start, findings=out.list())


@dataclass(frozen=True, slots=True, kw_only=True)
class CameraCheck:
    """What the camera saw for a few seconds: QR texts and ISBNs, each once, in order."""

    source: str
    decoder: str
    isbn_decoder: str
    seconds: float
    frames: int
    qr: list[str]
    isbns: list[str]
    findings: list[Finding] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not any(f.severity is Severity.FAULT for f in self.findings)

    def as_dict(self) -> dict[str, object]:
        return {"source": self.source, "decoder": self.decoder,
                "isbn_decoder": self.isbn_decoder, "seconds": round(self.seconds, 3),
                "frames": self.frames, "qr": self.qr, "isbns": self.isbns,
                "passed": self.passed, "findings": [f.as_dict() for f in self.findings]}


def watch_camera(hw: Hardware, *, seconds: float = 5.0,
                 clock: Callable[[], float] = time.monotonic) -> CameraCheck:
    """Read frames for ``seconds`` and collect the QR texts and ISBN-13s decoded.

    A camera that delivers no frame is a fault; frames without any code are only a warning.
    Raises:
        ConfigError: the hardware config has no camera.
    """
    _require(hw.camera, "camera")
    camera = hw.camera
    assert camera is not None
    out = _Findings()
    qr: list[str] = []
    isbns: list[str] = []
    opened_here = not camera.is_open
    start = clock()
    frames_before = int(camera.diagnostics()["frames_read"])  # type: ignore[call-overload]
    try:
        camera.open()
        while True:
            qr.extend(t for t in camera.read_qr() if t not in qr)
            isbns.extend(i for i in camera.read_isbns() if i not in isbns)
            if clock() - start >= seconds:
                break
        status = camera.status()
        if status.availability.value == "degraded":
            out.add(CAMERA, "availability", f"degraded — {status.reason}", Severity.WARNING,
                    code="degraded", params={"reason": status.reason})
    except DriverError as exc:
        out.add(CAMERA, "availability", f"unavailable — {exc}", code="unavailable",
                params={"reason": str(exc)})
    diag = camera.diagnostics()
    frames = int(diag["frames_read"]) - frames_before  # type: ignore[call-overload]
    if opened_here:
        camera.close()
    if frames and not qr and not isbns:
        out.add(CAMERA, "codes", f"no QR code or ISBN seen in {frames} frames",
                Severity.WARNING, code="no_codes_seen", params={"frames": frames})
    return CameraCheck(source=str(diag["source"]), decoder=str(diag["decoder"]),
                       isbn_decoder=str(diag["isbn_decoder"]), seconds=clock() - start,
                       frames=frames, qr=qr, isbns=isbns, findings=out.list())
