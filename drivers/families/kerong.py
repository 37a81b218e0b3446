"""Driver of Kerong CU lock control units (KR-CU12/CU16, docs/families.md).

Why this shape: the protocol (``firmware_protocol.kerong``) has no sequence number and no
identity on an unlock; replies are matched by unit and reply code (``KerongWire``) and the
rules of ``PolledLockBoard`` apply: status reads may be retried, an unlock never is. Public
field notes ("users see the lock open but no reply", CartWise's retry/flush fixes) are exactly
the case where a re-sent unlock would open a door twice.

Link: 19200 Bd 8N1 factory default (9600/57600/115200 settable); up to 15 units on a bus
(the address's high nibble; 0xF_ is the broadcast address). Status reads answer at once; an
unlock is answered with the status frame after the unit's unlock time (default assumed
500 ms here; programmable 0..60 s with 0x37).
"""

from __future__ import annotations

from collections.abc import Callable

from firmware_protocol import kerong
from firmware_protocol.errors import LocalProtocolError

from ..board import BoardInfo, DoorState, UnlockResult
from ..transport import BusTransport, Match, StreamDecoder
from .polled_board import PolledLockBoard

__all__ = ["BAUDRATE", "INTER_BYTE_GAP_S", "KerongBoard", "KerongWire", "kerong_transport"]

BAUDRATE = kerong.LINK_BAUDRATE
INTER_BYTE_GAP_S = 0.025
READ_TIMEOUT_S = 0.15
UNLOCK_MARGIN_S = 1.0  # beyond the unit's unlock time


class KerongWire:
    """Kerong CU framing for ``BusTransport``: replies matched by unit and reply code."""

    family = "kerong"

    def encode(self, address: int, seq: int, message: object) -> bytes:
        if not isinstance(message, (kerong.GetStatus, kerong.Unlock, kerong.UnlockAll,
                                    kerong.SetPulse)):
            raise LocalProtocolError(f"{type(message).__name__} is not a Kerong request this "
                                     f"driver sends")
        if message.unit != address:
            raise LocalProtocolError(f"request for unit {message.unit} sent to {address}")
        return kerong.encode_request(message)

    def new_decoder(self) -> StreamDecoder:
        return kerong.ReplyDecoder()

    def match(self, request: object, address: int, seq: int, event: object) -> Match:
        if isinstance(request, kerong.SetPulse):
            ok = (isinstance(event, kerong.PulseReply) and event.unit == address
                  and event.pulse_ms == request.pulse_ms)
        else:
            ok = (isinstance(event, kerong.StatusReply) and not event.all_units
                  and event.unit == address)
        return "reply" if ok else "foreign"

    def reply_of(self, event: object) -> object:
        return event


def kerong_transport(url: str, *, baudrate: int = BAUDRATE, name: str = "",
                     **kwargs: object) -> BusTransport:
    """A ``BusTransport`` for a Kerong bus (19200 8N1 by default)."""
    gap = None if url.startswith("socket://") else INTER_BYTE_GAP_S
    return BusTransport(url, baudrate=baudrate, name=name, wire=KerongWire(),
                        inter_byte_gap_s=gap, **kwargs)  # type: ignore[arg-type]


class KerongBoard(PolledLockBoard):
    """One Kerong CU unit ``unit`` (0..14) on ``transport``.

    Args:
        transport: built with a ``KerongWire`` (``kerong_transport``).
        unit: the unit number (its DIP setting), used as the board address.
        locks: 16 for a CU16, 12 for a CU12 (or fewer wired).
        pulse_ms: the unlock time the unit is assumed to have (the factory value is not
            published; ``unlock(pulse_ms=...)`` sets it with 0x37 when different).
        Others: see ``PolledLockBoard``.
    """

    family = "kerong"

    def __init__(self, transport: BusTransport, unit: int, *, locks: int = 16,
                 pulse_ms: int = 500, read_timeout_s: float = READ_TIMEOUT_S,
                 read_retries: int = 2, noisy_retries: int = 20, sprung_doors: bool = False,
                 settle_s: float = 1.0, clock: Callable[[], float] | None = None) -> None:
        if not 0 <= unit <= kerong.MAX_UNIT:
            raise ValueError(f"a Kerong unit number is 0..{kerong.MAX_UNIT}, got {unit}")
        if not 1 <= locks <= kerong.LOCKS_PER_UNIT:
            raise ValueError("a Kerong CU unit has 1..16 locks")
        if not isinstance(transport.wire, KerongWire):
            raise TypeError("the transport must use a KerongWire (see kerong_transport)")
        kwargs = {} if clock is None else {"clock": clock}
        super().__init__(transport, unit, locks=locks, read_retries=read_retries,
                         noisy_retries=noisy_retries, sprung_doors=sprung_doors,
                         settle_s=settle_s, **kwargs)
        self.pulse_ms = pulse_ms
        self.read_timeout_s = read_timeout_s
        self._items: tuple[bool, ...] | None = None

    def identify(self) -> BoardInfo:
        """From the config (the CU protocol has no identify in its main command set; its OTA
        "get version" frame is not used); one status read proves the unit answers."""
        self.states()
        self._info = BoardInfo(family=self.family, address=self.address, serial="unknown",
                               firmware="unknown", protocol="kerong CU STX/ETX/SUM",
                               locks=self.locks, sensors=self.locks, antennas=0,
                               capabilities=frozenset({"polled_states", "item_sensors"}))
        return self._info

    def set_pulse(self, pulse_ms: int) -> None:
        """Set the unit's unlock time (0x37, 10 ms units). Idempotent, so it is retried like
        a read."""
        pulse_ms = max(0, min(kerong.MAX_PULSE_MS, round(pulse_ms / 10) * 10))
        self._read(kerong.SetPulse(unit=self.address, pulse_ms=pulse_ms), kerong.PulseReply,
                   self.read_timeout_s)
        self.pulse_ms = pulse_ms

    def unlock(self, lock: int, *, pulse_ms: int | None = None,
               op_id: int | None = None) -> UnlockResult:
        """Pulse ``lock`` once (0x31); the reply is the unit's status after the pulse.

        Args:
            lock: 1-based lock number.
            pulse_ms: when given and different from the unit's unlock time, it is set first
                with 0x37 (a unit-wide setting).
            op_id: None for a new pulse. The protocol has none on the wire, so the driver
                remembers it: the op_id of an earlier call returns that call's result (or
                raises its DeviceTimeout / LockJammed again) and sends nothing.

        Raises:
            DeviceTimeout: no confirmation — the door may have opened; never re-sent.
            LockJammed: ``sprung_doors`` and the hook stayed closed (inferred).
            DeviceUnavailable, DeviceRejected: as for every board.
        """
        self._check_lock(lock)
        known = self._known_unlock(lock, op_id)
        if known is not None:
            return known
        if pulse_ms is not None and round(pulse_ms / 10) * 10 != self.pulse_ms:
            self.set_pulse(pulse_ms)
        timeout = self.pulse_ms / 1000 + UNLOCK_MARGIN_S
        op, reply = self._send_unlock(kerong.Unlock(unit=self.address, lock=lock), lock,
                                      timeout, op_id)
        self._items = reply.infrared[: self.locks]
        return self._confirmed(lock, op, not reply.hooks[lock - 1])

    def _read_raw(self) -> tuple[DoorState, ...]:
        reply = self._read(kerong.GetStatus(unit=self.address), kerong.StatusReply,
                           self.read_timeout_s)
        self._items = reply.infrared[: self.locks]
        return tuple(DoorState(lock=n, open=not reply.hooks[n - 1])
                     for n in range(1, self.locks + 1))

    def items_present(self, *, refresh: bool = True) -> tuple[bool, ...]:
        """The infrared "item present" sensor of each compartment, lock 1 first (what only
        this family tells; the RFID inventory remains the truth about *which* items)."""
        if refresh or self._items is None:
            self.states()
        assert self._items is not None
        return self._items

    def limits(self) -> list[str]:
        return [
            ("no event buffer: door changes are found by polling; an open+close between two "
             "polls is seen only when our unlock preceded it (inferred events)"),
            "no unlock identity: a lost unlock reply cannot be retried safely",
            "no forced-door flag: inferred from an opening without our unlock",
            "no jam flag: a stuck hook looks like a door that did not open",
            ("no serial or firmware version in the command set used; no counters, RFID or "
             "antenna diagnostics"),
            "at most 15 units on one bus (address nibble)",
        ]
