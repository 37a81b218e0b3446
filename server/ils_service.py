"""Forwarding the outbox to the library's ILS in the background: the wiring of issue [5/6].

How the pieces fit (requirement 3, "store-and-forward, exactly once"):

- **The outbox is always written.** :func:`server.ingest.apply_event` queues every applied
  loan (→ checkout) and return (→ checkin) with :func:`server.ils_outbox.enqueue_event`, in the
  same transaction as the event itself, *whether or not an ILS is configured*. The outbox is
  the record of what the ILS must get: a server run without an ILS (a pilot, an outage of
  the configuration, a new library not connected yet) only lets the rows wait as
  ``pending``, and the first run with ``LENDBOX_ILS_HOST`` set forwards them all, in order.
  Re-sent and replayed batches queue nothing more (``kind`` + event uuid are unique).
- **One background thread forwards.** :class:`IlsService` runs
  :meth:`server.ils_outbox.Forwarder.run_once` every ``ils_interval_s`` seconds over a
  :class:`server.sip2_client.SIP2Client` (one pooled connection, opened lazily, reopened
  after the ILS dropped it); while a pass finds work the next one follows at once. The
  forwarder's rules give exactly once: a row is committed as ``sent`` before its request
  goes out, and a row whose answer was lost is resolved by asking the ILS (item / patron
  information) before anything is sent again.
- **Outages are waited out.** An unreachable ILS ends the pass
  (:class:`~server.ils_outbox.IlsUnreachable`); the next interval tries again. Any other error
  of a pass is logged and the thread goes on. Logs name counts and exception types only —
  never reader ids, nor exception texts that could carry them (SQL parameters, SIP2 fields).
- **Stopping is prompt.** :meth:`IlsService.stop` sets a flag the port checks before every
  request (a stopped service sends nothing new; what is in flight ends within the client's
  timeout and is resolved by lookup on the next start) and closes the client.

``lendbox server run`` starts the service when the ILS is configured (``--ils HOST:PORT`` or
``LENDBOX_ILS_*``, see :mod:`server.settings`) and stops it on shutdown. Staff see the
reconciliation at ``GET /api/ils/outbox`` (:mod:`server.routes_ils`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime

import sip2proto
from sqlalchemy import Engine

from .ils_outbox import Entry, Forwarder, IlsAnswer, IlsItemView, IlsPort, IlsUnreachable
from .ils_port import SIP2IlsPort
from .settings import Settings
from .sip2_client import ClientConfig, SIP2Client

__all__ = ["IlsService", "client_config"]

_log = logging.getLogger(__name__)

#: how long one SIP2 answer may take before it counts as lost (kept short: stop waits for it).
ANSWER_TIMEOUT_S = 5.0


def client_config(settings: Settings) -> ClientConfig:
    """The SIP2 client's configuration from the server's settings (ValueError without an ILS)."""
    if not settings.ils_host:
        raise ValueError("no ILS configured (LENDBOX_ILS_HOST is not set)")
    return ClientConfig(host=settings.ils_host, port=settings.ils_port, user=settings.ils_user,
                        password=settings.ils_password, location=settings.ils_location,
                        institution_id=settings.ils_institution,
                        profile=sip2proto.PROFILES[settings.ils_profile],
                        timeout_s=ANSWER_TIMEOUT_S, connect_timeout_s=ANSWER_TIMEOUT_S,
                        reconnect_attempts=2, backoff_s=0.2, backoff_max_s=1.0)


class _Stoppable:
    """An :class:`IlsPort` that sends nothing once the service stops (nothing sent: the
    forwarder ends its pass and the row stays as it was)."""

    def __init__(self, port: IlsPort, stopping: threading.Event) -> None:
        self.port = port
        self.stopping = stopping

    def _check(self) -> None:
        if self.stopping.is_set():
            raise IlsUnreachable("the ILS service is stopping")

    def send(self, entry: Entry) -> IlsAnswer:
        self._check()
        return self.port.send(entry)

    def lookup(self, entry: Entry) -> IlsItemView:
        self._check()
        return self.port.lookup(entry)


class IlsService:
    """Forwards the outbox to the configured ILS from a background thread.

    Args:
        engine: the server's database.
        settings: ``ils_*`` say where the ILS is and how often to forward.
        port: the :class:`IlsPort` to use instead of SIP2 (tests); the service then owns no
            client.
        clock: the outbox's clock (UTC).
    """

    def __init__(self, engine: Engine, settings: Settings, *, port: IlsPort | None = None,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        if port is None and not settings.ils_configured:
            raise ValueError("no ILS configured (LENDBOX_ILS_HOST is not set)")
        self.engine = engine
        self.settings = settings
        self.interval_s = settings.ils_interval_s
        self._stopping = threading.Event()
        self._client: SIP2Client | None = None
        if port is None:
            self._client = SIP2Client(client_config(settings))
            port = SIP2IlsPort(self._client)
        self.forwarder = Forwarder(engine, _Stoppable(port, self._stopping), clock=clock)
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        #: passes run, the last pass's counts, and the totals (for status and tests).
        self.passes = 0
        self.last: dict[str, int] = {}
        self.totals: dict[str, int] = {}
        self.reachable: bool | None = None
        self.failures = 0

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> IlsService:
        """Start the thread (a first pass at once, then one every interval); returns self."""
        if self.running:
            return self
        self._stopping.clear()
        self._thread = threading.Thread(target=self._loop, name="ils-forwarder", daemon=True)
        self._thread.start()
        target = f"{self.settings.ils_host}:{self.settings.ils_port}" \
            if self.settings.ils_configured else "a test port"
        _log.info("forwarding circulation to the ILS at %s every %.1f s", target,
                  self.interval_s)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop forwarding: no new request goes out; waits for the thread (up to
        ``timeout``) and closes the SIP2 connections."""
        self._stopping.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout)
        if self._client is not None:
            self._client.close()

    def __enter__(self) -> IlsService:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def run_once(self) -> dict[str, int]:
        """One forwarding pass now (what the thread does every interval); its counts.

        Never raises for an unreachable ILS (``unreachable`` counts it) nor for any other
        error of the pass (logged by type, counted as ``failed``)."""
        with self._lock:
            try:
                done = self.forwarder.run_once()
            except Exception as exc:  # a broken pass must not end forwarding for good
                self.failures += 1
                _log.error("ILS forwarding pass failed (%s); retrying in %.1f s",
                           type(exc).__name__, self.interval_s)
                done = {"failed": 1}
            self.passes += 1
            self.last = done
            for key, value in done.items():
                self.totals[key] = self.totals.get(key, 0) + value
            self._note_reachability(done)
            return done

    def _note_reachability(self, done: dict[str, int]) -> None:
        if self._stopping.is_set() or "failed" in done:
            return
        reachable = not done.get("unreachable")
        if reachable != self.reachable:
            if reachable:
                if self.reachable is False:
                    _log.warning("the ILS is reachable again; forwarding resumes")
            else:
                _log.warning("the ILS cannot be reached; the outbox waits and forwarding "
                             "retries every %.1f s", self.interval_s)
            self.reachable = reachable
        if done.get("confirmed") or done.get("rejected") or done.get("lost"):
            _log.info("ILS forwarding: %d confirmed, %d rejected, %d answers lost",
                      done.get("confirmed", 0), done.get("rejected", 0), done.get("lost", 0))

    def _loop(self) -> None:
        while not self._stopping.is_set():
            done = self.run_once()
            busy = any(done.get(k) for k in ("confirmed", "rejected", "looked_up", "lost"))
            if busy and not done.get("unreachable") and "failed" not in done:
                continue  # a backlog: the next pass at once (a pass is one batch)
            if self._stopping.wait(self.interval_s):
                break
