"""Contactless card reader (library cards, social-security cards) through PC/SC.

The cabinet reads a card's UID with the PC/SC part 3 pseudo-APDU GET DATA (``FF CA 00 00 00``)
that every contactless PC/SC reader answers for ISO 14443 cards, via pyscard's thin binding of
the PC/SC API (``smartcard.scard``) over pcsc-lite's pcscd. The low-level binding is used, not
pyscard's object layer, because its result codes tell apart "service down", "reader gone",
"no card" and "card refused", which is what :meth:`CardReader.status` and the typed errors need,
and because ``SCardGetStatusChange`` waits for card movement inside pcscd instead of polling.

pyscard is imported lazily: without it the rest of lendbox works and the reader reports
itself unavailable ("pyscard not installed").

A UID identifies a reader's card, so it is personal data: it is never logged or put in a
repr; logs carry :func:`uid_digest`, a short keyed hash.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from drivers.base import Availability, DeviceStatus
from drivers.errors import CardError, DeviceTimeout, DeviceUnavailable, DriverError

__all__ = [
    "GET_UID_APDU",
    "CardCommandRefused",
    "CardEvent",
    "CardInserted",
    "CardReader",
    "CardRemoved",
    "uid_digest",
]

log = logging.getLogger(__name__)

GET_UID_APDU = bytes.fromhex("FF CA 00 00 00")
SERVICE_DOWN = "PC/SC service not running"
NO_PYSCARD = "pyscard not installed"
_RETRY_MS = 100  # pause before re-reading a card whose exchange failed

# Keyed per process: a 4-byte UID has too few values for a plain hash to hide it.
_DIGEST_KEY = os.urandom(16)


def uid_digest(uid: bytes) -> str:
    """A short stable-per-process tag for a UID, for logs and diagnostics (never the UID)."""
    return hashlib.blake2s(uid, key=_DIGEST_KEY, digest_size=4).hexdigest()


# -- events ------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True, kw_only=True)
class CardEvent:
    """Something happened on a reader's field; ``reader`` is the PC/SC reader name."""

    reader: str


@dataclass(frozen=True, slots=True, kw_only=True)
class CardInserted(CardEvent):
    """A card entered the field and its UID was read."""

    uid: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.uid, bytes) or not self.uid:
            raise ValueError("uid must be non-empty bytes")

    @property
    def uid_digest(self) -> str:
        return uid_digest(self.uid)


@dataclass(frozen=True, slots=True, kw_only=True)
class CardRemoved(CardEvent):
    """The card reported by the last :class:`CardInserted` left the field (or can no longer
    be vouched for because the reader or the PC/SC service went away)."""


class CardCommandRefused(CardError):
    """The card (or the reader on its behalf) answered an APDU with a status word other than
    90 00, e.g. 6A 81 "function not supported" for GET DATA on a card without a UID."""

    def __init__(self, message: str, *, sw: int) -> None:
        super().__init__(message)
        self.sw = sw


# -- the PC/SC binding, errors mapped ----------------------------------------------------------
def _load_scard() -> ModuleType:
    try:
        from smartcard import scard
    except ImportError as exc:
        raise DeviceUnavailable(NO_PYSCARD) from exc
    return scard


class _Pcsc:
    """smartcard.scard calls with their result codes turned into the drivers' error tree."""

    def __init__(self, scard: ModuleType) -> None:
        self.s = scard
        def code(name: str) -> int:
            return int(getattr(scard, name)) & 0xFFFFFFFF

        self._service = {
            code(n)
            for n in (
                "SCARD_E_NO_SERVICE",
                "SCARD_E_SERVICE_STOPPED",
                "SCARD_E_INVALID_HANDLE",
                "SCARD_F_COMM_ERROR",
            )
        }
        self._reader = {
            code(n)
            for n in (
                "SCARD_E_NO_READERS_AVAILABLE",
                "SCARD_E_UNKNOWN_READER",
                "SCARD_E_READER_UNAVAILABLE",
            )
        }
        self._no_card = {code(n) for n in ("SCARD_E_NO_SMARTCARD", "SCARD_W_REMOVED_CARD")}
        self.timeout = code("SCARD_E_TIMEOUT")
        self.cancelled = code("SCARD_E_CANCELLED")
        self.success = code("SCARD_S_SUCCESS")

    def check(self, hresult: int, what: str) -> None:
        """Raise the drivers' error for a failed PC/SC call.

        Raises:
            DeviceUnavailable: service down or reader missing.
            DeviceTimeout: pcscd gave up waiting.
            CardError: anything about the card (absent, removed, mute, in use, ...).
        """
        rc = hresult & 0xFFFFFFFF
        if rc == self.success:
            return
        text = f"{what}: {self.s.SCardGetErrorMessage(hresult)} (0x{rc:08X})"
        if rc in self._service:
            raise DeviceUnavailable(f"{SERVICE_DOWN} ({text})")
        if rc in self._reader:
            raise DeviceUnavailable(f"card reader not found ({text})")
        if rc == self.timeout:
            raise DeviceTimeout(text)
        raise CardError(text)

    def is_no_card(self, exc: CardError) -> bool:
        return any(f"(0x{code:08X})" in str(exc) for code in self._no_card)

    def call(self, what: str, function: Callable[..., Any], *args: Any) -> Any:
        """Call a binding function returning ``(hresult, *values)``; check and strip hresult."""
        try:
            result = function(*args)
        except Exception as exc:  # the binding raises for bad arguments / internal errors
            raise CardError(f"{what}: {exc}") from exc
        if isinstance(result, (tuple, list)):
            self.check(result[0], what)
            return result[1] if len(result) == 2 else tuple(result[1:])
        self.check(result, what)
        return None


def _best_effort(what: str, function: Callable[..., Any], *args: Any) -> None:
    """Clean-up calls whose failure changes nothing (the context or card is already gone)."""
    try:
        function(*args)
    except Exception:
        log.debug("%s failed", what, exc_info=True)


# -- the driver --------------------------------------------------------------------------------
class CardReader:
    """One contactless PC/SC reader, chosen by a substring of its name.

    Every call opens its own short PC/SC context, so a restarted pcscd is picked up by the
    next call without any reconnect logic; the event watcher (:meth:`start`) keeps one context
    and re-establishes it every ``retry_interval`` while the service or reader is gone.
    Nothing touches PC/SC in the constructor.
    """

    def __init__(
        self,
        reader: str = "",
        *,
        poll_interval: float = 0.2,
        retry_interval: float = 1.0,
        scard: ModuleType | None = None,
    ) -> None:
        """
        Args:
            reader: case-insensitive substring of the reader name ("" = the first reader).
            poll_interval: longest a watcher wait lasts, i.e. how fast :meth:`stop` returns.
            retry_interval: pause between reconnect attempts while unavailable.
            scard: a ``smartcard.scard``-compatible module (tests); default: import pyscard.
        """
        self.reader_match = reader
        self._poll_ms = max(1, int(poll_interval * 1000))
        self._retry_interval = retry_interval
        self._scard = scard
        self._status = DeviceStatus(availability=Availability.UNAVAILABLE, reason="not checked yet")
        self._card_problem = ""  # last card read failure; makes status DEGRADED until a good read
        self._reader_name = ""
        self._watcher: threading.Thread | None = None
        self._watch_stop = threading.Event()
        self._watch_ctx: Any = None
        self._on_event: Callable[[CardEvent], None] | None = None
        self._inserted_on: str | None = None  # reader of the last CardInserted not yet removed

    # -- public API --------------------------------------------------------------------------
    def status(self) -> DeviceStatus:
        """ok / degraded / unavailable with a reason a technician can act on.

        While the watcher runs this is what it last saw; otherwise the service is asked now.
        """
        if self._watcher is None or not self._watcher.is_alive():
            try:
                with self._context() as (pcsc, ctx):
                    self._find_reader(pcsc, ctx)
                self._set_available()
            except DriverError as exc:
                self._status = DeviceStatus(availability=Availability.UNAVAILABLE, reason=str(exc))
        return self._status

    def read_uid(self, timeout: float = 0.0) -> bytes | None:
        """Wait up to ``timeout`` seconds for a card and return its UID.

        Returns:
            The UID bytes, or None when no card was in the field in time.
        Raises:
            DeviceUnavailable: pyscard missing, PC/SC service down, or no matching reader.
            CardCommandRefused: the card refused GET DATA (its status word is in ``sw``).
            CardError: the card left mid-read or could not be talked to.
        The reader is left as it was (the card is not reset).
        """
        deadline = time.monotonic() + max(0.0, timeout)
        with self._context() as (pcsc, ctx):
            reader = self._find_reader(pcsc, ctx)
            state = pcsc.s.SCARD_STATE_UNAWARE
            failure: CardError | None = None  # a card in the field that could not be read
            while True:
                remaining_ms = max(0, int((deadline - time.monotonic()) * 1000))
                if failure is not None:  # retry soon, even if pcscd saw no change
                    remaining_ms = min(remaining_ms, _RETRY_MS)
                rc, states = pcsc.s.SCardGetStatusChange(ctx, remaining_ms, [(reader, state)])
                if rc & 0xFFFFFFFF == pcsc.timeout:
                    if failure is None or time.monotonic() >= deadline:
                        if failure is not None:
                            raise failure
                        return None
                else:
                    pcsc.check(rc, "waiting for a card")
                    state = states[0][1] & ~pcsc.s.SCARD_STATE_CHANGED
                failure = None
                if self._present(pcsc, state):
                    try:
                        return self._exchange_uid(pcsc, ctx, reader)
                    except CardCommandRefused:
                        raise
                    except CardError as exc:
                        # A card moving in the field fails transiently (removed, transaction
                        # failed): try again after a state change or _RETRY_MS.
                        failure = None if pcsc.is_no_card(exc) else exc
                if time.monotonic() >= deadline:
                    if failure is not None:
                        raise failure
                    return None

    def transmit(self, apdu: bytes) -> bytes:
        """Send one APDU to the card in the field; return the response data without SW.

        Raises:
            CardCommandRefused: SW was not 90 00.
            CardError: no card, or the card was lost during the exchange.
            DeviceUnavailable: service or reader missing.
        """
        with self._context() as (pcsc, ctx):
            return self._exchange(pcsc, ctx, self._find_reader(pcsc, ctx), apdu)

    def start(self, on_event: Callable[[CardEvent], None]) -> None:
        """Watch the reader on a thread and call ``on_event`` with CardInserted / CardRemoved.

        The callback runs on the watcher thread; ``queue.Queue().put`` is a fine callback.
        The watcher survives pcscd restarts and reader unplugging (status says why meanwhile).
        """
        if self._watcher is not None and self._watcher.is_alive():
            raise RuntimeError("card reader watcher already running")
        self._on_event = on_event
        self._watch_stop.clear()
        self._watcher = threading.Thread(target=self._watch, name="card-reader", daemon=True)
        self._watcher.start()

    def stop(self) -> None:
        """Stop the watcher thread (cancels its pending PC/SC wait)."""
        self._watch_stop.set()
        ctx, scard = self._watch_ctx, self._scard
        if ctx is not None and scard is not None:
            # The context may be gone with pcscd; the wait then ends by itself.
            _best_effort("cancelling the watcher's wait", scard.SCardCancel, ctx)
        if self._watcher is not None:
            self._watcher.join(self._poll_ms / 1000 + 2.0)
            self._watcher = None

    close = stop

    def diagnostics(self) -> dict[str, Any]:
        """What a technician needs: which reader, its availability, whether the watcher runs."""
        return {
            "reader_match": self.reader_match,
            "reader": self._reader_name,
            "watching": self._watcher is not None and self._watcher.is_alive(),
            **self._status.as_dict(),
        }

    # -- internals ---------------------------------------------------------------------------
    def _pcsc(self) -> _Pcsc:
        if self._scard is None:
            self._scard = _load_scard()
        return _Pcsc(self._scard)

    @contextmanager
    def _context(self) -> Iterator[tuple[_Pcsc, Any]]:
        pcsc = self._pcsc()
        ctx = pcsc.call(
            "connecting to PC/SC", pcsc.s.SCardEstablishContext, pcsc.s.SCARD_SCOPE_USER
        )
        try:
            yield pcsc, ctx
        finally:
            _best_effort("releasing a PC/SC context", pcsc.s.SCardReleaseContext, ctx)

    def _find_reader(self, pcsc: _Pcsc, ctx: Any) -> str:
        try:
            readers = pcsc.call("listing readers", pcsc.s.SCardListReaders, ctx, [])
        except DeviceUnavailable as exc:
            if SERVICE_DOWN in str(exc):
                raise
            readers = []
        wanted = self.reader_match.lower()
        matching = sorted(r for r in readers or [] if wanted in r.lower())
        if not matching:
            raise DeviceUnavailable(
                f"no card reader matching {self.reader_match!r} (readers: {sorted(readers or [])})"
            )
        self._reader_name = matching[0]
        return matching[0]

    @staticmethod
    def _present(pcsc: _Pcsc, state: int) -> bool:
        return bool(state & pcsc.s.SCARD_STATE_PRESENT) and not state & pcsc.s.SCARD_STATE_MUTE

    def _exchange_uid(self, pcsc: _Pcsc, ctx: Any, reader: str) -> bytes:
        try:
            uid = self._exchange(pcsc, ctx, reader, GET_UID_APDU)
        except CardError as exc:
            if not pcsc.is_no_card(exc):
                self._card_problem = f"card present but its UID could not be read: {exc}"
            raise
        if not uid:
            self._card_problem = "card answered GET DATA with an empty UID"
            raise CardError(self._card_problem)
        self._card_problem = ""
        log.info("card %s read on %s", uid_digest(uid), reader)
        return uid

    @staticmethod
    def _exchange(pcsc: _Pcsc, ctx: Any, reader: str, apdu: bytes) -> bytes:
        s = pcsc.s
        card, protocol = pcsc.call(
            "connecting to the card",
            s.SCardConnect,
            ctx,
            reader,
            s.SCARD_SHARE_SHARED,
            s.SCARD_PROTOCOL_T0 | s.SCARD_PROTOCOL_T1,
        )
        try:
            response = bytes(
                pcsc.call("exchanging an APDU", s.SCardTransmit, card, protocol, list(apdu))
            )
        finally:
            _best_effort("disconnecting the card", s.SCardDisconnect, card, s.SCARD_LEAVE_CARD)
        if len(response) < 2:
            raise CardError(f"card answer too short ({len(response)} bytes)")
        sw = int.from_bytes(response[-2:], "big")
        if sw != 0x9000:
            raise CardCommandRefused(
                f"card refused APDU {apdu[:4].hex(' ').upper()}: SW {sw:04X}", sw=sw
            )
        return response[:-2]

    def _set_available(self) -> None:
        if self._card_problem:
            self._status = DeviceStatus(
                availability=Availability.DEGRADED, reason=self._card_problem
            )
        else:
            self._status = DeviceStatus(availability=Availability.OK)

    def _emit(self, event: CardEvent) -> None:
        if self._on_event is None:
            return
        try:
            self._on_event(event)
        except Exception:
            log.exception("card event callback failed")

    def _watch(self) -> None:
        """The watcher: wait for state changes, read UIDs, emit events, reconnect on loss."""
        self._inserted_on = None
        while not self._watch_stop.is_set():
            try:
                pcsc = self._pcsc()
                ctx = pcsc.call(
                    "connecting to PC/SC", pcsc.s.SCardEstablishContext, pcsc.s.SCARD_SCOPE_USER
                )
            except DriverError as exc:
                self._watch_unavailable(exc)
                self._watch_stop.wait(self._retry_interval)
                continue
            self._watch_ctx = ctx
            try:
                self._watch_session(pcsc, ctx)
            except DriverError as exc:
                if self._inserted_on is not None:  # unknown, not stale: can't vouch for the card
                    self._emit(CardRemoved(reader=self._inserted_on))
                    self._inserted_on = None
                self._watch_unavailable(self._diagnose(exc))
                self._watch_stop.wait(self._retry_interval)
            finally:
                self._watch_ctx = None
                _best_effort("releasing a PC/SC context", pcsc.s.SCardReleaseContext, ctx)

    def _diagnose(self, exc: DriverError) -> DriverError:
        """Turn a watcher failure into its cause: a dying pcscd first answers odd codes
        (e.g. "Access denied") before it stops answering at all."""
        if isinstance(exc, DeviceUnavailable):
            return exc
        try:
            with self._context() as (pcsc, ctx):
                self._find_reader(pcsc, ctx)
        except DeviceUnavailable as cause:
            return cause
        except DriverError:
            pass
        return exc

    def _watch_unavailable(self, exc: DriverError) -> None:
        if self._status.availability is not Availability.UNAVAILABLE or self._status.reason != str(
            exc
        ):
            log.warning("card reader unavailable: %s", exc)
        self._status = DeviceStatus(availability=Availability.UNAVAILABLE, reason=str(exc))

    def _watch_session(self, pcsc: _Pcsc, ctx: Any) -> None:
        """Follow one reader on one context until stopped; raises when either is lost."""
        s = pcsc.s
        reader = self._find_reader(pcsc, ctx)
        self._set_available()
        known = s.SCARD_STATE_UNAWARE
        while not self._watch_stop.is_set():
            rc, states = s.SCardGetStatusChange(ctx, self._poll_ms, [(reader, known)])
            if rc & 0xFFFFFFFF in (pcsc.timeout, pcsc.cancelled):
                continue
            pcsc.check(rc, "watching the reader")
            state = states[0][1]
            if state & (s.SCARD_STATE_UNKNOWN | s.SCARD_STATE_UNAVAILABLE):
                raise DeviceUnavailable(f"card reader {reader!r} went away")
            # pcsc-lite counts card events in the high word: a quick remove + insert between
            # two waits still shows as a new card.
            new_card = (state >> 16) != (known >> 16) and known != s.SCARD_STATE_UNAWARE
            known = state & ~s.SCARD_STATE_CHANGED
            present = self._present(pcsc, state)
            if self._inserted_on is not None and (not present or new_card):
                self._emit(CardRemoved(reader=self._inserted_on))
                self._inserted_on = None
            if present and self._inserted_on is None:
                try:
                    uid = self._exchange_uid(pcsc, ctx, reader)
                except CardError as exc:
                    if not pcsc.is_no_card(exc):
                        log.warning("card on %s unreadable: %s", reader, exc)
                    self._set_available()
                    continue
                self._set_available()
                self._emit(CardInserted(reader=reader, uid=uid))
                self._inserted_on = reader
