"""RR3036-style HF reader modules behind the :class:`drivers.rfid.RfidReader` interface.

:class:`RR3036Wire` frames requests for ``drivers.transport.BusTransport`` (19200 Bd 8N1:
``BusTransport(url, baudrate=19200, wire=RR3036Wire())`` or :func:`rr3036_transport`);
:class:`RR3036Reader` is the reader.

One module reads one antenna (no public source describes a multiplexer for these modules): a
cabinet with N door antennas uses N modules — on one RS-485 bus with different ComAdr, or on
N ports — and the cabinet config maps each door antenna to its module. ``antenna`` arguments
must equal the module's configured ``antenna`` number.

Inventory (continuation design **[assumption]**, see ``firmware_protocol/rr3036.py``):

1. RF reset (close RF, open RF; both sourced): every tag leaves the quiet state — also undoing
   what an interrupted earlier inventory left behind;
2. inventory; status 0x0B/0x0A with UIDs = "not all collected": each reported tag is sent Stay
   Quiet and the inventory repeated, until status 0x00 (all collected) or 0x0E (no more tags).

Every step is safe to re-send (the transport repeats it identically after a lost reply).
Tags stay quiet until the next inventory; addressed reads and writes still reach them.

``read_tag`` reads one 4-byte block at a time (the only read the sources give), and stops as
soon as the ISO 28560 data decode (a typical library tag needs 2-3 blocks).
``set_eas`` raises ``NotSupported``: the module has no EAS command in the sources.
RSSI is not reported: ``TagSeen.rssi`` is 0.

Status → exceptions: 0x0E → ``TagNotFound`` (addressed); 0x0C / 0x0F on reads →
``TagDataUnreadable``, on writes → ``TagWriteFailed``; 0x02 → ``NotSupported``; anything
else → ``DeviceRejected(code=status)``.

Sources: 545ch4/RR3036 ``lib/RR3036/connection.rb`` (MIT) — facts only.
"""

from __future__ import annotations

from typing import Any

from firmware_protocol import errors as proto_errors
from firmware_protocol import rr3036
from firmware_protocol.errors import TagDataError
from firmware_protocol.iso28560 import TagData, decode_tag
from firmware_protocol.iso28560.errors import TruncatedTagData

from ..base import DeviceStatus
from ..errors import (
    DeviceRejected,
    DeviceTimeout,
    DriverError,
    FrameError,
    NotSupported,
    TagDataUnreadable,
    TagNotFound,
    TagWriteFailed,
)
from ..rfid import TagSeen, data_ended
from ..transport import BusTransport, Match, StreamDecoder

__all__ = ["RR3036_WIRE", "RR3036Reader", "RR3036Wire", "rr3036_transport"]

_BROADCAST = 0xFF


class RR3036Wire:
    """The RR3036 framing for ``BusTransport`` (replies match by ComAdr; one request is
    outstanding at a time, so a reply is the reply to it)."""

    family = "rr3036"

    def encode(self, address: int, seq: int, message: object) -> bytes:
        if getattr(message, "address", None) != address:
            raise proto_errors.LocalProtocolError("message address differs from the bus address")
        return rr3036.encode_request(message)

    def new_decoder(self) -> StreamDecoder:
        return rr3036.ReplyDecoder()

    def match(self, request: object, address: int, seq: int, event: object) -> Match:
        if not isinstance(event, rr3036.Reply):
            return "foreign"
        if address != _BROADCAST and event.address != address:
            return "foreign"
        return "reply"

    def reply_of(self, event: object) -> object:
        return event


RR3036_WIRE = RR3036Wire()


def rr3036_transport(url: str, *, baudrate: int = 19200, name: str = "", **kwargs: Any
                     ) -> BusTransport:
    """A ``BusTransport`` with the module's default line: 19200 Bd 8N1."""
    return BusTransport(url, baudrate=baudrate, name=name, wire=RR3036_WIRE, **kwargs)


def _status_name(status: int) -> str:
    try:
        return rr3036.Status(status).name
    except ValueError:
        return "UNKNOWN"


class RR3036Reader:
    """One RR3036-style module (ComAdr ``address``) reading cabinet antenna ``antenna``.

    Args:
        transport: the bus (see :func:`rr3036_transport`).
        inventory_timeout_s: end of an inventory request → start of the reply.
        quick_timeout_s: other commands.
        max_passes: inventory passes (27 tags each) before giving up.
        patience: transport calls one request may take while its answers arrive garbled.
    """

    def __init__(self, transport: BusTransport, *, address: int = 0, antenna: int = 1,
                 name: str = "", max_blocks: int = 28, inventory_timeout_s: float = 1.0,
                 quick_timeout_s: float = 0.15, max_passes: int = 12,
                 patience: int = 5) -> None:
        if not 0 <= address <= 255:
            raise ValueError("address 0..255")
        self.transport = transport
        self.address = address
        self.antenna = antenna
        self.name = name or f"rr3036 module {address} on {transport.name}"
        self.max_blocks = max_blocks
        self.inventory_timeout_s = inventory_timeout_s
        self.quick_timeout_s = quick_timeout_s
        self.max_passes = max_passes
        self.patience = patience
        self.passes = 0

    def _exchange(self, msg: object, timeout_s: float | None = None) -> object:
        """One request, with the transport's re-sends; every request of this driver is safe
        to repeat, so while the answers arrive garbled (``FrameError``) or not at all
        (``DeviceTimeout``) it is asked again, up to ``patience`` transport calls (a dead
        module costs ``patience × 3 × timeout`` before DeviceTimeout)."""
        for attempt in range(self.patience):
            try:
                reply = self.transport.request(self.address, msg,
                                               timeout_s=timeout_s or self.quick_timeout_s)
            except (FrameError, DeviceTimeout):
                if attempt == self.patience - 1:
                    raise
                continue
            try:
                return rr3036.decode_reply(reply, msg)
            except proto_errors.FrameError as exc:
                raise FrameError(f"{self.name}: {exc}") from exc
        raise AssertionError("unreachable")

    def _check(self, antenna: int) -> None:
        if antenna != self.antenna:
            raise DeviceRejected(f"{self.name}: reads antenna {self.antenna} only, "
                                 f"not {antenna} (one module per antenna)")

    def _ok(self, reply: object, what: str, *, write: bool = False) -> None:
        status = getattr(reply, "status", None)
        if status == rr3036.Status.OK:
            return
        raise self._error(reply, what, write=write)

    def _error(self, reply: object, what: str, *, write: bool = False) -> DriverError:
        status = int(getattr(reply, "status", -1))
        data = getattr(reply, "data", b"")
        text = f"{self.name}: {what}: status 0x{status:02X} {_status_name(status)}"
        if data:
            text += f" (error code 0x{data[0]:02X})"
        if status == rr3036.Status.NO_TAG:
            return TagNotFound(text)
        if status in (rr3036.Status.TAG_RESPONSE, rr3036.Status.ISO_ERROR):
            return TagWriteFailed(text) if write else TagDataUnreadable(text)
        if status == rr3036.Status.NOT_SUPPORTED:
            return NotSupported(text)
        return DeviceRejected(text, code=status)

    # ------------------------------------------------------------ RfidReader
    def rf_reset(self) -> None:
        """Close and reopen the RF field: every tag back to the ready state."""
        self._ok(self._exchange(rr3036.CloseRf(address=self.address)), "close RF")
        self._ok(self._exchange(rr3036.OpenRf(address=self.address)), "open RF")

    def inventory(self, antenna: int) -> tuple[TagSeen, ...]:
        """Every tag answering now, each once (see the module docstring)."""
        self._check(antenna)
        self.rf_reset()
        seen: dict[bytes, TagSeen] = {}
        for _ in range(self.max_passes):
            self.passes += 1
            reply = self._exchange(rr3036.Inventory(address=self.address),
                                   self.inventory_timeout_s)
            status = getattr(reply, "status", None)
            if status == rr3036.Status.NO_TAG:
                return tuple(seen.values())
            if not isinstance(reply, rr3036.InventoryReply):
                raise self._error(reply, "inventory")
            for dsfid, wire_uid in reply.tags:
                uid = bytes(reversed(wire_uid))
                seen.setdefault(uid, TagSeen(uid=uid, dsfid=dsfid, rssi=0))
            if status == rr3036.Status.OK:
                return tuple(seen.values())
            for _dsfid, wire_uid in reply.tags:  # 0x0A / 0x0B: quiet these, ask again
                self._ok(self._exchange(rr3036.StayQuiet(address=self.address, uid=wire_uid)),
                         "stay quiet")
        raise FrameError(f"{self.name}: inventory not complete after {self.max_passes} passes")

    def read_tag(self, antenna: int, uid: bytes, dsfid: int | None = None) -> TagData:
        """Read blocks 0, 1, … one at a time until the ISO 28560 data decode."""
        self._check(antenna)
        wire_uid = bytes(reversed(uid))
        memory = b""
        for block in range(self.max_blocks):
            reply = self._exchange(rr3036.ReadBlock(address=self.address, uid=wire_uid,
                                                    block=block))
            if not isinstance(reply, rr3036.ReadBlockReply):
                if (getattr(reply, "status", None) == rr3036.Status.ISO_ERROR
                        and getattr(reply, "data", b"")[:1] == b"\x10" and memory):
                    break  # past the end of the tag's memory
                raise self._error(reply, f"read of tag {uid.hex().upper()} block {block}")
            memory += reply.block
            try:
                data = decode_tag(memory, dsfid)
            except TruncatedTagData:
                continue
            except TagDataError as exc:
                raise TagDataUnreadable(f"tag {uid.hex().upper()}: {exc}") from exc
            if data_ended(memory, dsfid):
                return data
        try:
            return decode_tag(memory, dsfid)
        except TagDataError as exc:
            raise TagDataUnreadable(f"tag {uid.hex().upper()}: {exc}") from exc

    def write_afi(self, antenna: int, uid: bytes, afi: int) -> None:
        self._check(antenna)
        reply = self._exchange(rr3036.WriteAfi(address=self.address,
                                               uid=bytes(reversed(uid)), afi=afi))
        self._ok(reply, f"Write AFI of tag {uid.hex().upper()}", write=True)

    def set_eas(self, antenna: int, uid: bytes, enabled: bool) -> None:
        raise NotSupported(f"{self.name}: RR3036 modules have no EAS command")

    def identify(self) -> dict[str, int]:
        """Init device: version, reader type, protocols, inventory scan time (I/O)."""
        reply = self._exchange(rr3036.InitDevice(address=self.address))
        if not isinstance(reply, rr3036.InitReply):
            raise self._error(reply, "init device")
        return {"version": reply.version, "reader_type": reply.reader_type,
                "protocols": reply.protocols, "scan_time": reply.scan_time}

    def status(self) -> DeviceStatus:
        return self.transport.status()

    def diagnostics(self) -> dict[str, object]:
        return {"reader": self.name, "family": "rr3036", "address": self.address,
                "antenna": self.antenna, "inventory_passes": self.passes,
                **self.status().as_dict(),
                "counters": self.transport.device_counters(self.address).as_dict()}


