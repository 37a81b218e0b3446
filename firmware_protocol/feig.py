"""FEIG "ISO host protocol" (OBID i-scan / classic-pro HF readers): frames, the ISO 15693
commands lendbox uses, and sans-IO request/response decoders.

Frames (both directions), CRC-16/MCRF4XX over every byte before the CRC, sent LSB first:

* standard: ``LENGTH(1, 6..255, counts every byte incl. itself and the CRC) | COM-ADR |
  CONTROL | [STATUS, replies only] | DATA | CRC16``;
* advanced (a frame longer than 255 bytes, or whenever the sender chooses it):
  ``STX 0x02 | ALENGTH(2, MSB first, 8..65535) | COM-ADR | CONTROL | [STATUS] | DATA | CRC16``.

A frame starting with 0x02 is always advanced: a standard LENGTH is at least 6.
COM-ADR 0..254; 255 reaches any reader (a reader answers from its own address).

Commands (``CONTROL [0xB0]``, ISO 15693 host commands; the first data byte is the ISO command):

* ``0x01`` Inventory: ``0x01 MODE [ANT_SEL]``; MODE bit 7 MORE (fetch the data sets the reader
  still holds after STATUS 0x94), bit 4 ANT (ANT_SEL follows: one bit per antenna output).
  Response ``DATA-SETS`` then per tag ``TR-TYPE DSFID UID(8)``; with ANT, per tag
  ``FLAGS TR-TYPE DSFID UID_LEN UID ANT_CNT {ANT_NR ANT_STATUS RSSI reserved(4)}×ANT_CNT``.
* ``0x23`` Read Multiple Blocks: ``0x23 MODE UID DB-ADR DB-N`` (MODE 0x01 addressed) →
  ``DB-N DB-SIZE {SEC-STATUS DB}×DB-N``.
* ``0x27`` Write AFI: ``0x27 MODE UID AFI`` → no data.
* ``CONTROL [0xB1]`` NXP custom: ``MFR(0x04) 0xA2/0xA3 MODE UID`` = Set / Reset EAS → no data.

Response data is present only for STATUS 0x00, 0x83, 0x84, 0x93, 0x94, 0x95 (0x95 carries one
ISO-ERROR byte). A FEIG response does not repeat the ISO sub-command, so the response decoder
yields a generic :class:`Response`; :func:`decode_response` turns it into the typed reply of the
request it answers.

Sources (facts only, no code copied):

* FEIG ID ISC.LRU3000 manual p.20-21 (frame layouts, advanced frame, CRC C example, 12 ms
  character gap) https://manualshive.com/en/manual/feig-electronic/id-isc-lru3000/3881201?page=20 ;
  ID ISC.MR200 p.20 (advanced frame used automatically > 255 bytes).
* ID ISC.M02.M8-B p.17 CFG1: 38400 Bd 8E1 default, COM-ADR 0..254, 255 = any.
* ID ISC.MR/PR/PRH101 system manual p.58-60 ([0xB0], [0x01] Inventory, MORE, STATUS 0x94,
  TR-TYPE), p.91 ([0xB1] NXP [0xA4] Lock EAS: the EAS commands' request starts at byte 5 after
  a one-byte field at byte 4, taken here as the NXP manufacturer code 0x04 **[derived]**),
  p.121 Annex D status bytes 0x00-0x05 — https://www.easymanua.ls/feig-electronic/obid-i-scan-id-isc-pr101/manual?p=58
* ID ISC.MR200 p.93 / LR200 p.90 / CPR30 p.66: [0x23] Read Multiple Blocks layout, ≤ 128 bytes.
* ID ISC.LR200 p.85 and Siemens RF290R (FEIG-built) §8.1-8.2 p.61-63: response data only for
  STATUS 0x00/0x83/0x84/0x93/0x94/0x95; Inventory with ANT/ANT_SEL, FLAGS, UID_LEN, ANT_NR,
  ANT_STATUS (0x00 OK / 0x83 RF communication error), RSSI — https://manualshive.com/en/manual/siemens/simatic-rf290r/1266023?page=62
  ; FEIG ID ISC.MU02.02 p.76 (same inventory layout: MODE bit 4 ANT, bit 7 MORE; ANT_CNT and
  the 7-byte per-antenna record).
* ``0x27`` Write AFI is the ISO 15693-3 command code; FEIG's [0xB0] sub-commands are the ISO
  codes (0x01, 0x23 above), so 0x27 is used the same way **[derived]**.
* Worked example ``07 FF B0 01 00 1C 56`` (inventory, any reader) from a public Arduino bridge
  sketch (vectors/feig/*.json).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from .codec import NEED_DATA
from .crc import crc16_mcrf4xx
from .stream import ByteStream
from .errors import (
    BadCrc,
    BadLength,
    BadPayload,
    FrameError,
    LocalProtocolError,
    UnknownCommand,
)

__all__ = [
    "ANY_ADDRESS",
    "CONTROL_ISO",
    "CONTROL_NXP",
    "EAS_RESET",
    "EAS_SET",
    "FLAG_ANT",
    "ISO_INVENTORY",
    "ISO_READ_MULTIPLE",
    "ISO_WRITE_AFI",
    "MAX_READ_BYTES",
    "MODE_ADDRESSED",
    "MODE_ANT",
    "MODE_MORE",
    "NXP_MFR",
    "STX",
    "TR_TYPE_ISO15693",
    "UID_SIZE",
    "AntennaRead",
    "Inventory",
    "InventoryReply",
    "InventoryTag",
    "ReadBlocksReply",
    "ReadMultipleBlocks",
    "RequestDecoder",
    "Response",
    "ResponseDecoder",
    "SetEas",
    "Status",
    "StatusReply",
    "WriteAfi",
    "decode_request",
    "decode_response",
    "encode_frame",
    "encode_reply",
    "encode_request",
    "parse_response",
    "request_control",
]

STX = 0x02
ANY_ADDRESS = 0xFF
CONTROL_ISO = 0xB0
CONTROL_NXP = 0xB1
ISO_INVENTORY = 0x01
ISO_READ_MULTIPLE = 0x23
ISO_WRITE_AFI = 0x27
NXP_MFR = 0x04
EAS_SET = 0xA2
EAS_RESET = 0xA3
MODE_MORE = 0x80
MODE_ANT = 0x10
MODE_ADDRESSED = 0x01
FLAG_ANT = 0x10
#: FEIG Annex A transponder type code for ISO 15693 (not retrieved; any value is accepted).
TR_TYPE_ISO15693 = 0x03
UID_SIZE = 8
#: Most bytes one Read Multiple Blocks returns (LR200 p.90, CPR30 p.66).
MAX_READ_BYTES = 128
_MAX_STANDARD = 255
_MAX_ADVANCED = 0xFFFF
_ANT_RECORD = 7  # ANT_NR ANT_STATUS RSSI reserved×4


class Status(enum.IntEnum):
    """Reader STATUS bytes (Annex "Index of Status Bytes"; see the module docstring)."""

    OK = 0x00
    NO_TRANSPONDER = 0x01
    DATA_FALSE = 0x02  # CRC error on the air
    WRITE_ERROR = 0x03
    ADDRESS_ERROR = 0x04
    WRONG_TRANSPONDER_TYPE = 0x05
    UNKNOWN_COMMAND = 0x80  # [unverified: Annex page 0x80.. not retrieved]
    LENGTH_ERROR = 0x81  # [unverified]
    COMMAND_NOT_AVAILABLE = 0x82  # [unverified]
    RF_COMMUNICATION_ERROR = 0x83
    RF_WARNING = 0x84
    DATA_BUFFER_OVERFLOW = 0x93
    MORE_DATA = 0x94
    ISO_ERROR = 0x95


#: Statuses whose responses carry data (LR200 p.85, RF290R p.61).
DATA_STATUSES = frozenset({0x00, 0x83, 0x84, 0x93, 0x94, 0x95})
_INVENTORY_DATA_STATUSES = frozenset({0x00, 0x83, 0x84, 0x93, 0x94})


def _check_address(address: int) -> None:
    if not isinstance(address, int) or not 0 <= address <= 0xFF:
        raise LocalProtocolError(f"COM-ADR must be 0..255, got {address!r}")


def _check_uid(uid: bytes) -> None:
    if not isinstance(uid, bytes) or len(uid) != UID_SIZE:
        raise LocalProtocolError("UID must be 8 bytes")


def _byte(name: str, value: int) -> None:
    if not isinstance(value, int) or not 0 <= value <= 0xFF:
        raise LocalProtocolError(f"{name} must be 0..255, got {value!r}")


# ------------------------------------------------------------------ requests


@dataclass(frozen=True, slots=True, kw_only=True)
class Inventory:
    """[0xB0][0x01]: a new inventory (``more=False``) or the next data sets of the last one.
    ``ant_sel`` is the ANT_SEL bit field (bit 0 = antenna 1), or None to send no ANT_SEL."""

    address: int = ANY_ADDRESS
    more: bool = False
    ant_sel: int | None = None

    def __post_init__(self) -> None:
        _check_address(self.address)
        if self.ant_sel is not None:
            _byte("ANT_SEL", self.ant_sel)


@dataclass(frozen=True, slots=True, kw_only=True)
class ReadMultipleBlocks:
    """[0xB0][0x23] addressed: ``count`` blocks from ``first_block`` of the tag ``uid``
    (UID bytes as on the wire)."""

    address: int = ANY_ADDRESS
    uid: bytes
    first_block: int
    count: int

    def __post_init__(self) -> None:
        _check_address(self.address)
        _check_uid(self.uid)
        _byte("DB-ADR", self.first_block)
        if not isinstance(self.count, int) or not 1 <= self.count <= 0xFF:
            raise LocalProtocolError(f"DB-N must be 1..255, got {self.count!r}")


@dataclass(frozen=True, slots=True, kw_only=True)
class WriteAfi:
    """[0xB0][0x27] addressed: set the tag's AFI."""

    address: int = ANY_ADDRESS
    uid: bytes
    afi: int

    def __post_init__(self) -> None:
        _check_address(self.address)
        _check_uid(self.uid)
        _byte("AFI", self.afi)


@dataclass(frozen=True, slots=True, kw_only=True)
class SetEas:
    """[0xB1] NXP custom Set EAS (``enabled``) / Reset EAS, addressed."""

    address: int = ANY_ADDRESS
    uid: bytes
    enabled: bool

    def __post_init__(self) -> None:
        _check_address(self.address)
        _check_uid(self.uid)


FeigRequest = Inventory | ReadMultipleBlocks | WriteAfi | SetEas


def request_control(msg: object) -> int:
    """The CONTROL byte a request is sent with."""
    return CONTROL_NXP if isinstance(msg, SetEas) else CONTROL_ISO


def _request_data(msg: object) -> bytes:
    if isinstance(msg, Inventory):
        mode = (MODE_MORE if msg.more else 0) | (MODE_ANT if msg.ant_sel is not None else 0)
        out = bytes((ISO_INVENTORY, mode))
        return out + bytes((msg.ant_sel,)) if msg.ant_sel is not None else out
    if isinstance(msg, ReadMultipleBlocks):
        return (bytes((ISO_READ_MULTIPLE, MODE_ADDRESSED)) + msg.uid
                + bytes((msg.first_block, msg.count)))
    if isinstance(msg, WriteAfi):
        return bytes((ISO_WRITE_AFI, MODE_ADDRESSED)) + msg.uid + bytes((msg.afi,))
    if isinstance(msg, SetEas):
        return bytes((NXP_MFR, EAS_SET if msg.enabled else EAS_RESET, MODE_ADDRESSED)) + msg.uid
    raise LocalProtocolError(f"{type(msg).__name__} is not a FEIG request")


def encode_frame(address: int, control: int, body: bytes, *, advanced: bool = False) -> bytes:
    """One frame: ``body`` is everything after CONTROL (STATUS and DATA for responses).
    Standard frame when it fits 255 bytes and ``advanced`` is not asked for."""
    _check_address(address)
    _byte("CONTROL", control)
    size = 1 + 1 + 1 + len(body) + 2
    if not advanced and size <= _MAX_STANDARD:
        head = bytes((size, address, control))
    else:
        size += 2
        if size > _MAX_ADVANCED:
            raise LocalProtocolError(f"frame of {size} bytes exceeds 65535")
        head = bytes((STX, size >> 8, size & 0xFF, address, control))
    frame = head + body
    crc = crc16_mcrf4xx(frame)
    return frame + bytes((crc & 0xFF, crc >> 8))


def encode_request(msg: object, *, advanced: bool = False) -> bytes:
    """The bytes of a host request (raises LocalProtocolError for a non-request)."""
    data = _request_data(msg)
    return encode_frame(msg.address, request_control(msg), data,  # type: ignore[union-attr]
                        advanced=advanced)


# ------------------------------------------------------------------ responses


@dataclass(frozen=True, slots=True, kw_only=True)
class Response:
    """One reader response frame, untyped: what the response decoder yields."""

    address: int
    control: int
    status: int
    data: bytes = b""
    advanced: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class AntennaRead:
    """One antenna that read a tag (inventory with ANT): number, ANT_STATUS, RSSI byte."""

    number: int
    status: int = 0
    rssi: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class InventoryTag:
    """One data set: UID as on the wire; ``antennas`` empty for a request without ANT."""

    uid: bytes
    dsfid: int = 0
    tr_type: int = TR_TYPE_ISO15693
    antennas: tuple[AntennaRead, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class InventoryReply:
    """Response to [0x01]; STATUS 0x94 = the reader holds more data sets (ask with MORE)."""

    address: int
    status: int = Status.OK
    tags: tuple[InventoryTag, ...] = ()
    with_antennas: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class ReadBlocksReply:
    """Response to [0x23]: the blocks and their security status bytes."""

    address: int
    status: int = Status.OK
    block_size: int = 4
    blocks: tuple[bytes, ...] = ()
    security: tuple[int, ...] = ()

    @property
    def data(self) -> bytes:
        return b"".join(self.blocks)


@dataclass(frozen=True, slots=True, kw_only=True)
class StatusReply:
    """Any response without a typed payload: writes, errors; ``iso_error`` for STATUS 0x95."""

    address: int
    control: int = CONTROL_ISO
    status: int = Status.OK
    iso_error: int | None = None


FeigReply = InventoryReply | ReadBlocksReply | StatusReply


def _inventory_data(reply: InventoryReply) -> bytes:
    if len(reply.tags) > 0xFF:
        raise LocalProtocolError("at most 255 data sets per response")
    out = bytearray((len(reply.tags),))
    for tag in reply.tags:
        _byte("DSFID", tag.dsfid)
        _byte("TR-TYPE", tag.tr_type)
        if reply.with_antennas:
            if not 1 <= len(tag.uid) <= 0xFF or len(tag.antennas) > 0xFF:
                raise LocalProtocolError("bad UID or antenna count")
            out += bytes((FLAG_ANT, tag.tr_type, tag.dsfid, len(tag.uid))) + tag.uid
            out.append(len(tag.antennas))
            for ant in tag.antennas:
                for name, v in (("ANT_NR", ant.number), ("ANT_STATUS", ant.status),
                                ("RSSI", ant.rssi)):
                    _byte(name, v)
                out += bytes((ant.number, ant.status, ant.rssi, 0, 0, 0, 0))
        else:
            _check_uid(tag.uid)
            if tag.antennas:
                raise LocalProtocolError("antenna data needs with_antennas")
            out += bytes((tag.tr_type, tag.dsfid)) + tag.uid
    return bytes(out)


def _reply_body(reply: object) -> tuple[int, int, bytes]:
    """(address, control, STATUS+DATA) of a typed reply."""
    if isinstance(reply, InventoryReply):
        _byte("STATUS", reply.status)
        if reply.status not in _INVENTORY_DATA_STATUSES:
            raise LocalProtocolError("an inventory reply without data sets is a StatusReply")
        data = _inventory_data(reply)
        return reply.address, CONTROL_ISO, bytes((reply.status,)) + data
    if isinstance(reply, ReadBlocksReply):
        _byte("STATUS", reply.status)
        if len(reply.blocks) != len(reply.security) or not 1 <= len(reply.blocks) <= 0xFF:
            raise LocalProtocolError("blocks and security must match, 1..255 blocks")
        _byte("DB-SIZE", reply.block_size)
        out = bytearray((reply.status, len(reply.blocks), reply.block_size))
        for sec, block in zip(reply.security, reply.blocks, strict=True):
            _byte("SEC-STATUS", sec)
            if len(block) != reply.block_size:
                raise LocalProtocolError("every block must have block_size bytes")
            out.append(sec)
            out += block
        return reply.address, CONTROL_ISO, bytes(out)
    if isinstance(reply, StatusReply):
        _byte("STATUS", reply.status)
        body = bytes((reply.status,))
        if reply.iso_error is not None:
            if reply.status != Status.ISO_ERROR:
                raise LocalProtocolError("iso_error only with STATUS 0x95")
            _byte("ISO-ERROR", reply.iso_error)
            body += bytes((reply.iso_error,))
        return reply.address, reply.control, body
    if isinstance(reply, Response):
        _byte("STATUS", reply.status)
        return reply.address, reply.control, bytes((reply.status,)) + reply.data
    raise LocalProtocolError(f"{type(reply).__name__} is not a FEIG reply")


def encode_reply(reply: object, *, advanced: bool = False) -> bytes:
    """The bytes of a reader response (advanced frame automatically above 255 bytes)."""
    address, control, body = _reply_body(reply)
    if address == ANY_ADDRESS:
        raise LocalProtocolError("a reader answers from its own COM-ADR, never 255")
    return encode_frame(address, control, body, advanced=advanced or
                        isinstance(reply, Response) and reply.advanced)


def _bad(msg: str, response: Response, raw: bytes = b"") -> BadPayload:
    return BadPayload(msg, raw, command=response.control, address=response.address)


def decode_response(response: Response, request: object) -> FeigReply:
    """The typed reply ``response`` is to ``request``.

    Raises:
        BadPayload: the data do not fit the request's response layout.
    """
    status, data = response.status, response.data
    if isinstance(request, Inventory) and status in _INVENTORY_DATA_STATUSES:
        return _parse_inventory(response, request.ant_sel is not None)
    if isinstance(request, ReadMultipleBlocks) and status in (Status.OK, 0x83, 0x84):
        return _parse_blocks(response)
    if status == Status.ISO_ERROR:
        if len(data) != 1:
            raise _bad("STATUS 0x95 needs one ISO-ERROR byte", response)
        return StatusReply(address=response.address, control=response.control, status=status,
                           iso_error=data[0])
    if data:
        raise _bad(f"STATUS 0x{status:02X} carries unexpected data", response)
    return StatusReply(address=response.address, control=response.control, status=status)


def _parse_inventory(response: Response, with_antennas: bool) -> InventoryReply:
    data = response.data
    if not data:
        raise _bad("inventory response without DATA-SETS", response)
    count, pos, tags = data[0], 1, []
    try:
        for _ in range(count):
            if with_antennas:
                flags, tr_type, dsfid, uid_len = data[pos : pos + 4]
                pos += 4
                uid = data[pos : pos + uid_len]
                pos += uid_len
                if len(uid) != uid_len or uid_len == 0:
                    raise IndexError
                ants: list[AntennaRead] = []
                if flags & FLAG_ANT:
                    n = data[pos]
                    pos += 1
                    for _ in range(n):
                        rec = data[pos : pos + _ANT_RECORD]
                        if len(rec) != _ANT_RECORD:
                            raise IndexError
                        ants.append(AntennaRead(number=rec[0], status=rec[1], rssi=rec[2]))
                        pos += _ANT_RECORD
                tags.append(InventoryTag(uid=bytes(uid), dsfid=dsfid, tr_type=tr_type,
                                         antennas=tuple(ants)))
            else:
                rec = data[pos : pos + 2 + UID_SIZE]
                if len(rec) != 2 + UID_SIZE:
                    raise IndexError
                tags.append(InventoryTag(uid=bytes(rec[2:]), dsfid=rec[1], tr_type=rec[0]))
                pos += 2 + UID_SIZE
    except (IndexError, ValueError):
        raise _bad("inventory data sets run past the frame", response) from None
    if pos != len(data):
        raise _bad(f"{len(data) - pos} bytes after the data sets", response)
    return InventoryReply(address=response.address, status=response.status, tags=tuple(tags),
                          with_antennas=with_antennas)


def _parse_blocks(response: Response) -> ReadBlocksReply:
    data = response.data
    if len(data) < 2:
        raise _bad("read response without DB-N and DB-SIZE", response)
    count, size = data[0], data[1]
    if count == 0 or size == 0 or len(data) != 2 + count * (size + 1):
        raise _bad("read response length does not match DB-N × (DB-SIZE + 1)", response)
    blocks, sec = [], []
    for i in range(count):
        at = 2 + i * (size + 1)
        sec.append(data[at])
        blocks.append(bytes(data[at + 1 : at + 1 + size]))
    return ReadBlocksReply(address=response.address, status=response.status, block_size=size,
                           blocks=tuple(blocks), security=tuple(sec))


# ------------------------------------------------------------------ decoding


def decode_request(address: int, control: int, data: bytes, raw: bytes = b"") -> FeigRequest:
    """A typed request from a frame's fields (raises UnknownCommand / BadPayload)."""
    def bad(msg: str) -> BadPayload:
        return BadPayload(msg, raw, command=control, address=address)

    if control == CONTROL_ISO:
        if not data:
            raise bad("[0xB0] without an ISO command")
        cmd = data[0]
        if cmd == ISO_INVENTORY:
            if len(data) < 2:
                raise bad("inventory without MODE")
            mode = data[1]
            if mode & ~(MODE_MORE | MODE_ANT):
                raise bad(f"inventory MODE 0x{mode:02X} has unsupported bits")
            if mode & MODE_ANT:
                if len(data) != 3:
                    raise bad("inventory with ANT needs exactly one ANT_SEL byte")
                return Inventory(address=address, more=bool(mode & MODE_MORE), ant_sel=data[2])
            if len(data) != 2:
                raise bad("inventory without ANT takes no ANT_SEL")
            return Inventory(address=address, more=bool(mode & MODE_MORE))
        if cmd == ISO_READ_MULTIPLE:
            if len(data) != 12 or data[1] != MODE_ADDRESSED or data[11] == 0:
                raise bad("only addressed Read Multiple Blocks (MODE 0x01, 12 bytes, DB-N ≥ 1)")
            return ReadMultipleBlocks(address=address, uid=bytes(data[2:10]),
                                      first_block=data[10], count=data[11])
        if cmd == ISO_WRITE_AFI:
            if len(data) != 11 or data[1] != MODE_ADDRESSED:
                raise bad("only addressed Write AFI (MODE 0x01, 11 bytes)")
            return WriteAfi(address=address, uid=bytes(data[2:10]), afi=data[10])
        raise UnknownCommand(f"ISO command 0x{cmd:02X} not supported", raw, command=control,
                             address=address)
    if control == CONTROL_NXP:
        if len(data) >= 2 and data[0] == NXP_MFR and data[1] in (EAS_SET, EAS_RESET):
            if len(data) != 11 or data[2] != MODE_ADDRESSED:
                raise bad("only addressed Set/Reset EAS (MODE 0x01, 11 bytes)")
            return SetEas(address=address, uid=bytes(data[3:11]), enabled=data[1] == EAS_SET)
        raise UnknownCommand("custom command not supported", raw, command=control,
                             address=address)
    raise UnknownCommand(f"CONTROL 0x{control:02X} not supported", raw, command=control,
                         address=address)


def parse_response(frame: bytes) -> Response:
    """One whole response frame (CRC already good) → Response."""
    advanced = frame[0] == STX
    head = 3 if advanced else 1
    if len(frame) < head + 5:
        raise BadLength("response frame too short for STATUS", frame)
    return Response(address=frame[head], control=frame[head + 1], status=frame[head + 2],
                    data=bytes(frame[head + 3 : -2]), advanced=advanced)


class _Decoder(ByteStream):
    """Length-prefixed stream decoder shared by both directions.

    Theory: the buffer starts at a candidate. 0x02 → advanced frame (ALENGTH 8..65535, capped
    by ``max_frame``); otherwise the byte is a standard LENGTH (6..255, or 7.. for responses).
    A LENGTH out of range → ``BadLength`` and one byte is dropped; a CRC mismatch → ``BadCrc``
    and one byte is dropped (a real frame may start inside); a good frame is consumed whole.
    """

    _min_standard = 5
    _min_advanced = 7

    def __init__(self, *, max_frame: int = 1024) -> None:
        super().__init__(max_buffer=max(4096, 2 * max_frame))
        self.max_frame = max_frame

    def _frame_size(self) -> int | None:
        """Size of the candidate frame, None = need more bytes; raises BadLength."""
        buf = self._buf
        if buf[0] == STX:
            if len(buf) < 3:
                return None
            size = (buf[1] << 8) | buf[2]
            if not self._min_advanced + 3 <= size <= self.max_frame:
                raw = bytes(buf[:3])
                del buf[:1]
                self.errors += 1
                raise BadLength(f"ALENGTH {size} out of range", raw)
            return size
        size = buf[0]
        if size < self._min_standard + 1:
            raw = bytes(buf[:1])
            del buf[:1]
            self.errors += 1
            raise BadLength(f"LENGTH {size} below {self._min_standard + 1}", raw)
        return size

    def next_event(self) -> object:
        if not self._buf:
            return NEED_DATA
        size = self._frame_size()
        if size is None or len(self._buf) < size:
            return NEED_DATA
        frame = bytes(self._buf[:size])
        if crc16_mcrf4xx(frame[:-2]) != frame[-2] | (frame[-1] << 8):
            del self._buf[:1]
            self.errors += 1
            raise BadCrc("CRC mismatch", frame)
        del self._buf[:size]
        try:
            event = self._decode(frame)
        except FrameError:
            self.errors += 1
            raise
        self.frames += 1
        return event

    def _decide(self) -> bool:
        buf = self._buf
        if not buf:
            return False
        if buf[0] == STX:
            if len(buf) < 3:
                return False
            size = (buf[1] << 8) | buf[2]
            return not self._min_advanced + 3 <= size <= self.max_frame or len(buf) >= size
        return buf[0] < self._min_standard + 1 or len(buf) >= buf[0]

    def expire(self) -> None:
        """The inter-byte gap passed: drop a partial frame (TruncatedFrame)."""
        if self._decide():
            raise LocalProtocolError("drain next_event() until NEED_DATA before expire()")
        self._drop_partial()

    def _decode(self, frame: bytes) -> object:  # pragma: no cover - overridden
        raise NotImplementedError


class RequestDecoder(_Decoder):
    """Reader side: host request frames → typed requests (``next_event``), or raises."""

    _min_standard = 4  # LENGTH COM-ADR CONTROL CRC CRC: 5 bytes minimum
    _min_advanced = 4

    def _decode(self, frame: bytes) -> object:
        head = 3 if frame[0] == STX else 1
        return decode_request(frame[head], frame[head + 1], frame[head + 2 : -2], frame)


class ResponseDecoder(_Decoder):
    """Host side: reader response frames → :class:`Response` (``next_event``), or raises."""

    _min_standard = 5  # LENGTH COM-ADR CONTROL STATUS CRC CRC
    _min_advanced = 5

    def _decode(self, frame: bytes) -> object:
        response = parse_response(frame)
        if response.address == ANY_ADDRESS:
            raise BadPayload("a response from COM-ADR 255", frame, command=response.control,
                             address=response.address)
        if response.data and response.status not in DATA_STATUSES:
            raise BadPayload(f"STATUS 0x{response.status:02X} with data", frame,
                             command=response.control, address=response.address)
        return response

