"""Emulator of a Kerong CU lock control unit (KR-CU12/CU16, ``firmware_protocol.kerong``).

Why: the Kerong driver is tested byte for byte against a unit acting on the same physical
model as every other board, with the bus's line rate and faults (``BusServer``).

Behaviour:

* 0x30 get status → the 9-byte status frame (CMD 0x35) of all 16 channels: hook bit set = the
  lock's hook is closed (the door is shut; a broken door contact reads shut), IR bit set = the
  compartment holds at least one item (``model.board_door(...).items``);
* 0x31 unlock → a coil pulse (``model.pulse``) for the unit's unlock time, then the status
  frame after the pulse (no identity: an unlock heard twice pulses twice; ``pulses`` counts);
* 0x33 unlock all → every lock pulsed, one status frame;
* 0x37 set unlock time → stored, answered with CMD 0x38 echoing it (assumed reply form);
* 0x32 status of the bus → answered (CMD 0x36) only when addressed to this unit; sent to the
  broadcast address 0xF0 it is not answered (every unit answering at once would collide);
* 0x39 delayed unlock → stored, not answered; bad SUM, garbage, truncated frames → counted,
  never answered; frames for another unit or a channel not fitted → ignored.

The unit number (0..14, its DIP setting) defaults to the board's config address; doors are
found in the model by the config address.
"""

from __future__ import annotations

from typing import Any

from firmware_protocol import kerong
from firmware_protocol.const import DoorFlags
from firmware_protocol.errors import BadCrc, FrameError, LocalProtocolError

from ..board import FEEDBACK_SAMPLE_S, FIRMWARE_PROCESSING_S, BoardResult
from ..config import BoardConfig
from ..model import CabinetModel

__all__ = ["DEFAULT_PULSE_S", "INTER_BYTE_GAP_S", "KerongDeviceWire", "KerongUnit"]

#: Factory unlock time assumed for the emulator (Kerong: programmable 0..60 s, 10 ms steps).
DEFAULT_PULSE_S = 0.5
INTER_BYTE_GAP_S = 0.025
_SILENT = BoardResult(reply=None)


def _answer(reply: object, delay_s: float) -> BoardResult:
    """A reply after ``delay_s``. ``BoardResult`` types its reply as our protocol's Frame; a
    family's reply rides in it the same way (its ``DeviceWire`` encodes it)."""
    return BoardResult(reply=reply, delay_s=delay_s)  # type: ignore[arg-type]


class KerongDeviceWire:
    """Framing of the Kerong CU protocol as a unit hears and answers it (``BusServer``)."""

    family = "kerong"
    inter_byte_gap_s = INTER_BYTE_GAP_S
    bits_per_char = 10  # 8N1

    def new_decoder(self) -> kerong.RequestDecoder:
        return kerong.RequestDecoder()

    def encode_reply(self, reply: Any) -> bytes:
        return kerong.encode_reply(reply)

    def encoded_size(self, request: Any) -> int:
        return len(kerong.encode_request(request))


class KerongUnit:
    """One Kerong CU unit on a bus, acting on the cabinet model.

    Args:
        config: the board's config (address → model doors; ``locks`` ≤ 16).
        model: the physical cabinet.
        unit: the unit number on the wire (0..14); default ``config.address``.
        pulse_s: the unit's unlock time until a 0x37 changes it.
        status_delay_s: firmware time before a status reply.
    """

    def __init__(self, config: BoardConfig, model: CabinetModel, *, unit: int | None = None,
                 pulse_s: float = DEFAULT_PULSE_S,
                 status_delay_s: float = FIRMWARE_PROCESSING_S) -> None:
        self.unit = config.address if unit is None else unit
        if not 0 <= self.unit <= kerong.MAX_UNIT:
            raise ValueError(f"a Kerong unit number is 0..{kerong.MAX_UNIT}, got {self.unit}")
        if config.locks > kerong.LOCKS_PER_UNIT:
            raise ValueError(f"a Kerong CU unit has at most 16 locks, got {config.locks}")
        self.config = config
        self.model = model
        self.pulse_s = pulse_s
        self.delay_s = 0
        self.status_delay_s = status_delay_s
        self.powered = True
        self.pulses = [0] * config.locks
        self.frames_ok = 0
        self.sum_errors = 0
        self.other_errors = 0

    @property
    def pulse_count(self) -> int:
        """Every coil pulse this unit ever gave."""
        return sum(self.pulses)

    def _status(self, address: int, all_units: bool = False) -> kerong.StatusReply:
        hooks, ir = [], []
        for lock in range(1, kerong.LOCKS_PER_UNIT + 1):
            if lock > self.config.locks:
                hooks.append(False)
                ir.append(False)
                continue
            flags = self.model.door_flags(self.config.address, lock)
            hooks.append(not flags & DoorFlags.DOOR_OPEN)
            door = self.model.board_door(self.config.address, lock)
            ir.append(bool(door and door.items))
        return kerong.StatusReply(address=address, hooks=tuple(hooks), infrared=tuple(ir),
                                  all_units=all_units)

    def handle(self, item: Any) -> BoardResult:
        """React to one decoded request or decoding error heard on the bus; never raises."""
        if not self.powered:
            return _SILENT
        if isinstance(item, BadCrc):
            self.sum_errors += 1
            return _SILENT
        if isinstance(item, FrameError):
            self.other_errors += 1
            return _SILENT
        if isinstance(item, kerong.QueryBus):
            if item.address >> 4 != self.unit:
                return _SILENT
            self.frames_ok += 1
            self.model.tick()
            return _answer(self._status(item.address, all_units=True),
                               delay_s=self.status_delay_s)
        if getattr(item, "unit", None) != self.unit:
            return _SILENT
        self.frames_ok += 1
        self.model.tick()
        try:
            return self._execute(item)
        except LocalProtocolError:
            return _SILENT

    def _execute(self, item: Any) -> BoardResult:
        addr = self.unit << 4
        if isinstance(item, kerong.GetStatus):
            return _answer(self._status(addr | (item.lock - 1)),
                               delay_s=self.status_delay_s)
        if isinstance(item, kerong.Unlock):
            if item.lock > self.config.locks:
                return _SILENT
            self._pulse(item.lock)
            return _answer(self._status(addr | (item.lock - 1)),
                               delay_s=self.pulse_s + FEEDBACK_SAMPLE_S)
        if isinstance(item, kerong.UnlockAll):
            for lock in range(1, self.config.locks + 1):
                self._pulse(lock)
            return _answer(self._status(addr), delay_s=self.pulse_s + FEEDBACK_SAMPLE_S)
        if isinstance(item, kerong.SetPulse):
            self.pulse_s = item.pulse_ms / 1000
            return _answer(kerong.PulseReply(address=addr, pulse_ms=item.pulse_ms),
                               delay_s=self.status_delay_s)
        if isinstance(item, kerong.DelayedUnlock):
            self.delay_s = item.delay_s
        return _SILENT

    def _pulse(self, lock: int) -> None:
        self.model.pulse(self.config.address, lock, self.pulse_s)
        self.pulses[lock - 1] += 1

    def diagnostics(self) -> dict[str, object]:
        """Unit state for tests and the control API (JSON-ready)."""
        return {"family": "kerong", "unit": self.unit, "config_address": self.config.address,
                "pulse_ms": round(self.pulse_s * 1000), "powered": self.powered,
                "pulses": list(self.pulses), "frames_ok": self.frames_ok,
                "sum_errors": self.sum_errors, "other_errors": self.other_errors}
