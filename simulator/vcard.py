"""A virtual contactless card on a vpcd reader: the bytes a real PC/SC reader would give.

vsmartcard's vpcd driver makes pcscd show a reader that waits for a "card" to connect over
TCP. This module is that card. A real contactless reader (PC/SC part 3) presents an ISO 14443
card with a synthesised ATR and answers the pseudo-APDU GET DATA ``FF CA 00 00 00`` with the
card's UID; :class:`VirtualCard` does the same, so the driver's production path
(pyscard → libpcsclite → pcscd → IFD driver) runs unchanged in tests and the demo.

vpcd wire protocol (both directions): 2-byte big-endian length, then that many bytes.
From pcscd, length 1 is a control code (0x00 power off, 0x01 power on, 0x02 reset,
0x04 "send ATR"; only 0x04 is answered, with the ATR); any other length is a command APDU,
answered with response data + SW1 SW2. Closing the socket means the card left the field;
connecting again means it came back.
"""

from __future__ import annotations

import logging
import socket
import struct
import threading
import time
from dataclasses import dataclass
from typing import Self

__all__ = ["MIFARE_CLASSIC_1K_ATR", "CardProfile", "VirtualCard", "answer_apdu", "contactless_atr"]

log = logging.getLogger(__name__)

CTRL_POWER_OFF = 0x00
CTRL_POWER_ON = 0x01
CTRL_RESET = 0x02
CTRL_ATR = 0x04

SW_OK = b"\x90\x00"
SW_WRONG_LENGTH = 0x6C  # 6C XX: wrong Le, XX = the right one
SW_FUNCTION_NOT_SUPPORTED = b"\x6a\x81"
SW_WRONG_P1P2 = b"\x6b\x00"
SW_INS_NOT_SUPPORTED = b"\x6d\x00"
SW_CLA_NOT_SUPPORTED = b"\x6e\x00"

_MAX_MESSAGE = 0xFFFF


def contactless_atr(standard: int = 0x03, card_name: int = 0x0001) -> bytes:
    """Build the ATR a PC/SC part 3 reader synthesises for a contactless storage card.

    Layout (PC/SC part 3, §3.1.3.2.3): 3B 8F 80 01 80 4F 0C, then RID A0 00 00 03 06, the
    standard byte (03 = ISO 14443 A part 3), a 2-byte card name (0001 = MIFARE Classic 1K),
    four RFU zero bytes, and TCK, the XOR of every byte after TS.
    """
    body = (
        bytes.fromhex("8F 80 01 80 4F 0C A0 00 00 03 06")
        + bytes([standard])
        + card_name.to_bytes(2, "big")
        + bytes(4)
    )
    tck = 0
    for byte in body:
        tck ^= byte
    return b"\x3b" + body + bytes([tck])


MIFARE_CLASSIC_1K_ATR = contactless_atr()


@dataclass(frozen=True, slots=True, kw_only=True)
class CardProfile:
    """What the card in the field is: its UID, ATR and an optional fault to inject."""

    uid: bytes
    atr: bytes = MIFARE_CLASSIC_1K_ATR
    refuse_get_data: bool = False  # answer GET DATA with 6A 81, as some readers do for some cards

    def __post_init__(self) -> None:
        if len(self.uid) not in (4, 7, 10):
            raise ValueError("an ISO 14443 UID is 4, 7 or 10 bytes")
        if not 2 <= len(self.atr) <= 33:
            raise ValueError("an ATR is 2 to 33 bytes")

    def __repr__(self) -> str:
        return f"CardProfile(uid=<{len(self.uid)} bytes>, refuse_get_data={self.refuse_get_data})"


def answer_apdu(profile: CardProfile, apdu: bytes) -> bytes:
    """Answer one command APDU the way a PC/SC contactless reader answers for its card."""
    if len(apdu) < 4:
        return SW_WRONG_P1P2 if len(apdu) else SW_INS_NOT_SUPPORTED
    cla, ins, p1, p2 = apdu[:4]
    if cla != 0xFF:
        return SW_CLA_NOT_SUPPORTED if ins == 0xCA else SW_INS_NOT_SUPPORTED
    if ins != 0xCA:
        return SW_INS_NOT_SUPPORTED
    if p1 not in (0x00, 0x01) or p2 != 0x00:
        return SW_WRONG_P1P2
    if profile.refuse_get_data:
        return SW_FUNCTION_NOT_SUPPORTED
    data = profile.uid if p1 == 0x00 else _historical_bytes(profile.atr)
    le = apdu[4] if len(apdu) == 5 else 0
    if le and le != len(data):
        return bytes([SW_WRONG_LENGTH, len(data)])
    return data + SW_OK


def _historical_bytes(atr: bytes) -> bytes:
    return atr[4 : 4 + (atr[1] & 0x0F)] if len(atr) > 4 else b""


class VirtualCard:
    """A card that can be put on and taken off one vpcd reader slot.

    ``insert`` connects to pcscd's vpcd port and serves it from a thread; ``remove`` closes
    the connection (pcscd sees the card leave) and joins the thread. While a card is inserted
    and pcscd goes away, the thread keeps reconnecting, as a card lying on a reader that is
    power-cycled is seen again when it comes back.
    """

    def __init__(
        self,
        port: int,
        host: str = "127.0.0.1",
        *,
        reconnect_interval: float = 0.05,
        swap_gap: float = 0.5,
    ) -> None:
        """
        Args:
            port: pcscd's vpcd port for the slot (see simulator.pcscd.PrivatePcscd.vpcd_ports).
            reconnect_interval: pause between connection attempts while pcscd is away.
            swap_gap: how long the field stays empty when insert() replaces a card.
        """
        self._address = (host, port)
        self._reconnect_interval = reconnect_interval
        self._swap_gap = swap_gap
        self._lock = threading.Lock()
        self._profile: CardProfile | None = None
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.connected = threading.Event()  # set while pcscd holds our connection

    @property
    def inserted(self) -> bool:
        return self._profile is not None

    def insert(
        self, uid: bytes, *, refuse_get_data: bool = False, atr: bytes | None = None
    ) -> None:
        """Put a card with this UID on the reader (removing the card that was there).

        Returns once the connection is made, so pcscd will report the card on its next poll.

        Raises:
            ValueError: the UID or ATR has an impossible length.
            ConnectionError: pcscd's vpcd port did not accept within 2 s.
        """
        profile = CardProfile(
            uid=uid, refuse_get_data=refuse_get_data, atr=atr or MIFARE_CLASSIC_1K_ATR
        )
        if self.inserted:
            # A hand swapping cards leaves the field empty for a moment; without that gap
            # pcscd (which polls every 400 ms) would never see the first card go.
            self.remove()
            time.sleep(self._swap_gap)
        self._profile = profile
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._serve, name=f"vcard:{self._address[1]}", daemon=True
        )
        self._thread.start()
        if not self.connected.wait(2.0):
            self.remove()
            raise ConnectionError(f"vpcd port {self._address[1]} did not accept the card")

    def remove(self) -> None:
        """Take the card off the reader; a no-op when none is there."""
        self._stop.set()
        with self._lock:
            if self._sock is not None:
                try:
                    self._sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(2.0)
        self._profile = None
        self.connected.clear()

    close = remove

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()

    # -- the card's thread -------------------------------------------------------------------
    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                sock = socket.create_connection(self._address, timeout=1.0)
            except OSError:
                self._stop.wait(self._reconnect_interval)
                continue
            sock.settimeout(None)
            with self._lock:
                if self._stop.is_set():
                    sock.close()
                    break
                self._sock = sock
            self.connected.set()
            try:
                self._session(sock)
            except OSError as exc:
                log.debug("vpcd connection on port %d ended: %s", self._address[1], exc)
            finally:
                self.connected.clear()
                with self._lock:
                    self._sock = None
                sock.close()
            self._stop.wait(self._reconnect_interval)

    def _session(self, sock: socket.socket) -> None:
        profile = self._profile
        assert profile is not None
        while True:
            message = _receive(sock)
            if message is None:
                return
            if len(message) == 1:
                if message[0] == CTRL_ATR:
                    _send(sock, profile.atr)
                # power off / on / reset: no answer expected
                continue
            _send(sock, answer_apdu(profile, message))


def _receive(sock: socket.socket) -> bytes | None:
    header = _receive_exactly(sock, 2)
    if header is None:
        return None
    (length,) = struct.unpack("!H", header)
    return _receive_exactly(sock, length) if length else b""


def _receive_exactly(sock: socket.socket, size: int) -> bytes | None:
    chunks = bytearray()
    while len(chunks) < size:
        chunk = sock.recv(size - len(chunks))
        if not chunk:
            return None
        chunks += chunk
    return bytes(chunks)


def _send(sock: socket.socket, payload: bytes) -> None:
    if len(payload) > _MAX_MESSAGE:
        raise ValueError("vpcd message too long")
    sock.sendall(struct.pack("!H", len(payload)) + payload)
