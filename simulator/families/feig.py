"""A FEIG ISO-host-protocol HF reader (OBID i-scan / classic-pro style), byte-exact, on the
shared physical model.

What it answers (``firmware_protocol.feig``): [0xB0] Inventory (new round, MORE continuation,
ANT/ANT_SEL on multiplexed readers), Read Multiple Blocks, Write AFI, and [0xB1] NXP Set/Reset
EAS — every one addressed to its COM-ADR or to 255. Line: 38400 Bd 8E1 by default
(``bits_per_char = 11``), 12 ms inter-character timeout (LRU3000 p.21).

Behaviour modelled, with the assumptions no public source settles:

* A new inventory runs one ISO 15693 anticollision per selected antenna (``simulator.air``),
  keeps the data sets, and sends as many as fit the reader's interface buffer
  (``data_sets_per_reply``; FEIG's TX-BUF, MR200 p.93); STATUS 0x94 says more are held. Each
  MORE request sends the next ones — the pointer advances when a response is *sent*, so a
  response lost on the line is lost **[assumption: worst case for the host]**. MORE with
  nothing held answers STATUS 0x01 **[assumption]**.
* A tag seen on several antennas is one data set with one antenna record each (RF290R/MU02
  layout). RSSI byte = −dBm (e.g. 0x32 = −50 dBm) **[assumption: unit not published]**.
* Addressed commands go out on the antenna of the last inventory (lowest ANT_SEL bit), or
  antenna 1 **[assumption]**; a tag not answering there → STATUS 0x01 after the ISO timeout.
* Block out of range → STATUS 0x95 with ISO error 0x10 (ISO 15693 "block not available").
  Unknown commands → STATUS 0x80, malformed ones → 0x81 (codes unverified).
* Bad CRC, truncated frames, garbage: no answer (counted).
"""

from __future__ import annotations

from typing import Any

from firmware_protocol import feig
from firmware_protocol.errors import BadCrc, BadPayload, FrameError, UnknownCommand

from .. import air
from ..board import BoardResult
from ..model import BLOCK_SIZE, CabinetModel, SimItem

__all__ = ["FEIG_BITS_PER_CHAR", "FIRMWARE_S", "FeigDeviceWire", "FeigReader"]

FEIG_BITS_PER_CHAR = 11  # 8E1
#: Reader firmware time to parse a request and start its response.
FIRMWARE_S = 0.002
_SILENT = BoardResult(reply=None)


class FeigDeviceWire:
    """Device side of the FEIG framing, for ``simulator.transport.BusServer``."""

    family = "feig"
    bits_per_char = FEIG_BITS_PER_CHAR
    inter_byte_gap_s = 0.012

    def new_decoder(self) -> feig.RequestDecoder:
        return feig.RequestDecoder()

    def encode_reply(self, reply: Any) -> bytes:
        return feig.encode_reply(reply)

    def encoded_size(self, request: Any) -> int:
        return len(feig.encode_request(request))


class FeigReader:
    """One FEIG reader with ``antennas`` outputs, reading ``model`` at ``source``.

    Args:
        model: the physical cabinet (used under the simulator's model lock).
        source: the key of this reader's antennas in the model (opaque: a board address or a
            stand-alone reader's name); antenna n is ``model.antennas[(source, n)]``.
        address: COM-ADR 0..254.
        antennas: antenna outputs (1 = no multiplexer).
        data_sets_per_reply: most data sets one response carries (the interface buffer).
    """

    def __init__(self, model: CabinetModel, source: Any, *, address: int = 0, antennas: int = 1,
                 data_sets_per_reply: int = 255) -> None:
        if not 0 <= address <= 254:
            raise ValueError("COM-ADR must be 0..254")
        if not 1 <= data_sets_per_reply <= 255 or not 1 <= antennas <= 8:
            raise ValueError("data_sets_per_reply 1..255, antennas 1..8")
        self.model = model
        self.source = source
        self.address = address
        self.antennas = antennas
        self.data_sets_per_reply = data_sets_per_reply
        self.selected_antenna = 1
        self._held: list[feig.InventoryTag] | None = None
        self.counters = {"frames_ok": 0, "crc_errors": 0, "bad_frames": 0, "inventories": 0,
                         "more": 0, "reads": 0, "writes": 0}

    # ------------------------------------------------------------ frames
    def handle(self, item: object) -> BoardResult:
        if isinstance(item, BadCrc):
            self.counters["crc_errors"] += 1
            return _SILENT
        if isinstance(item, (UnknownCommand, BadPayload)):
            if item.address not in (self.address, feig.ANY_ADDRESS):
                return _SILENT
            self.counters["bad_frames"] += 1
            status = (feig.Status.UNKNOWN_COMMAND if isinstance(item, UnknownCommand)
                      else feig.Status.LENGTH_ERROR)
            return self._reply(feig.StatusReply(address=self.address, control=item.command,
                                                status=status))
        if isinstance(item, FrameError):
            return _SILENT
        address = getattr(item, "address", None)
        if address not in (self.address, feig.ANY_ADDRESS):
            return _SILENT
        self.counters["frames_ok"] += 1
        self.model.tick()
        if isinstance(item, feig.Inventory):
            return self._inventory(item)
        if isinstance(item, feig.ReadMultipleBlocks):
            return self._read(item)
        if isinstance(item, (feig.WriteAfi, feig.SetEas)):
            return self._write(item)
        return _SILENT

    def _reply(self, reply: object, air_s: float = 0.0) -> BoardResult:
        return BoardResult(reply=reply, delay_s=FIRMWARE_S + air_s, air_s=air_s)

    def _status(self, status: int, control: int = feig.CONTROL_ISO, air_s: float = 0.0,
                iso_error: int | None = None) -> BoardResult:
        return self._reply(feig.StatusReply(address=self.address, control=control,
                                            status=status, iso_error=iso_error), air_s)

    # ------------------------------------------------------------ inventory
    def _antenna_numbers(self, ant_sel: int | None) -> list[int]:
        if ant_sel is None:
            return [1]
        return [n for n in range(1, self.antennas + 1) if ant_sel & (1 << (n - 1))]

    def _inventory(self, msg: feig.Inventory) -> BoardResult:
        air_s = 0.0
        if not msg.more:
            self.counters["inventories"] += 1
            numbers = self._antenna_numbers(msg.ant_sel)
            if numbers:
                self.selected_antenna = numbers[0]
            found: dict[bytes, tuple[int, list[feig.AntennaRead]]] = {}
            order: list[bytes] = []
            for n in numbers:
                ant = self.model.antennas.get((self.source, n))
                if ant is None:
                    continue
                seen: dict[bytes, tuple[SimItem, int]] = {}
                for item in self.model.items_in_field(self.source, n):
                    answers, rssi = self.model.answers(item, ant)
                    if answers:
                        seen[item.uid] = (item, rssi)
                result = air.inventory(list(seen))
                air_s += result.air_s
                for uid in result.order:
                    item, rssi = seen[uid]
                    if uid not in found:
                        found[uid] = (item.dsfid, [])
                        order.append(uid)
                    found[uid][1].append(feig.AntennaRead(number=n, status=0,
                                                          rssi=max(0, min(255, -rssi))))
            self._held = [feig.InventoryTag(uid=uid, dsfid=found[uid][0],
                                            antennas=tuple(found[uid][1])) for uid in order]
        else:
            self.counters["more"] += 1
        held = self._held
        if not held:
            self._held = None
            return self._status(feig.Status.NO_TRANSPONDER, air_s=air_s)
        chunk, rest = held[: self.data_sets_per_reply], held[self.data_sets_per_reply :]
        self._held = rest
        with_ant = msg.ant_sel is not None
        tags = tuple(chunk) if with_ant else tuple(
            feig.InventoryTag(uid=t.uid, dsfid=t.dsfid, tr_type=t.tr_type) for t in chunk)
        status = feig.Status.MORE_DATA if rest else feig.Status.OK
        return self._reply(feig.InventoryReply(address=self.address, status=status, tags=tags,
                                               with_antennas=with_ant), air_s)

    # ------------------------------------------------------------ addressed commands
    def _find(self, uid: bytes) -> SimItem | None:
        ant = self.model.antennas.get((self.source, self.selected_antenna))
        if ant is None:
            return None
        for item in self.model.items_in_field(self.source, self.selected_antenna):
            if item.uid == uid:
                return item if self.model.answers(item, ant)[0] else None
        return None

    def _read(self, msg: feig.ReadMultipleBlocks) -> BoardResult:
        self.counters["reads"] += 1
        item = self._find(msg.uid)
        if item is None:
            return self._status(feig.Status.NO_TRANSPONDER, air_s=air.no_response_s())
        if msg.count * BLOCK_SIZE > feig.MAX_READ_BYTES:
            return self._status(feig.Status.LENGTH_ERROR)
        blocks = len(item.memory) // BLOCK_SIZE
        air_s = air.read_blocks_s(msg.count, BLOCK_SIZE)
        if msg.first_block + msg.count > blocks:
            return self._status(feig.Status.ISO_ERROR, air_s=air_s, iso_error=0x10)
        start = msg.first_block * BLOCK_SIZE
        data = item.memory[start : start + msg.count * BLOCK_SIZE]
        chunks = tuple(data[i : i + BLOCK_SIZE] for i in range(0, len(data), BLOCK_SIZE))
        return self._reply(feig.ReadBlocksReply(address=self.address, block_size=BLOCK_SIZE,
                                                blocks=chunks, security=(0,) * len(chunks)),
                           air_s)

    def _write(self, msg: feig.WriteAfi | feig.SetEas) -> BoardResult:
        self.counters["writes"] += 1
        control = feig.request_control(msg)
        item = self._find(msg.uid)
        if item is None:
            return self._status(feig.Status.NO_TRANSPONDER, control,
                                air_s=air.no_response_s(13))
        if isinstance(msg, feig.WriteAfi):
            item.afi = msg.afi
        else:
            item.eas = msg.enabled
        return self._status(feig.Status.OK, control, air_s=air.write_s())

    def diagnostics(self) -> dict[str, object]:
        return {"family": "feig", "address": self.address, "source": str(self.source),
                "antennas": self.antennas, "selected_antenna": self.selected_antenna,
                "held_data_sets": len(self._held or ()), **self.counters}
