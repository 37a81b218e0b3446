"""An RR3036-style HF reader module, byte-exact, on the shared physical model.

One antenna per module (the public sources describe no multiplexer: a cabinet uses one module
per antenna). Line 19200 Bd 8N1 (545ch4/RR3036 ``connection.rb``). Answers
``firmware_protocol.rr3036`` requests addressed to its ComAdr (or 0xFF **[assumption]**).

Behaviour, with the assumptions documented in ``firmware_protocol/rr3036.py``:

* Inventory: one ISO 15693 anticollision (``simulator.air``) over the tags that answer and are
  not in the quiet state; none → status 0x0E; more than fit → the first ones with status 0x0B.
  At most 27 fit a reply; ``uids_per_reply`` (fewer) stands for a short InventoryScanTime
  setting (a field of the init-device reply; the command that sets it is not in the sources),
  which makes the module stop after fewer tags — useful on a noisy line, where a 248-byte
  reply rarely arrives intact. Air time of a cut-short pass: its share of the full round.
* Stay Quiet: the tag stops answering inventories until the RF field is closed (close RF), as
  ISO 15693 quiet state ends with the field. ISO Stay Quiet has no tag response, so the module
  answers 0x00 whether or not the tag heard it.
* Read block (one 4-byte block) and Write AFI reach quiet tags too (addressed commands); a tag
  that does not answer → 0x0E after the ISO timeout; a block past the memory → 0x0F with ISO
  error 0x10. While RF is closed every ISO command → 0x05.
* UIDs go on the wire least significant byte first **[assumption]**.
* Unknown (Cmd, State) → 0x02, wrong operand length → 0x01 (sourced meanings).
"""

from __future__ import annotations

from typing import Any

from firmware_protocol import rr3036
from firmware_protocol.errors import BadCrc, BadPayload, FrameError, UnknownCommand

from .. import air
from ..board import BoardResult
from ..model import BLOCK_SIZE, CabinetModel, SimItem

__all__ = ["FIRMWARE_S", "RR3036DeviceWire", "RR3036Module"]

FIRMWARE_S = 0.002
_SILENT = BoardResult(reply=None)
_BROADCAST = 0xFF


class RR3036DeviceWire:
    """Device side of the RR3036 framing, for ``simulator.transport.BusServer``."""

    family = "rr3036"
    bits_per_char = 10  # 8N1
    inter_byte_gap_s = 0.010  # [assumption: no published value]

    def new_decoder(self) -> rr3036.RequestDecoder:
        return rr3036.RequestDecoder()

    def encode_reply(self, reply: Any) -> bytes:
        return rr3036.encode_reply(reply)

    def encoded_size(self, request: Any) -> int:
        return len(rr3036.encode_request(request))


class RR3036Module:
    """One RR3036-style module reading antenna ``antenna`` of ``source`` in ``model``."""

    def __init__(self, model: CabinetModel, source: Any, *, address: int = 0,
                 antenna: int = 1, uids_per_reply: int = rr3036.MAX_UIDS_PER_REPLY) -> None:
        if not 0 <= address <= 254:
            raise ValueError("ComAdr must be 0..254")
        if not 1 <= uids_per_reply <= rr3036.MAX_UIDS_PER_REPLY:
            raise ValueError("uids_per_reply must be 1..27")
        self.uids_per_reply = uids_per_reply
        self.model = model
        self.source = source
        self.antenna = antenna
        self.address = address
        self.rf_on = True
        self.quiet: set[bytes] = set()
        self.counters = {"frames_ok": 0, "crc_errors": 0, "bad_frames": 0, "inventories": 0,
                         "reads": 0, "writes": 0, "rf_resets": 0}

    def handle(self, item: object) -> BoardResult:
        if isinstance(item, BadCrc):
            self.counters["crc_errors"] += 1
            return _SILENT
        if isinstance(item, (UnknownCommand, BadPayload)):
            if item.address not in (self.address, _BROADCAST):
                return _SILENT
            self.counters["bad_frames"] += 1
            status = (rr3036.Status.NOT_SUPPORTED if isinstance(item, UnknownCommand)
                      else rr3036.Status.OPERAND_LENGTH)
            return self._status(status)
        if isinstance(item, FrameError):
            return _SILENT
        if getattr(item, "address", None) not in (self.address, _BROADCAST):
            return _SILENT
        self.counters["frames_ok"] += 1
        self.model.tick()
        if isinstance(item, rr3036.InitDevice):
            return self._reply(rr3036.InitReply(address=self.address, version=0x0301,
                                                reader_type=0x66, protocols=0x0001,
                                                scan_time=0x0A))
        if isinstance(item, rr3036.CloseRf):
            self.rf_on = False
            self.quiet.clear()
            self.counters["rf_resets"] += 1
            return self._status(rr3036.Status.OK)
        if isinstance(item, rr3036.OpenRf):
            self.rf_on = True
            return self._status(rr3036.Status.OK)
        if not self.rf_on:
            return self._status(rr3036.Status.FIELD_CLOSED)
        if isinstance(item, rr3036.Inventory):
            return self._inventory()
        if isinstance(item, rr3036.StayQuiet):
            self.quiet.add(bytes(reversed(item.uid)))
            return self._status(rr3036.Status.OK, air.reader_frame_s(12))
        if isinstance(item, rr3036.ReadBlock):
            return self._read(item)
        if isinstance(item, rr3036.WriteAfi):
            return self._write(item)
        return _SILENT

    def _reply(self, reply: object, air_s: float = 0.0) -> BoardResult:
        return BoardResult(reply=reply, delay_s=FIRMWARE_S + air_s, air_s=air_s)

    def _status(self, status: int, air_s: float = 0.0, data: bytes = b"") -> BoardResult:
        return self._reply(rr3036.StatusReply(address=self.address, status=status, data=data),
                           air_s)

    def _inventory(self) -> BoardResult:
        self.counters["inventories"] += 1
        ant = self.model.antennas.get((self.source, self.antenna))
        seen: dict[bytes, SimItem] = {}
        if ant is not None:
            for item in self.model.items_in_field(self.source, self.antenna):
                if item.uid in self.quiet:
                    continue
                if self.model.answers(item, ant)[0]:
                    seen[item.uid] = item
        result = air.inventory(list(seen))
        if not result.order:
            return self._status(rr3036.Status.NO_TAG, result.air_s)
        order = result.order[: self.uids_per_reply]
        status = (rr3036.Status.SCAN_TIME_ALL if len(result.order) > len(order)
                  else rr3036.Status.OK)
        # a pass cut short by the scan time spends its share of the full anticollision
        air_s = result.air_s * len(order) / len(result.order)
        tags = tuple((seen[u].dsfid, bytes(reversed(u))) for u in order)
        return self._reply(rr3036.InventoryReply(address=self.address, status=status,
                                                 tags=tags), air_s)

    def _find(self, wire_uid: bytes) -> SimItem | None:
        uid = bytes(reversed(wire_uid))
        ant = self.model.antennas.get((self.source, self.antenna))
        if ant is None:
            return None
        for item in self.model.items_in_field(self.source, self.antenna):
            if item.uid == uid:
                return item if self.model.answers(item, ant)[0] else None
        return None

    def _read(self, msg: rr3036.ReadBlock) -> BoardResult:
        self.counters["reads"] += 1
        item = self._find(msg.uid)
        if item is None:
            return self._status(rr3036.Status.NO_TAG, air.no_response_s(12))
        air_s = air.read_blocks_s(1, BLOCK_SIZE)
        if msg.block >= len(item.memory) // BLOCK_SIZE:
            return self._status(rr3036.Status.ISO_ERROR, air_s, b"\x10")
        start = msg.block * BLOCK_SIZE
        return self._reply(rr3036.ReadBlockReply(
            address=self.address, block=item.memory[start : start + BLOCK_SIZE]), air_s)

    def _write(self, msg: rr3036.WriteAfi) -> BoardResult:
        self.counters["writes"] += 1
        item = self._find(msg.uid)
        if item is None:
            return self._status(rr3036.Status.NO_TAG, air.no_response_s(13))
        item.afi = msg.afi
        return self._status(rr3036.Status.OK, air.write_s())

    def diagnostics(self) -> dict[str, object]:
        return {"family": "rr3036", "address": self.address, "source": str(self.source),
                "antenna": self.antenna, "rf_on": self.rf_on, "quiet_tags": len(self.quiet),
                **self.counters}
