"""Driver of the generic Chinese RS-485 lock board (8A/80 XOR protocol, docs/families.md).

Why this shape: the protocol (``firmware_protocol.cn485``) carries no sequence number and no
identity on an open, so replies are matched by head byte, board and lock (``Cn485Wire``), and
the rules of ``PolledLockBoard`` apply: status reads may be retried, an open never is.

Link: 9600 Bd 8N1 (CSDN 147892413; Open-Locker rs485-lock-board.md), up to 31 boards on one
bus (Open-Locker supports DIP 1..31). Timeouts: an open's reply comes after the coil pulse,
~500 ms (Open-Locker, timeout 1500 ms); a status read's reply comes within a few ms on
current boards (an older board document says ~200 ms: raise ``read_timeout_s`` for those).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal

from firmware_protocol import cn485
from firmware_protocol.errors import LocalProtocolError

from ..board import BoardInfo, DoorState, UnlockResult
from ..errors import FrameError
from ..transport import BusTransport, Match, StreamDecoder
from .polled_board import PolledLockBoard

__all__ = [
    "BAUDRATE",
    "INTER_BYTE_GAP_S",
    "Cn485Board",
    "Cn485Wire",
    "Feedback",
    "cn485_transport",
]

Feedback = Literal["closed_is_11", "open_is_11"]
FEEDBACKS: tuple[str, ...] = ("closed_is_11", "open_is_11")
BAUDRATE = cn485.LINK_BAUDRATE
#: Line quiet that ends a frame on a real serial line (Open-Locker: 25 ms).
INTER_BYTE_GAP_S = 0.025
UNLOCK_TIMEOUT_S = 1.5  # Open-Locker: response timeout 1500 ms, reply ~500 ms after the open
READ_TIMEOUT_S = 0.15


class Cn485Wire:
    """cn485 framing for ``BusTransport``: replies matched by head byte, board and lock.

    The wire remembers, per board, what was last asked (a one-lock or whole-board read) and
    how many status bytes each board sends, because the reply decoder needs both to find
    whole-board replies (see ``firmware_protocol.cn485``). One wire per bus.
    """

    family = "cn485"

    def __init__(self) -> None:
        self._status_bytes: dict[int, int] = {}
        self._expect: dict[int, cn485.Expect | None] = {}

    def register(self, board: int, status_bytes: int) -> None:
        """Board ``board`` answers a whole-board read with ``status_bytes`` bytes."""
        self._status_bytes[board] = status_bytes

    def encode(self, address: int, seq: int, message: object) -> bytes:
        if not isinstance(message, (cn485.Open, cn485.ReadLock, cn485.ReadBoard)):
            raise LocalProtocolError(f"{type(message).__name__} is not a cn485 request")
        if message.board != address:
            raise LocalProtocolError(f"request for board {message.board} sent to {address}")
        self._expect[address] = ("board" if isinstance(message, cn485.ReadBoard) else
                                 "lock" if isinstance(message, cn485.ReadLock) else None)
        return cn485.encode_request(message)

    def new_decoder(self) -> StreamDecoder:
        return cn485.ReplyDecoder(
            status_bytes=lambda b: self._status_bytes.get(b, cn485.DEFAULT_STATUS_BYTES),
            expect=lambda b: self._expect.get(b))

    def match(self, request: object, address: int, seq: int, event: object) -> Match:
        if event == request:
            return "echo"
        if isinstance(request, cn485.Open):
            ok = (isinstance(event, cn485.OpenReply) and event.board == address
                  and event.lock == request.lock)
        elif isinstance(request, cn485.ReadLock):
            ok = (isinstance(event, cn485.LockStatusReply) and event.board == address
                  and event.lock == request.lock)
        else:
            ok = isinstance(event, cn485.BoardStatusReply) and event.board == address
        return "reply" if ok else "foreign"

    def reply_of(self, event: object) -> object:
        return event


def cn485_transport(url: str, *, baudrate: int = BAUDRATE, name: str = "",
                    **kwargs: object) -> BusTransport:
    """A ``BusTransport`` for a cn485 bus (9600 8N1, 25 ms frame gap on serial lines; the
    transport's TCP gap over ``socket://``)."""
    gap = None if url.startswith("socket://") else INTER_BYTE_GAP_S
    return BusTransport(url, baudrate=baudrate, name=name, wire=Cn485Wire(),
                        inter_byte_gap_s=gap, **kwargs)  # type: ignore[arg-type]


class Cn485Board(PolledLockBoard):
    """One cn485 board at ``address`` (its DIP setting) on ``transport``.

    Args:
        transport: built with a ``Cn485Wire`` (``cn485_transport``).
        address: DIP address 1..31 (0..255 accepted by the wire).
        locks: locks wired to the board.
        feedback: what 0x11 means for the installed locks: ``"closed_is_11"`` (Open-Locker
            ``door_closing``: 0x11 = closed, 0x00 = open) or ``"open_is_11"``
            (``door_opening``). A door that always reads inverted means the wrong setting.
        status_bytes: status bytes of the board's whole-board reply (3 for 24 channels, 4 for
            32); default enough for ``locks``, at least 3.
        read_timeout_s: request end → reply start for status reads.
        unlock_timeout_s: the same for opens (pulse + feedback sample + margin).
        Others: see ``PolledLockBoard``.
    """

    family = "cn485"

    def __init__(self, transport: BusTransport, address: int, *, locks: int,
                 feedback: Feedback = "closed_is_11", status_bytes: int | None = None,
                 read_timeout_s: float = READ_TIMEOUT_S,
                 unlock_timeout_s: float = UNLOCK_TIMEOUT_S, read_retries: int = 2,
                 noisy_retries: int = 20, sprung_doors: bool = False, settle_s: float = 1.0,
                 clock: Callable[[], float] | None = None) -> None:
        if feedback not in FEEDBACKS:
            raise ValueError(f"feedback must be one of {FEEDBACKS}, got {feedback!r}")
        kwargs = {} if clock is None else {"clock": clock}
        super().__init__(transport, address, locks=locks, read_retries=read_retries,
                         noisy_retries=noisy_retries, sprung_doors=sprung_doors,
                         settle_s=settle_s, **kwargs)
        self.feedback: Feedback = feedback
        self.status_bytes = status_bytes or max(3, math.ceil(locks / 8))
        if self.status_bytes * 8 < locks:
            raise ValueError(f"{self.status_bytes} status bytes cannot carry {locks} locks")
        self.read_timeout_s = read_timeout_s
        self.unlock_timeout_s = unlock_timeout_s
        wire = transport.wire
        if not isinstance(wire, Cn485Wire):
            raise TypeError("the transport must use a Cn485Wire (see cn485_transport)")
        wire.register(address, self.status_bytes)

    def _is_open(self, high: bool) -> bool:
        return high if self.feedback == "open_is_11" else not high

    def identify(self) -> BoardInfo:
        """What can be known: the family, address and lock count come from the config (the
        protocol has no identify command); one status read proves the board answers."""
        self.states()
        self._info = BoardInfo(family=self.family, address=self.address, serial="unknown",
                               firmware="unknown", protocol="cn485 8A/80 XOR",
                               locks=self.locks, sensors=self.locks, antennas=0,
                               capabilities=frozenset({"polled_states"}))
        return self._info

    def unlock(self, lock: int, *, pulse_ms: int | None = None,
               op_id: int | None = None) -> UnlockResult:
        """Open ``lock`` once.

        Args:
            lock: 1-based lock number.
            pulse_ms: None or < 1000: the board's fixed pulse (~300 ms); ≥ 1000: hold the lock
                open that many seconds (rounded, 1..9) with the timed-open form.
            op_id: None for a new pulse. The protocol has none on the wire, so the driver
                remembers it: the op_id of an earlier call returns that call's result (or
                raises its DeviceTimeout / LockJammed again) and sends nothing.

        Raises:
            DeviceTimeout: no confirmation — the door may have opened; never re-sent.
            LockJammed: ``sprung_doors`` and the door stayed closed (inferred).
            DeviceUnavailable: the bus is down, nothing was sent.
            DeviceRejected: no such lock.
        """
        self._check_lock(lock)
        known = self._known_unlock(lock, op_id)
        if known is not None:
            return known
        hold = None
        if pulse_ms is not None and pulse_ms >= 1000:
            hold = max(1, min(cn485.MAX_HOLD_S, round(pulse_ms / 1000)))
        timeout = self.unlock_timeout_s + (hold or 0)
        op, reply = self._send_unlock(cn485.Open(board=self.address, lock=lock, hold_s=hold),
                                      lock, timeout, op_id)
        return self._confirmed(lock, op, self._is_open(reply.high))

    def _read_raw(self) -> tuple[DoorState, ...]:
        reply = self._read(cn485.ReadBoard(board=self.address), cn485.BoardStatusReply,
                           self.read_timeout_s)
        if len(reply.signals) < self.locks:
            raise FrameError(f"{self.name}: status for {len(reply.signals)} channels, "
                             f"{self.locks} locks configured")
        return tuple(DoorState(lock=n, open=self._is_open(reply.signals[n - 1]))
                     for n in range(1, self.locks + 1))

    def read_lock(self, lock: int) -> DoorState:
        """One lock's state with the one-lock read (``80 BB LL 33``)."""
        self._check_lock(lock)
        reply = self._read(cn485.ReadLock(board=self.address, lock=lock),
                           cn485.LockStatusReply, self.read_timeout_s)
        return DoorState(lock=lock, open=self._is_open(reply.high))

    def limits(self) -> list[str]:
        return [
            ("no event buffer: door changes are found by polling; an open+close between two "
             "polls is seen only when our unlock preceded it (inferred events)"),
            "no unlock identity: a lost open reply cannot be retried safely",
            "no forced-door flag: inferred from an opening without our unlock",
            "no jam detection: a stuck bolt looks like a door that did not open",
            "no identify, serial, firmware version, counters, RFID or antenna diagnostics",
            "feedback polarity must be configured per lock type",
        ]
