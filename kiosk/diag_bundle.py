"""The diagnostics bundle: one zip a technician downloads (or the server fetches) to see what
a cabinet sees, without carrying away anything secret or personal.

What is in it: the config with every secret redacted (keys, password hashes, tokens), the
devices with their counters (``drivers.diag.check_devices``, the same check as ``lendbox
diag devices``), the ledger's integrity check, recent events and alarms and the kiosk's
recent log lines with reader ids and card numbers replaced by hashes
(``syncproto.grants.log_id``), and a short ``summary.json`` (also what the server's
``fetch_diagnostics`` command gets back).

Why two entries (``build_bundle`` for the running kiosk, ``build_offline_bundle`` for the
``lendbox kiosk bundle`` command on a stopped one) over one private builder: a cabinet that
will not start is the one a technician most needs a bundle of.
"""

from __future__ import annotations

import collections
import io
import json
import logging
import re
import threading
import tomllib
import zipfile
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from drivers.diag import DevicesReport, SelfTestReport, check_devices, run_selftest
from drivers.errors import DriverError
from drivers.hardware import Hardware
from syncproto.grants import log_id

from .config import KioskConfig
from .ledger import Ledger, LedgerError

if TYPE_CHECKING:
    from .runtime import KioskRuntime

__all__ = [
    "REDACTED",
    "build_bundle",
    "build_offline_bundle",
    "install_log_ring",
    "ledger_integrity",
    "redact_config",
    "scrub",
    "scrub_text",
    "summary",
]

REDACTED = "[redacted]"
#: config keys whose values never leave the cabinet (the whole value, tables included)
_SECRET_KEY = re.compile(r"password|secret|token|key|hash|private|pepper|credential|signature",
                         re.IGNORECASE)
#: keys of events and log fields that name a reader or a card: replaced by a hash
_PERSONAL_KEY = re.compile(r"reader(_id)?$|card|patron|barcode|credential|grant_id|phone"
                           r"|^value$", re.IGNORECASE)
#: ``reader_id=R123``, ``card: 04A1B2C3`` … in free text
_PERSONAL_FIELD = re.compile(
    r"(?P<name>\b(?:reader(?:_id)?|card(?:_number|_hash)?|patron|barcode|uid)\b\s*[=: ]\s*)"
    r"(?P<q>['\"]?)(?P<value>[^\s'\",;)]+)", re.IGNORECASE)
#: long digit runs (card and phone numbers) anywhere in a log line
_LONG_NUMBER = re.compile(r"(?<![\w#])\d{8,}(?!\w)")

LEDGER_EVENTS = 500
LOG_LINES = 2000


def _hashed(value: object) -> str:
    return "#" + log_id(str(value))


# --------------------------------------------------------------------------- redaction


def redact_config(text: str) -> dict[str, Any]:
    """The parsed config with every secret value replaced by ``[redacted]``.

    Raises ValueError when ``text`` is not TOML (a bundle then carries the error instead)."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"config is not valid TOML: {exc}") from None
    redacted = _redact(raw)
    assert isinstance(redacted, dict)
    return redacted


def _redact(value: Any, secret: bool = False) -> Any:
    if secret:
        return REDACTED
    if isinstance(value, Mapping):
        return {k: _redact(v, bool(_SECRET_KEY.search(str(k)))) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def scrub(value: Any, personal: bool = False) -> Any:
    """Events and log records with reader ids, cards and grants replaced by ``#hash``."""
    if isinstance(value, Mapping):
        return {k: scrub(v, personal or bool(_PERSONAL_KEY.search(str(k))))
                for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [scrub(v, personal) for v in value]
    if personal and value is not None and not isinstance(value, bool):
        return _hashed(value)
    if isinstance(value, str):
        return scrub_text(value)
    return value


def scrub_text(text: str) -> str:
    """A log line with ``reader=…``/``card …`` values and long numbers replaced by hashes."""
    text = _PERSONAL_FIELD.sub(
        lambda m: m.group("name") + m.group("q") + (
            m.group("value") if m.group("value").startswith("#")
            else _hashed(m.group("value"))), text)
    return _LONG_NUMBER.sub(lambda m: _hashed(m.group(0)), text)


# --------------------------------------------------------------------------- logs


class _LogRing(logging.Handler):
    """The last log lines of this process, kept in memory for the bundle (the kiosk logs
    to stderr, which a technician at the cabinet cannot read)."""

    def __init__(self, size: int = LOG_LINES) -> None:
        super().__init__(logging.INFO)
        self.lines: collections.deque[str] = collections.deque(maxlen=size)
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.lines.append(self.format(record))
        except Exception:  # noqa: BLE001 - a log line must never break the kiosk
            self.handleError(record)


_ring: _LogRing | None = None
_ring_lock = threading.Lock()


def install_log_ring() -> None:
    """Keep the process's recent log lines for bundles (idempotent)."""
    global _ring
    with _ring_lock:
        if _ring is None:
            _ring = _LogRing()
            logging.getLogger().addHandler(_ring)


def _log_lines() -> list[str]:
    return list(_ring.lines) if _ring is not None else []


# --------------------------------------------------------------------------- checks


def ledger_integrity(ledger: Ledger) -> dict[str, Any]:
    """The ledger's own check (sequence gaps, acks past the end, intents left open by an
    older boot, an item in two doors, SQLite's checks) with where the outbox stands."""
    try:
        problems = ledger.integrity_check()
        return {"ok": not problems, "problems": problems, "last_seq": ledger.last_seq(),
                "acked_through": ledger.acked_through(), "pending": ledger.pending()}
    except (LedgerError, OSError, ValueError) as exc:
        return {"ok": False, "problems": [f"ledger cannot be read: {exc}"]}
    except Exception as exc:  # noqa: BLE001 - sqlite3.DatabaseError on a damaged file
        return {"ok": False, "problems": [f"ledger cannot be read: {type(exc).__name__}: {exc}"]}


def _devices(hw: Hardware | None) -> tuple[dict[str, Any], DevicesReport | None]:
    if hw is None:
        return {"skipped": "devices not checked (no hardware opened)"}, None
    try:
        report = check_devices(hw)
    except (DriverError, OSError) as exc:
        return {"error": f"devices could not be checked: {exc}"}, None
    return report.as_dict(), report


def _quick_selftest(hw: Hardware | None) -> dict[str, Any]:
    """``lendbox diag selftest --no-inventory``: boards, coils, sensors, antennas, door
    states and links, without opening a door or reading a tag (safe beside a session: every
    request waits its turn on the board's lock)."""
    if hw is None:
        return {"skipped": "self-test not run (no hardware opened)"}
    try:
        report: SelfTestReport = run_selftest(hw, unlock=False, inventory=False)
    except (DriverError, OSError) as exc:
        return {"error": f"self-test could not run: {exc}"}
    return report.as_dict()


def _counters(devices: Mapping[str, Any]) -> dict[str, Any]:
    return {f"board {b['address']}": {"counters": b.get("counters"), "link": b.get("link"),
                                      "kept_by": b.get("counters_kept_by")}
            for b in devices.get("boards", [])} | {
        f"reader {r['name']}": {"link": r.get("link")} for r in devices.get("readers", [])}


def _availability(devices: Mapping[str, Any]) -> dict[str, str]:
    out: dict[str, str] = {}
    for b in devices.get("boards", []):
        out[f"board {b['address']}"] = str(b.get("availability"))
    for r in devices.get("readers", []):
        out[f"reader {r['name']}"] = str(r.get("availability"))
    for p in devices.get("peripherals", []):
        out[str(p["device"])] = str(p.get("availability"))
    return out


def _summary(config: KioskConfig, devices: Mapping[str, Any], selftest: Mapping[str, Any],
             integrity: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    """The verdict: the self-test's findings (it repeats the device check's), else the device
    check's, and the ledger's problems; a check that could not run is a fault too."""
    source = selftest if "findings" in selftest else devices
    seen: dict[str, str] = {}
    for f in source.get("findings", []):
        seen.setdefault(str(f["text"]), str(f.get("severity")))
    faults = [text for text, severity in seen.items() if severity == "fault"]
    faults += [str(d["error"]) for d in (devices, selftest) if "error" in d]
    ledger_problems = [f"ledger: {p}" for p in integrity.get("problems", [])]
    return {
        "cabinet": config.cabinet.id, "generated_at": now.isoformat(),
        "devices": _availability(devices), "counters": _counters(devices),
        "verdict": {"passed": not faults and not ledger_problems,
                    "faults": faults + ledger_problems,
                    "findings": list(seen) + ledger_problems,
                    "checked": [name for name, d in (("devices", devices),
                                                      ("self-test", selftest))
                                if "skipped" not in d]},
        "ledger": dict(integrity),
    }


def _alarms(events: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in events if e.get("kind") == "alarm"]


def _ledger_events(ledger: Ledger) -> list[dict[str, Any]]:
    last = ledger.last_seq()
    events = ledger.events_after(max(0, last - LEDGER_EVENTS), limit=LEDGER_EVENTS)
    return [scrub({"seq": e.seq, "kind": e.kind, "at": e.at.isoformat(), "offline": e.offline,
                   "payload": e.payload}) for e in events]


# --------------------------------------------------------------------------- the zip


def _zip(files: Mapping[str, Any]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for name, content in files.items():
            if isinstance(content, str):
                z.writestr(name, content)
            else:
                z.writestr(name, json.dumps(content, ensure_ascii=False, indent=2,
                                            default=str) + "\n")
    return buf.getvalue()


def _config_entry(config: KioskConfig) -> Any:
    try:
        return redact_config(config.path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        return {"error": f"config could not be read: {exc}"}


_README = """Diagnostics bundle of cabinet {cabinet}, made {at} ({how}).

summary.json          devices, counters, a quick verdict and the ledger check
config.json           the cabinet's config; keys, password hashes and tokens redacted
devices.json          every bus, board, reader, card reader and camera (lendbox diag devices)
selftest.json         lendbox diag selftest --no-inventory (no door opened, no tag read)
ledger-integrity.json sequence gaps, open intents, items in two doors, SQLite checks
events.json           the ledger's last {n} events (reader ids, cards, grants hashed)
alarms.json           the alarms among them
{extra}
Hashes are 12 hex characters of SHA-256 (syncproto.grants.log_id): the same reader gives
the same hash, so one reader can be followed through the files without their number.
"""


def _bundle(config: KioskConfig, *, ledger: Ledger | None, hw: Hardware | None,
            extra: Mapping[str, Any], how: str, readme_extra: str) -> tuple[bytes, dict[str, Any]]:
    now = datetime.now(UTC)
    devices, _ = _devices(hw)
    selftest = _quick_selftest(hw)
    if ledger is not None:
        integrity = ledger_integrity(ledger)
        try:
            events = _ledger_events(ledger)
        except Exception as exc:  # noqa: BLE001 - a damaged ledger still gets a bundle
            events = [{"error": f"events could not be read: {type(exc).__name__}: {exc}"}]
    else:
        integrity = {"ok": False, "problems": [f"no ledger at {config.data_dir / 'ledger.db'}"]}
        events = []
    head = _summary(config, devices, selftest, integrity, now)
    files: dict[str, Any] = {
        "README.txt": _README.format(cabinet=config.cabinet.id, at=now.isoformat(), how=how,
                                     n=LEDGER_EVENTS, extra=readme_extra),
        "summary.json": head, "config.json": _config_entry(config), "devices.json": devices,
        "selftest.json": selftest,
        "ledger-integrity.json": integrity, "events.json": events,
        "alarms.json": _alarms(events), **extra,
    }
    return _zip(files), head


def build_bundle(runtime: KioskRuntime) -> bytes:
    """The bundle of the running kiosk (its devices checked now, read-only)."""
    assert runtime.ledger is not None
    try:
        health = scrub(runtime.health())
    except Exception as exc:  # noqa: BLE001 - the bundle is for when things are broken
        health = {"error": f"{type(exc).__name__}: {exc}"}
    recent = scrub(list(runtime.iter_recent()))
    logs = "\n".join(scrub_text(line) for line in _log_lines())
    extra = {"health.json": health, "recent.json": recent, "logs/kiosk.log": logs + "\n"}
    data, _ = _bundle(runtime.config, ledger=runtime.ledger, hw=runtime.hardware, extra=extra,
                      how="from the running kiosk",
                      readme_extra="health.json           the kiosk's health: outbox, sync\n"
                                   "recent.json           what the screen was told lately\n"
                                   "logs/kiosk.log        the kiosk's recent log lines\n")
    return data


def summary(runtime: KioskRuntime) -> dict[str, Any]:
    """JSON-able: devices (availability), counters, a verdict (the self-test without unlocks
    or inventories, and the ledger check) and the ledger's integrity. Opens no door and
    reads no tag; about a second on the simulator, a few on a slow RS-485 bus."""
    assert runtime.ledger is not None
    devices, _ = _devices(runtime.hardware)
    return _summary(runtime.config, devices, _quick_selftest(runtime.hardware),
                    ledger_integrity(runtime.ledger), datetime.now(UTC))


def build_offline_bundle(config: KioskConfig, *, devices: bool = True,
                         logs: Iterable[Path] = ()) -> bytes:
    """The bundle of a cabinet whose kiosk is not running (``lendbox kiosk bundle``).

    ``devices``: open the hardware and check it (off: when the kiosk runs after all and owns
    the serial ports). ``logs``: log files to add, scrubbed line by line."""
    db = config.data_dir / "ledger.db"
    ledger: Ledger | None = None
    hw: Hardware | None = None
    extra: dict[str, Any] = {}
    try:
        if db.exists():
            try:
                ledger = Ledger(db, config.cabinet.id)
            except Exception as exc:  # noqa: BLE001 - report it in the bundle instead
                extra["ledger-error.txt"] = f"{type(exc).__name__}: {exc}\n"
        if devices:
            try:
                hw = Hardware.from_spec(config.hardware)
            except (DriverError, OSError) as exc:
                extra["devices-error.txt"] = f"{exc}\n"
        listed = ""
        for path in logs:
            try:
                text = path.read_text(encoding="utf-8", errors="replace")
            except OSError as exc:
                text = f"could not read {path}: {exc}"
            lines = text.splitlines()[-LOG_LINES:]
            extra[f"logs/{path.name}"] = "\n".join(scrub_text(line) for line in lines) + "\n"
            listed += f"logs/{path.name:<18} from {path}, scrubbed\n"
        data, _ = _bundle(config, ledger=ledger, hw=hw, extra=extra,
                          how="by `lendbox kiosk bundle`, kiosk not running",
                          readme_extra=listed)
        return data
    finally:
        if hw is not None:
            hw.close()
        if ledger is not None:
            ledger.close()
