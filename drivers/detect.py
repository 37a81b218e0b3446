"""``lendbox diag detect``: which device family answers on a serial port, at which line
settings and addresses — found without ever moving a lock.

Why: a technician commissioning a cabinet of commercial parts often does not know what a
board speaks, at which baud rate, or where its DIP switches are set. This module tries each
family's usual line settings and, at each, one **read-only** command per address:

| family | command | usual line settings |
|---|---|---|
| lendbox | IDENTIFY | 115200 8N1 (USB), 19200 8N1 (RS-485) |
| cn485 | read whole board ``80 BB 00 33 BCC`` | 9600 8N1 |
| kerong | get status 0x30 | 19200 8N1 (9600 also seen) |
| modbus | FC 2 read discrete inputs 0..7 | 9600 8N1, 19200 8N1 |
| feig | [0x65] Get Software Version | 38400 8E1, 115200 8E1 |
| rr3036 | (0x00, 0x00) init device / reader information | 19200 8N1, 57600 8N1 |

Safety by construction: before a frame is sent, it is fed to the *device-side* request
decoder of every family this package knows (``_check_read_only``); if any of them reads it —
or any part of it, as a device resynchronising byte by byte would — as anything but one of
the read-only commands above, the frame is not sent. So no probe can be an unlock, an open,
a coil write or a tag write to *any* family's device on the line.

The port is opened with pyserial (any ``serial_for_url`` URL) once per line setting; each
probe drains stale input, writes the frame, and reads until the reply is complete, the line
stays quiet for the family's inter-frame gap, or ``timeout`` passes with no byte. Over
``socket://`` the baud rate cannot be set (the far end — a serial server, or the simulator —
paces at its own rate), so only the family's first line setting is tried there and the
report says the line settings were not verified.

The first family that answers ends the search (one protocol per bus) unless ``every_family``
is asked for; at the line setting where it answered, all the remaining addresses are probed.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import serial

from firmware_protocol import cn485, feig, kerong, modbus_rtu, rr3036
from firmware_protocol import messages as m
from firmware_protocol.codec import NEED_DATA, FrameDecoder, encode
from firmware_protocol.const import MAX_ADDRESS, MIN_ADDRESS
from firmware_protocol.errors import FrameError, LocalProtocolError

from .families.feig import GET_SOFTWARE_VERSION, parse_software_version
from .transport import SOCKET_INTER_BYTE_GAP_S, usb_latency_timer_ms

__all__ = [
    "DEFAULT_ADDRESSES",
    "FAMILY_ORDER",
    "PROBES",
    "DetectReport",
    "Found",
    "Line",
    "detect",
    "parse_addresses",
    "probe_frames",
]

Progress = Callable[[str], None] | None

#: Addresses probed by default: Kerong units, FEIG and RR3036 readers start at 0, the others
#: at 1 (each family skips the addresses it cannot have).
DEFAULT_ADDRESSES = tuple(range(9))


@dataclass(frozen=True, slots=True)
class Line:
    """Serial line settings."""

    baudrate: int
    parity: str = "N"
    bytesize: int = 8
    stopbits: int = 1

    def __str__(self) -> str:
        return f"{self.baudrate} {self.bytesize}{self.parity}{self.stopbits}"

    def char_s(self) -> float:
        return (1 + self.bytesize + (self.parity != "N") + self.stopbits) / self.baudrate


# ---------------------------------------------------------------- probes


@dataclass(frozen=True, slots=True)
class _Probe:
    """One family's read-only probe.

    ``parse(address, data)`` → the details of a complete, valid answer from ``address`` (a
    dict, possibly empty), or None while ``data`` is not (yet) one.
    """

    family: str
    kind: str  # "board" | "reader"
    command: str
    lines: tuple[Line, ...]
    addresses: range
    timeout_s: float  # request end → first reply byte
    gap_s: float  # silence that ends a reply on a real serial line
    request: Callable[[int], bytes]
    parse: Callable[[int, bytes], dict[str, object] | None]
    #: stop reading as soon as ``parse`` accepts (False where a shorter frame could pass for
    #: the answer, e.g. cn485 whole-board replies of unknown length)
    early: bool = True


def _events(decoder: Any, data: bytes) -> list[object]:
    """Every event ``decoder`` finds in ``data`` (resynchronising over bad bytes)."""
    decoder.feed(data)
    out: list[object] = []
    for _ in range(len(data) + 2):
        try:
            event = decoder.next_event()
        except FrameError:
            continue
        if event is NEED_DATA:
            break
        out.append(event)
    return out


# lendbox ---------------------------------------------------------------

def _lendbox_seq() -> int:
    """A SEQ whose IDENTIFY frames pass the read-only check for every address (practically
    any: the check rejects a frame only if some family would read a command in it)."""
    for _ in range(256):
        seq = secrets.randbelow(256)
        if all(not _unsafe(encode(m.Frame(address=a, seq=seq, message=m.Identify())))
               for a in range(MIN_ADDRESS, 9)):
            return seq
    return 0


_SEQ: list[int] = []


def _lendbox_request(address: int) -> bytes:
    if not _SEQ:
        _SEQ.append(_lendbox_seq())
    return encode(m.Frame(address=address, seq=_SEQ[0], message=m.Identify()))


def _lendbox_parse(address: int, data: bytes) -> dict[str, object] | None:
    for event in _events(FrameDecoder(), data):
        if (isinstance(event, m.Frame) and event.address == address
                and isinstance(event.message, m.IdentifyReply)):
            r = event.message
            return {"serial": r.serial, "firmware": ".".join(map(str, r.firmware_version)),
                    "protocol": "{}.{}".format(*r.protocol_version), "locks": r.locks,
                    "antennas": r.antennas}
    return None


# cn485 -----------------------------------------------------------------

def _cn485_parse(address: int, data: bytes) -> dict[str, object] | None:
    start = data.find(bytes((cn485.HEAD_READ, address)))
    if start < 0:
        return None
    try:
        reply = cn485.decode_reply(data[start:], expect="board")
    except (FrameError, LocalProtocolError):
        return None
    if not isinstance(reply, cn485.BoardStatusReply) or reply.board != address:
        return None
    return {"channels": len(reply.signals), "status_bytes": reply.status_bytes}


# kerong ----------------------------------------------------------------

def _kerong_parse(address: int, data: bytes) -> dict[str, object] | None:
    for event in _events(kerong.ReplyDecoder(), data):
        if (isinstance(event, kerong.StatusReply) and not event.all_units
                and event.unit == address):
            return {"hooks_closed": sum(event.hooks), "items_seen": sum(event.infrared)}
    return None


# modbus ----------------------------------------------------------------

_MODBUS_INPUTS = 8


def _modbus_request(address: int) -> bytes:
    return modbus_rtu.encode_request(modbus_rtu.ReadBits(
        unit=address, function=2, address=0, count=_MODBUS_INPUTS))


def _modbus_parse(address: int, data: bytes) -> dict[str, object] | None:
    for event in _events(modbus_rtu.ReplyDecoder(), data):
        if getattr(event, "unit", None) != address:
            continue
        if isinstance(event, modbus_rtu.BitsReply) and event.function == 2:
            return {"inputs_0_7": "".join("1" if b else "0"
                                          for b in event.bits[:_MODBUS_INPUTS])}
        if isinstance(event, modbus_rtu.ExceptionReply) and event.function == 2:
            return {"note": f"answered FC 2 with Modbus exception {event.code} (inputs 0..7 "
                            f"not mapped on this module)"}
    return None


# feig ------------------------------------------------------------------

def _feig_request(address: int) -> bytes:
    return feig.encode_frame(address, GET_SOFTWARE_VERSION, b"")


def _feig_parse(address: int, data: bytes) -> dict[str, object] | None:
    for event in _events(feig.ResponseDecoder(), data):
        if not (isinstance(event, feig.Response) and event.address == address
                and event.control == GET_SOFTWARE_VERSION):
            continue
        if event.status == feig.Status.OK:
            try:
                return parse_software_version(event.data)
            except ValueError:
                return {"note": "[0x65] answered with a short version record"}
        return {"note": f"[0x65] Get Software Version answered STATUS 0x{event.status:02X} "
                        f"(the reader does not report its version)"}
    return None


# rr3036 ----------------------------------------------------------------

def _rr3036_parse(address: int, data: bytes) -> dict[str, object] | None:
    request = rr3036.InitDevice(address=address)
    for event in _events(rr3036.ReplyDecoder(), data):
        if not isinstance(event, rr3036.Reply) or event.address != address:
            continue
        try:
            reply = rr3036.decode_reply(event, request)
        except FrameError:
            continue
        if isinstance(reply, rr3036.InitReply):
            return {"firmware": f"{reply.version >> 8}.{reply.version & 0xFF:02d}",
                    "reader_type": f"0x{reply.reader_type:02X}",
                    "protocols": f"0x{reply.protocols:04X}", "scan_time": reply.scan_time}
        return {"note": f"init device answered status 0x{getattr(reply, 'status', 0):02X}"}
    return None


N81 = "N"
PROBES: dict[str, _Probe] = {p.family: p for p in (
    _Probe("lendbox", "board", "IDENTIFY", (Line(115200), Line(19200)),
           range(MIN_ADDRESS, MAX_ADDRESS + 1), 0.08, 0.005, _lendbox_request,
           _lendbox_parse),
    _Probe("kerong", "board", "get status 0x30", (Line(19200), Line(9600)),
           range(kerong.MAX_UNIT + 1), 0.15, 0.025,
           lambda a: kerong.encode_request(kerong.GetStatus(unit=a)), _kerong_parse),
    _Probe("cn485", "board", "read board 80 BB 00 33", (Line(9600),), range(1, 256), 0.2,
           0.025, lambda a: cn485.encode_request(cn485.ReadBoard(board=a)), _cn485_parse,
           early=False),
    _Probe("modbus", "board", "FC 2 read discrete inputs 0..7", (Line(9600), Line(19200)),
           range(1, 248), 0.1, 0.005, _modbus_request, _modbus_parse),
    _Probe("feig", "reader", "[0x65] Get Software Version", (Line(38400, "E"),
                                                             Line(115200, "E")),
           range(255), 0.1, 0.012, _feig_request, _feig_parse),
    _Probe("rr3036", "reader", "init device (0x00 0x00): reader information",
           (Line(19200), Line(57600)), range(255), 0.15, 0.010,
           lambda a: rr3036.encode_request(rr3036.InitDevice(address=a)), _rr3036_parse),
)}
#: The order families are tried in (each one's probe is read-only for every family).
FAMILY_ORDER = tuple(PROBES)


# ---------------------------------------------------------------- read-only check

def _request_decoders() -> list[tuple[str, Any, tuple[type, ...]]]:
    """(family, device-side request decoder, the request types that are read-only)."""
    return [
        ("lendbox", FrameDecoder(), (m.Identify, m.GetStates, m.GetCounters)),
        ("cn485", cn485.RequestDecoder(), (cn485.ReadBoard, cn485.ReadLock)),
        ("kerong", kerong.RequestDecoder(), (kerong.GetStatus,)),
        ("modbus", modbus_rtu.RequestDecoder(), (modbus_rtu.ReadBits,
                                                 modbus_rtu.ReadRegisters)),
        ("feig", feig.RequestDecoder(), ()),  # [0x65] is not in the codec: UnknownCommand
        ("rr3036", rr3036.RequestDecoder(), (rr3036.InitDevice,)),
    ]


def _unsafe(frame: bytes) -> list[str]:
    """What any family's device could read in ``frame`` that is not read-only ([] = safe)."""
    found: list[str] = []
    for start in range(len(frame)):  # a device may resynchronise at any byte
        for family, decoder, safe in _request_decoders():
            for event in _events(decoder, frame[start:]):
                if isinstance(event, m.Frame):
                    event = event.message
                    if not isinstance(event, m.Request):
                        continue  # a reply-shaped frame: devices ignore it
                if not isinstance(event, safe):
                    found.append(f"{family} {type(event).__name__} at byte {start}")
    return found


def _check_read_only(frame: bytes) -> None:
    bad = _unsafe(frame)
    if bad:
        raise AssertionError(f"probe {frame.hex(' ')} could be read as {', '.join(bad)}: "
                             "not sent")


def probe_frames(families: Iterable[str] = FAMILY_ORDER,
                 addresses: Iterable[int] = DEFAULT_ADDRESSES) -> list[bytes]:
    """Every frame ``detect`` may send for these families and addresses (for tests/audits)."""
    wanted = list(addresses)
    return [PROBES[f].request(a) for f in families for a in wanted if a in PROBES[f].addresses]


# ---------------------------------------------------------------- report


@dataclass(frozen=True, slots=True, kw_only=True)
class Found:
    """One family that answered: where, and what each address said."""

    family: str
    kind: str
    command: str
    line: Line
    line_verified: bool  # False over socket:// (the baud rate is not ours to set)
    devices: list[dict[str, object]]  # {"address": n, **details}

    @property
    def addresses(self) -> list[int]:
        return [int(d["address"]) for d in self.devices]  # type: ignore[call-overload]

    def as_dict(self) -> dict[str, object]:
        return {"family": self.family, "kind": self.kind, "command": self.command,
                "baudrate": self.line.baudrate, "parity": self.line.parity,
                "bytesize": self.line.bytesize, "stopbits": self.line.stopbits,
                "line": str(self.line), "line_verified": self.line_verified,
                "addresses": self.addresses, "devices": self.devices}


@dataclass(frozen=True, slots=True, kw_only=True)
class DetectReport:
    port: str
    found: list[Found]
    tried: list[dict[str, object]]  # {"family", "line", "addresses", "answered"}
    probes_sent: int
    seconds: float
    bus_name: str = ""
    error: str = ""
    usb_latency_timer_ms: int | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return bool(self.found)

    def snippet(self) -> str:
        """A hardware-config fragment (docs/contracts.md) for what was found."""
        return config_snippet(self)

    def as_dict(self) -> dict[str, object]:
        return {"port": self.port, "passed": self.passed,
                "found": [f.as_dict() for f in self.found], "tried": self.tried,
                "probes_sent": self.probes_sent, "seconds": round(self.seconds, 2),
                "error": self.error, "usb_latency_timer_ms": self.usb_latency_timer_ms,
                "notes": self.notes, "hardware_config": self.snippet() if self.found else ""}


#: The family's default parity in the hardware config (BusSpec.parity None).
_DEFAULT_PARITY = {"feig": "E"}


def config_snippet(report: DetectReport) -> str:
    """Ready-to-paste ``[[buses]]`` and ``[[boards]]`` / ``[[readers]]`` tables."""
    out: list[str] = []
    for i, f in enumerate(report.found):
        bus = report.bus_name or f"{f.family}-1"
        if len(report.found) > 1:
            bus = f"{bus}-{i + 1}" if report.bus_name else f"{f.family}-{i + 1}"
        out += ["[[buses]]", f'name = "{bus}"', f'url = "{report.port}"',
                f'family = "{f.family}"', f"baudrate = {f.line.baudrate}"]
        if f.line.parity != _DEFAULT_PARITY.get(f.family, "N"):
            out.append(f'parity = "{f.line.parity}"')
        out.append("")
        for d in f.devices:
            a = d["address"]
            if f.kind == "board":
                out += ["[[boards]]", f"address = {a}", f'bus = "{bus}"']
                if f.family == "cn485":
                    out.append(f"options = {{ locks = {d.get('channels', 24)} }}  # "
                               f"{d.get('channels')} channels answered: set the locks wired "
                               f"and feedback = \"closed_is_11\" | \"open_is_11\"")
                elif f.family == "kerong":
                    out.append("options = { locks = 16 }  # 12 for a CU12: set the locks "
                               "wired")
                elif f.family == "modbus":
                    out.append("options = { locks = 8 }  # set the locks wired and the "
                               "register map (docs/families.md)")
            else:
                out += ["[[readers]]", f'name = "{f.family}-{a}"', f'bus = "{bus}"',
                        f"address = {a}"]
                if f.family == "feig":
                    out.append("options = { antennas = 1 }  # set the multiplexer's antenna "
                               "outputs (1..8)")
            out.append("")
    return "\n".join(out)


# ---------------------------------------------------------------- probing


class _Port:
    """One opened port at one line setting."""

    def __init__(self, url: str, line: Line, factory: Callable[..., Any]) -> None:
        self.url = url
        self.line = line
        port = factory(url, baudrate=line.baudrate, bytesize=line.bytesize,
                       parity=line.parity, stopbits=line.stopbits, timeout=0.005,
                       do_not_open=True)
        port.open()
        self.port = port

    def set_line(self, line: Line) -> None:
        """Change the line settings of the open port (no close: pyserial's socket:// close
        alone takes 0.3 s)."""
        if line != self.line:
            self.port.baudrate = line.baudrate
            self.port.bytesize = line.bytesize
            self.port.parity = line.parity
            self.port.stopbits = line.stopbits
            self.line = line

    def close(self) -> None:
        try:
            self.port.close()
        except (OSError, serial.SerialException):
            pass

    def exchange(self, request: bytes, timeout_s: float, gap_s: float,
                 done: Callable[[bytes], bool]) -> bytes:
        """Write ``request``; read until ``done``, a ``gap_s`` silence after some bytes, or
        ``timeout_s`` with none (counted from the request's end on the wire)."""
        port = self.port
        port.reset_input_buffer()
        port.write(request)
        port.flush()
        deadline = time.monotonic() + len(request) * self.line.char_s() + timeout_s
        data = bytearray()
        last = 0.0
        while True:
            chunk = port.read(4096)
            now = time.monotonic()
            if chunk:
                data += chunk
                last = now
                if done(bytes(data)):
                    break
            elif data and now - last >= gap_s or not data and now >= deadline:
                break
        return bytes(data)


def parse_addresses(text: str) -> list[int]:
    """``"1-8"``, ``"0,3,5-7"`` → sorted addresses 0..255. Raises ValueError."""
    out: set[int] = set()
    for part in text.replace(" ", "").split(","):
        if not part:
            continue
        match = re.fullmatch(r"(\d+)(?:-(\d+))?", part)
        if not match:
            raise ValueError(f"bad address range {part!r} (use e.g. 1-8 or 0,3,5-7)")
        lo = int(match.group(1))
        hi = int(match.group(2) or lo)
        if lo > hi or hi > 255:
            raise ValueError(f"bad address range {part!r} (addresses 0..255, low-high)")
        out.update(range(lo, hi + 1))
    if not out:
        raise ValueError("no addresses given")
    return sorted(out)


def _ranges(numbers: Sequence[int]) -> str:
    runs: list[list[int]] = []
    for n in numbers:
        if runs and n == runs[-1][1] + 1:
            runs[-1][1] = n
        else:
            runs.append([n, n])
    return ",".join(f"{a}" if a == b else f"{a}-{b}" for a, b in runs) or "none"


def detect(url: str, *, families: Sequence[str] = FAMILY_ORDER,
           addresses: Sequence[int] = DEFAULT_ADDRESSES,
           baudrates: Sequence[int] | None = None, timeout_s: float | None = None,
           every_family: bool = False, bus_name: str = "", progress: Progress = None,
           port_factory: Callable[..., Any] = serial.serial_for_url) -> DetectReport:
    """Probe ``url`` (see the module docstring) and report what answered.

    Args:
        families: which families to try, in this order (``FAMILY_ORDER`` by default).
        addresses: candidate addresses; each family skips those it cannot have.
        baudrates: try these instead of each family's usual rates (parity stays the
            family's: FEIG 8E1, the others 8N1).
        timeout_s: wait for a first reply byte (default: the family's, 0.08–0.2 s).
        every_family: go on after a family answered (a bus normally has one protocol).
        bus_name: the bus name used in the config snippet.
        progress: told each (family, line setting) as it starts.

    Raises:
        ValueError: an unknown family.
    """
    unknown = [f for f in families if f not in PROBES]
    if unknown:
        raise ValueError(f"unknown family {', '.join(unknown)} (known: "
                         f"{', '.join(FAMILY_ORDER)})")
    started = time.monotonic()
    over_socket = url.startswith("socket://")
    latency = usb_latency_timer_ms(url)
    notes: list[str] = []
    if over_socket:
        notes.append("socket:// link: the baud rate cannot be set from here (the far end "
                     "paces at its own rate), so each family was tried at its first line "
                     "setting only and the line settings are not verified")
    if latency is not None and latency > 1:
        notes.append(f"USB-serial latency timer is {latency} ms: each reply may be held that "
                     f"long; set it to 1 ms (echo 1 > /sys/bus/usb-serial/devices/"
                     f"{url.rsplit('/', 1)[-1]}/latency_timer)")
    gap_floor = SOCKET_INTER_BYTE_GAP_S if over_socket else (
        (latency + 10) / 1000 if latency else 0.0)
    found: list[Found] = []
    tried: list[dict[str, object]] = []
    sent = 0
    error = ""
    port: _Port | None = None
    try:
        for name in families:
            port, error, sent = _probe_family(
                url, PROBES[name], port, port_factory, addresses=addresses, baudrates=baudrates,
                timeout_s=timeout_s, gap_floor=gap_floor, over_socket=over_socket,
                progress=progress, found=found, tried=tried, sent=sent)
            if error or (found and not every_family):
                break
    finally:
        if port is not None:
            port.close()
    return DetectReport(port=url, found=found, tried=tried, probes_sent=sent,
                        seconds=time.monotonic() - started, bus_name=bus_name, error=error,
                        usb_latency_timer_ms=latency, notes=notes)


def _probe_family(url: str, probe: _Probe, port: _Port | None, port_factory: Callable[..., Any],
                  *, addresses: Sequence[int], baudrates: Sequence[int] | None,
                  timeout_s: float | None, gap_floor: float, over_socket: bool,
                  progress: Progress, found: list[Found], tried: list[dict[str, object]],
                  sent: int) -> tuple[_Port | None, str, int]:
    """Try one family at its line settings (appending to ``found`` and ``tried``); returns
    the port (opened once, re-set per line), an error ("" = none) and the probe count."""
    name = probe.family
    lines = (tuple(Line(b, probe.lines[0].parity) for b in baudrates) if baudrates
             else probe.lines)
    if over_socket:
        lines = lines[:1]
    wanted = [a for a in addresses if a in probe.addresses]
    if not wanted:
        return port, "", sent
    frames: dict[int, bytes] = {}
    for a in wanted:
        frame = probe.request(a)
        _check_read_only(frame)
        frames[a] = frame
    for line in lines:
        if progress is not None:
            progress(f"{name} at {line}: {probe.command} to address(es) {_ranges(wanted)}")
        try:
            if port is None:
                port = _Port(url, line, port_factory)
            else:
                port.set_line(line)
        except (serial.SerialException, OSError, ValueError) as exc:
            return port, f"cannot open {url}: {exc}", sent
        devices: list[dict[str, object]] = []
        error = ""
        try:
            for a in wanted:
                result: list[dict[str, object]] = []

                def done(data: bytes, a: int = a, result: list[Any] = result) -> bool:
                    if not probe.early:
                        return False
                    parsed = probe.parse(a, data)
                    if parsed is not None:
                        result.append(parsed)
                    return parsed is not None

                data = port.exchange(frames[a], probe.timeout_s if timeout_s is None
                                     else timeout_s, max(probe.gap_s, gap_floor), done)
                sent += 1
                parsed = result[0] if result else probe.parse(a, data) if data else None
                if parsed is not None:
                    devices.append({"address": a, **parsed})
        except (serial.SerialException, OSError) as exc:
            error = f"port {url} failed: {exc}"
        tried.append({"family": name, "line": str(line), "addresses": _ranges(wanted),
                      "answered": [d["address"] for d in devices]})
        if error:
            return port, error, sent
        if devices:
            found.append(Found(family=name, kind=probe.kind, command=probe.command,
                               line=line, line_verified=not over_socket, devices=devices))
            break
    return port, "", sent
