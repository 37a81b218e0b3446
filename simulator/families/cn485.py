"""Emulator of a generic Chinese RS-485 lock board (8A/80 XOR protocol, ``firmware_protocol.cn485``).

Why: the driver must be tested byte for byte against what such a board does, on the same
physical model as our own boards, with the bus's line rate and faults (``BusServer``). The
board is deliberately dumb, as the real ones are:

* an open pulses the coil (``model.pulse``) and answers only after the pulse plus a feedback
  sample, with the feedback signal of that lock (no identity: an open heard twice pulses twice;
  the emulator counts every pulse in ``pulses`` so tests can prove the driver never re-sent);
* a read answers the feedback signal of one lock, or of every channel in ``status_bytes``
  bytes (highest channel group first);
* a frame with a bad BCC, a truncated frame or garbage is counted and never answered; a frame
  for another board, or for a channel the board does not have, is ignored.

The feedback signal is the lock's door contact as the board senses it (``model.door_flags``
→ DOOR_OPEN: a broken sensor reads closed). ``feedback="closed_is_11"`` (Open-Locker
``door_closing``: 0x11 = closed) or ``"open_is_11"`` (``door_opening``: 0x11 = open).
What the protocol cannot show follows: a jammed lock or a broken coil looks like a door that
did not spring open; a forced door looks like any open door.
"""

from __future__ import annotations

import math
from typing import Any, Literal

from firmware_protocol import cn485
from firmware_protocol.const import DoorFlags
from firmware_protocol.errors import BadCrc, FrameError, LocalProtocolError

from ..board import FEEDBACK_SAMPLE_S, FIRMWARE_PROCESSING_S, BoardResult
from ..config import BoardConfig
from ..model import CabinetModel

__all__ = ["DEFAULT_PULSE_S", "INTER_BYTE_GAP_S", "Cn485Board", "Cn485DeviceWire", "Feedback"]

Feedback = Literal["closed_is_11", "open_is_11"]
FEEDBACKS: tuple[str, ...] = ("closed_is_11", "open_is_11")
#: Default coil pulse (FaceLocker: "单开（默认 300ms）").
DEFAULT_PULSE_S = 0.3
#: Line quiet that ends a frame (Open-Locker rs485-lock-board.md: 25 ms).
INTER_BYTE_GAP_S = 0.025
_SILENT = BoardResult(reply=None)


def _answer(reply: object, delay_s: float) -> BoardResult:
    """A reply after ``delay_s``. ``BoardResult`` types its reply as our protocol's Frame; a
    family's reply rides in it the same way (its ``DeviceWire`` encodes it)."""
    return BoardResult(reply=reply, delay_s=delay_s)  # type: ignore[arg-type]


class Cn485DeviceWire:
    """Framing of the cn485 protocol as a board hears and answers it (``BusServer``)."""

    family = "cn485"
    inter_byte_gap_s = INTER_BYTE_GAP_S
    bits_per_char = 10  # 8N1

    def new_decoder(self) -> cn485.RequestDecoder:
        return cn485.RequestDecoder()

    def encode_reply(self, reply: Any) -> bytes:
        return cn485.encode_reply(reply)

    def encoded_size(self, request: Any) -> int:
        return len(cn485.encode_request(request))


class Cn485Board:
    """One cn485 board on a bus, acting on the cabinet model.

    Args:
        config: the board's address (its DIP switch) and lock count; doors are found in the
            model by this address.
        model: the physical cabinet.
        feedback: which signal the locks' feedback contact gives for a closed door.
        pulse_s: the board's default coil pulse.
        status_bytes: status bytes of a whole-board reply; default enough for the locks,
            at least 3 (the common 24-channel board).
        status_delay_s: firmware time before a read's reply (older boards: up to ~200 ms,
            CSDN 50717517; default a few ms).
    """

    def __init__(self, config: BoardConfig, model: CabinetModel, *,
                 feedback: Feedback = "closed_is_11", pulse_s: float = DEFAULT_PULSE_S,
                 status_bytes: int | None = None,
                 status_delay_s: float = FIRMWARE_PROCESSING_S) -> None:
        if feedback not in FEEDBACKS:
            raise ValueError(f"feedback must be one of {FEEDBACKS}, got {feedback!r}")
        self.config = config
        self.model = model
        self.address = config.address
        self.feedback: Feedback = feedback
        self.pulse_s = pulse_s
        self.status_bytes = status_bytes or max(3, math.ceil(config.locks / 8))
        if self.status_bytes * 8 < config.locks:
            raise ValueError(f"{self.status_bytes} status bytes cannot carry {config.locks} locks")
        self.status_delay_s = status_delay_s
        self.powered = True
        self.pulses = [0] * config.locks  # coil pulses given, per lock (lock 1 first)
        self.frames_ok = 0
        self.bcc_errors = 0
        self.other_errors = 0

    @property
    def pulse_count(self) -> int:
        """Every coil pulse this board ever gave."""
        return sum(self.pulses)

    # ------------------------------------------------------------ what the board senses
    def _high(self, lock: int) -> bool:
        """The feedback signal of ``lock``: 0x11 (True) or 0x00."""
        if lock > self.config.locks:
            return False  # an unwired input reads low
        sensed_open = bool(self.model.door_flags(self.address, lock) & DoorFlags.DOOR_OPEN)
        return sensed_open if self.feedback == "open_is_11" else not sensed_open

    # ------------------------------------------------------------ frames
    def handle(self, item: Any) -> BoardResult:
        """React to one decoded request or decoding error heard on the bus; never raises."""
        if not self.powered:
            return _SILENT
        if isinstance(item, BadCrc):
            self.bcc_errors += 1
            return _SILENT
        if isinstance(item, FrameError):
            self.other_errors += 1
            return _SILENT
        if not isinstance(item, (cn485.Open, cn485.ReadLock, cn485.ReadBoard)):
            return _SILENT
        if item.board != self.address:
            return _SILENT
        self.frames_ok += 1
        self.model.tick()
        try:
            if isinstance(item, cn485.Open):
                return self._open(item)
            if isinstance(item, cn485.ReadLock):
                if item.lock > self.config.locks:
                    return _SILENT
                return _answer(cn485.LockStatusReply(
                    board=self.address, lock=item.lock, high=self._high(item.lock)),
                    delay_s=self.status_delay_s)
            signals = tuple(self._high(n) for n in range(1, 8 * self.status_bytes + 1))
            return _answer(cn485.BoardStatusReply(board=self.address, signals=signals),
                               delay_s=self.status_delay_s)
        except LocalProtocolError:  # a value the wire cannot carry: stay silent
            return _SILENT

    def _open(self, msg: cn485.Open) -> BoardResult:
        pulse_s = float(msg.hold_s) if msg.hold_s is not None else self.pulse_s
        if msg.lock == 0:  # open all: every lock at once, one reply after the pulse
            for lock in range(1, self.config.locks + 1):
                self._pulse(lock, pulse_s)
            return _answer(cn485.OpenReply(board=self.address, lock=0, high=True),
                               delay_s=pulse_s + FEEDBACK_SAMPLE_S)
        if msg.lock > self.config.locks:
            return _SILENT
        self._pulse(msg.lock, pulse_s)
        return _answer(cn485.OpenReply(board=self.address, lock=msg.lock,
                                                 high=self._high(msg.lock)),
                           delay_s=pulse_s + FEEDBACK_SAMPLE_S)

    def _pulse(self, lock: int, pulse_s: float) -> None:
        self.model.pulse(self.address, lock, pulse_s)
        self.pulses[lock - 1] += 1

    # ------------------------------------------------------------ diagnostics
    def diagnostics(self) -> dict[str, object]:
        """Board state for tests and the control API (JSON-ready)."""
        return {"family": "cn485", "address": self.address, "feedback": self.feedback,
                "status_bytes": self.status_bytes, "powered": self.powered,
                "pulses": list(self.pulses), "frames_ok": self.frames_ok,
                "bcc_errors": self.bcc_errors, "other_errors": self.other_errors}
