"""FEIG ISO-host-protocol HF readers behind the :class:`drivers.rfid.RfidReader` interface.

:class:`FeigWire` frames requests for ``drivers.transport.BusTransport`` (38400 Bd 8E1 by
default: ``BusTransport(url, baudrate=38400, parity="E", wire=FeigWire())``, or use
:func:`feig_transport`); :class:`FeigReader` is the reader: ``inventory``, ``read_tag``,
``write_afi``, ``set_eas`` (NXP custom command), ``status``, ``diagnostics``.

Inventory and the "more data" continuation. A FEIG response does not say which data sets it
carries, and a MORE request is identical every time, so a response lost on the line cannot be
asked for again (see ``simulator/families/feig.py`` for the assumed reader behaviour). The
driver therefore numbers the responses of one air round: the new-inventory response is part
0 (re-sending a new inventory is harmless: it is a new round), and each MORE is sent *once*
(no transport re-send):

* a readable response → part k+1;
* an unreadable one (bad CRC, truncated) → the reader did send part k+1: it is lost, the next
  MORE gets part k+2;
* silence → unknown whether the reader advanced: start a new round.

Parts are kept by number across rounds (the same tags in the field come in the same order;
if part 0 of a new round differs, the field changed and earlier parts are dropped). The
inventory is complete when part 0..last are all held, ``last`` being the part with STATUS
0x00. On a clean line that is one round; on a line that corrupts 1 % of bytes a few.

Status bytes → exceptions: 0x01 → ``TagNotFound`` (addressed) / empty inventory; 0x02,
0x83, 0x95 on reads → ``TagDataUnreadable``; 0x02, 0x03, 0x83, 0x95 on writes →
``TagWriteFailed``; 0x05 → ``NotSupported``; anything else → ``DeviceRejected(code=status)``.

UIDs: FEIG sends them most significant byte first (0xE0 first) **[assumption]**; RSSI byte
= −dBm **[assumption]**; without ANT (single-antenna readers) no RSSI is reported: 0.

Sources: see ``firmware_protocol/feig.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from firmware_protocol import errors as proto_errors
from firmware_protocol import feig
from firmware_protocol.iso28560 import TagData

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
from ..rfid import TagSeen, merge_pages, read_tag_data
from ..transport import BusTransport, Match, StreamDecoder

__all__ = ["FEIG_WIRE", "GET_SOFTWARE_VERSION", "FeigReader", "FeigWire", "ReaderCommand",
           "feig_transport", "parse_software_version", "status_name"]

#: [0x65] Get Software Version: ``05 COM-ADR 65 CRC16`` → STATUS, SW-REV(2), D-REV, HW-TYPE,
#: SW-TYPE, TR-TYPE(2) (ID ISC.MR/PR/PRH101 system manual §5.4 p.50; ID ISC.M02.M8-B p.23).
#: Read-only; used by diagnostics and ``lendbox diag detect``.
GET_SOFTWARE_VERSION = 0x65


def status_name(status: int) -> str:
    try:
        return feig.Status(status).name
    except ValueError:
        return "UNKNOWN"


@dataclass(frozen=True, slots=True)
class ReaderCommand:
    """A reader command outside the codec's ISO host commands, e.g. [0x65] Get Software
    Version: sent as ``LENGTH COM-ADR CONTROL DATA CRC16``; its response comes back as an
    undecoded ``feig.Response``."""

    address: int
    control: int
    data: bytes = b""


def parse_software_version(data: bytes) -> dict[str, object]:
    """The DATA of a [0x65] response with STATUS 0x00 → its fields (``firmware`` "MM.mm.dd":
    SW-REV high byte, low byte, D-REV). Raises ValueError when it is too short."""
    if len(data) < 7:
        raise ValueError(f"[0x65] response data has {len(data)} bytes, 7 expected")
    return {"firmware": f"{data[0]:02X}.{data[1]:02X}.{data[2]:02X}", "hw_type": data[3],
            "sw_type": data[4], "tr_type": int.from_bytes(data[5:7], "big")}


class FeigWire:
    """The FEIG framing for ``BusTransport`` (no sequence numbers: replies match by COM-ADR
    and CONTROL byte)."""

    family = "feig"

    def encode(self, address: int, seq: int, message: object) -> bytes:
        if getattr(message, "address", None) != address:
            raise proto_errors.LocalProtocolError("message address differs from the bus address")
        if isinstance(message, ReaderCommand):
            return feig.encode_frame(address, message.control, message.data)
        return feig.encode_request(message)

    def new_decoder(self) -> StreamDecoder:
        return feig.ResponseDecoder()

    def match(self, request: object, address: int, seq: int, event: object) -> Match:
        if not isinstance(event, feig.Response):
            return "foreign"
        if address != feig.ANY_ADDRESS and event.address != address:
            return "foreign"
        control = (request.control if isinstance(request, ReaderCommand)
                   else feig.request_control(request))
        return "reply" if event.control == control else "foreign"

    def reply_of(self, event: object) -> object:
        return event


FEIG_WIRE = FeigWire()


def feig_transport(url: str, *, baudrate: int = 38400, name: str = "", parity: str = "E",
                   **kwargs: Any) -> BusTransport:
    """A ``BusTransport`` with FEIG's default line: 38400 Bd, 8 data bits, even parity, 1 stop."""
    return BusTransport(url, baudrate=baudrate, parity=parity, name=name, wire=FEIG_WIRE,
                        **kwargs)


@dataclass(slots=True)
class _Round:
    parts: dict[int, tuple[feig.InventoryTag, ...]]
    last: int | None = None

    def complete(self) -> bool:
        return self.last is not None and all(i in self.parts for i in range(self.last + 1))


class FeigReader:
    """A FEIG HF reader on a bus (COM-ADR ``address``) implementing ``RfidReader``.

    Args:
        transport: the bus (see :func:`feig_transport`).
        address: COM-ADR 0..254, or 255 for "whichever reader is on the line".
        antennas: antenna outputs; > 1 sends ANT/ANT_SEL (multiplexed readers).
        first_read_blocks / max_blocks: as ``LendboxRfidReader`` (8 first, at most 28).
        inventory_timeout_s: end of a new-inventory request → start of the response (air time
            of a full door is ~0.3 s; TR-RESPONSE-TIME of a reader defaults to 3 s).
        quick_timeout_s: for MORE, reads and writes (no anticollision).
        max_rounds: air rounds one ``inventory`` may take before giving up.
        patience: transport calls (each with its own re-sends) an idempotent read or write
            may take while the answers arrive garbled.
    """

    def __init__(self, transport: BusTransport, *, address: int = 0, name: str = "",
                 antennas: int = 1, first_read_blocks: int = 8, max_blocks: int = 28,
                 inventory_timeout_s: float = 1.0, quick_timeout_s: float = 0.15,
                 max_rounds: int = 30, patience: int = 5) -> None:
        if not 0 <= address <= 255 or not 1 <= antennas <= 8:
            raise ValueError("address 0..255, antennas 1..8")
        self.transport = transport
        self.address = address
        self.name = name or f"feig reader {address} on {transport.name}"
        self.antennas = antennas
        self.first_read_blocks = first_read_blocks
        self.max_blocks = max_blocks
        self.inventory_timeout_s = inventory_timeout_s
        self.quick_timeout_s = quick_timeout_s
        self.max_rounds = max_rounds
        self.patience = patience
        self.selected_antenna: int | None = None
        self.rounds = 0
        self.last_warning = ""

    # ------------------------------------------------------------ plumbing
    def _exchange(self, msg: object, timeout_s: float, retries: int | None = None) -> object:
        kwargs = {} if retries is None else {"retries": retries}
        response = self.transport.request(self.address, msg, timeout_s=timeout_s, **kwargs)
        try:
            return feig.decode_response(response, msg)
        except proto_errors.FrameError as exc:
            raise FrameError(f"{self.name}: {exc}") from exc

    def _patient(self, msg: object, timeout_s: float) -> object:
        """An idempotent request (read, write): while the answers arrive garbled
        (``FrameError``) or not at all (``DeviceTimeout``), ask again, up to ``patience``
        transport calls (each with the transport's own re-sends). A dead reader therefore
        costs ``patience × 3 × quick_timeout_s`` (≈ 2 s) per call before DeviceTimeout."""
        for attempt in range(self.patience):
            try:
                return self._exchange(msg, timeout_s)
            except (FrameError, DeviceTimeout):
                if attempt == self.patience - 1:
                    raise
        raise AssertionError("unreachable")

    def _ant_sel(self, antenna: int) -> int | None:
        if not 1 <= antenna <= self.antennas:
            raise DeviceRejected(f"{self.name}: no antenna {antenna} (1..{self.antennas})")
        return 1 << (antenna - 1) if self.antennas > 1 else None

    # ------------------------------------------------------------ RfidReader
    def inventory(self, antenna: int) -> tuple[TagSeen, ...]:
        """Every tag answering on ``antenna``, each once (see the module docstring).

        Raises:
            DeviceTimeout: the reader stayed silent (every attempt of a new round).
            FrameError: the inventory could not be completed in ``max_rounds`` rounds.
        """
        ant_sel = self._ant_sel(antenna)
        state = _Round(parts={})
        unreadable_rounds = silent_rounds = 0
        for _ in range(self.max_rounds):
            self.rounds += 1
            try:
                first = self._exchange(feig.Inventory(address=self.address, ant_sel=ant_sel),
                                       self.inventory_timeout_s)
            except FrameError:
                # the reader answers, the line garbles it: a new round is harmless
                unreadable_rounds += 1
                if unreadable_rounds > self.max_rounds // 2:
                    raise
                continue
            except DeviceTimeout:
                silent_rounds += 1  # three silent attempts in a row: once may be bad luck
                if silent_rounds > 1:
                    raise
                continue
            self.selected_antenna = antenna
            if isinstance(first, feig.StatusReply):
                if first.status == feig.Status.NO_TRANSPONDER:
                    return ()
                raise self._error(first, "inventory")
            assert isinstance(first, feig.InventoryReply)
            if state.parts.get(0, first.tags) != first.tags:
                state = _Round(parts={})  # the field changed between rounds
            state.parts[0] = first.tags
            self._more(first, ant_sel, state)
            if state.complete():
                return self._merge(state, antenna)
        raise FrameError(f"{self.name}: antenna {antenna}: inventory incomplete after "
                         f"{self.max_rounds} rounds")

    def _more(self, first: feig.InventoryReply, ant_sel: int | None, state: _Round) -> None:
        """Fetch the held data sets of this round with MORE, each request sent once.

        ``cands`` = the numbers the part last sent by the reader may have: a lost request
        leaves the reader where it was, a lost response moves it on; a readable response is
        placed by content (a part already held from an earlier round) or, when only one
        number is possible, by number. Too much doubt ends the round.
        """
        self._note(first.status)
        if first.status != feig.Status.MORE_DATA:
            state.last = 0
            return
        cands = {0}
        while len(cands) <= 4:
            try:
                reply = self._exchange(feig.Inventory(address=self.address, more=True,
                                                      ant_sel=ant_sel),
                                       self.quick_timeout_s, retries=0)
            except DeviceTimeout:
                cands = {c for x in cands for c in (x, x + 1)}
                continue
            except FrameError:
                cands = {x + 1 for x in cands}
                continue
            if isinstance(reply, feig.StatusReply):
                if reply.status != feig.Status.NO_TRANSPONDER:
                    raise self._error(reply, "inventory (more)")
                if len(cands) == 1:  # nothing held: the part sent last was the final one
                    state.last = next(iter(cands))
                return
            assert isinstance(reply, feig.InventoryReply)
            nxt = {x + 1 for x in cands}
            known = [p for p in nxt if state.parts.get(p) == reply.tags]
            if len(known) == 1:
                index = known[0]
            elif len(nxt) == 1:
                index = next(iter(nxt))
                state.parts[index] = reply.tags
            else:
                return
            cands = {index}
            self._note(reply.status)
            if reply.status != feig.Status.MORE_DATA:
                state.last = index
                return

    def _note(self, status: int) -> None:
        if status not in (feig.Status.OK, feig.Status.MORE_DATA):
            self.last_warning = f"STATUS 0x{status:02X} {status_name(status)}"

    def _merge(self, state: _Round, antenna: int) -> tuple[TagSeen, ...]:
        pages = []
        for i in range(state.last + 1 if state.last is not None else 0):
            page = []
            for tag in state.parts[i]:
                rssi = 0
                reads = [a.rssi for a in tag.antennas if a.number == antenna] or \
                    [a.rssi for a in tag.antennas]
                if reads:
                    rssi = -min(reads)
                page.append(TagSeen(uid=tag.uid, dsfid=tag.dsfid, rssi=rssi))
            pages.append(page)
        return merge_pages(pages)

    def _select(self, antenna: int) -> None:
        """Addressed commands go out on the antenna of the last inventory."""
        if self.antennas > 1 and self.selected_antenna != antenna:
            self.inventory(antenna)

    def read_tag(self, antenna: int, uid: bytes, dsfid: int | None = None) -> TagData:
        """Read and decode the tag's ISO 28560 data: ``first_read_blocks`` blocks first, the
        rest of the memory only if the data set runs past them."""
        self._ant_sel(antenna)
        self._select(antenna)
        return read_tag_data(lambda first, count: self._read(uid, first, count), uid, dsfid,
                             first_blocks=self.first_read_blocks, max_blocks=self.max_blocks)

    def _read(self, uid: bytes, first: int, count: int) -> bytes:
        reply = self._patient(feig.ReadMultipleBlocks(address=self.address, uid=uid,
                                                      first_block=first, count=count),
                              self.quick_timeout_s)
        if isinstance(reply, feig.ReadBlocksReply):
            return reply.data
        assert isinstance(reply, feig.StatusReply)
        raise self._error(reply, f"read of tag {uid.hex().upper()}")

    def write_afi(self, antenna: int, uid: bytes, afi: int) -> None:
        """Set the tag's AFI (0x07 on shelf, 0xC2 checked out)."""
        self._ant_sel(antenna)
        self._select(antenna)
        self._write(feig.WriteAfi(address=self.address, uid=uid, afi=afi), uid, "Write AFI")

    def set_eas(self, antenna: int, uid: bytes, enabled: bool) -> None:
        """NXP ICODE Set/Reset EAS through [0xB1] (other tag makes answer 0x05/0x95)."""
        self._ant_sel(antenna)
        self._select(antenna)
        self._write(feig.SetEas(address=self.address, uid=uid, enabled=enabled), uid,
                    "Set EAS" if enabled else "Reset EAS")

    def _write(self, msg: object, uid: bytes, what: str) -> None:
        reply = self._patient(msg, self.quick_timeout_s)
        assert isinstance(reply, feig.StatusReply)
        if reply.status != feig.Status.OK:
            raise self._error(reply, f"{what} of tag {uid.hex().upper()}", write=True)

    def _error(self, reply: feig.StatusReply, what: str, *, write: bool = False) -> DriverError:
        status = reply.status
        text = f"{self.name}: {what}: STATUS 0x{status:02X} {status_name(status)}"
        if reply.iso_error is not None:
            text += f" (ISO error 0x{reply.iso_error:02X})"
        if status == feig.Status.NO_TRANSPONDER:
            return TagNotFound(text)
        if status in (feig.Status.DATA_FALSE, feig.Status.RF_COMMUNICATION_ERROR,
                      feig.Status.ISO_ERROR, feig.Status.WRITE_ERROR):
            return TagWriteFailed(text) if write else TagDataUnreadable(text)
        if status == feig.Status.WRONG_TRANSPONDER_TYPE:
            return NotSupported(text)
        return DeviceRejected(text, code=status)

    def identify(self) -> dict[str, object]:
        """[0x65] Get Software Version (read-only): firmware "SW-REV.D-REV", HW-TYPE,
        SW-TYPE (the reader model), TR-TYPE (transponders supported).

        Raises:
            NotSupported: the reader answered but does not know [0x65] (STATUS 0x80).
            DeviceTimeout, FrameError, DeviceUnavailable: as every request.
        """
        msg = ReaderCommand(address=self.address, control=GET_SOFTWARE_VERSION)
        for attempt in range(self.patience):
            try:
                response = self.transport.request(self.address, msg,
                                                  timeout_s=self.quick_timeout_s)
                break
            except (FrameError, DeviceTimeout):
                if attempt == self.patience - 1:
                    raise
        assert isinstance(response, feig.Response)
        if response.status == feig.Status.OK:
            try:
                return parse_software_version(response.data)
            except ValueError as exc:
                raise FrameError(f"{self.name}: {exc}") from exc
        text = (f"{self.name}: [0x65] Get Software Version: STATUS 0x{response.status:02X} "
                f"{status_name(response.status)}")
        if response.status == feig.Status.UNKNOWN_COMMAND:
            raise NotSupported(text)
        raise DeviceRejected(text, code=response.status)

    def status(self) -> DeviceStatus:
        return self.transport.status()

    def diagnostics(self) -> dict[str, object]:
        return {"reader": self.name, "family": "feig", "address": self.address,
                "antennas": self.antennas, "inventory_rounds": self.rounds,
                "last_warning": self.last_warning, **self.status().as_dict(),
                "counters": self.transport.device_counters(self.address).as_dict()}
