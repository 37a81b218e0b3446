"""Remote commands and the status report, on the cabinet's side.

Why it works this way:

- **At most once.** A command's id is written to the ledger (meta ``commands_seen``) *before*
  the cabinet acts on it: the server re-sends every command until its result arrives, and a
  replayed reply must never open a door twice. A command the kiosk started but did not
  finish (a crash in between) is answered ``failed`` / ``interrupted`` at the next start —
  it is not run again.
- **Results survive a crash.** A result goes to the ledger (meta ``command_results``) and
  rides with every batch until a reply to that batch came back (:class:`ResultStore`);
  the server keeps the first result of a command, so re-sending is harmless.
- **Never late.** A command past its ``expires_at`` (on the corrected clock) is not run but
  answered ``failed`` / ``expired``: a door opening long after the reader left is a risk.
- **The engine does the physical part.** ``open_door`` and ``reinventory`` go through the
  runtime's one engine thread like every other event (``KioskRuntime.submit``), so they
  cannot race a session. The machine has no event of its own for them; an intercepting
  wrapper of ``Machine.handle`` (installed in :meth:`RemoteCommands.start`) turns our two
  event types into the machine's ordinary commands: ``open_door`` is an unlock with the
  ``stray`` purpose (a door opened with no reader: whatever is taken or put in is an alarm
  for staff, exactly as for any door opened without a session, and it is counted on
  close); ``reinventory`` counts every door with the rules of recovery (no reader), so the
  ledger's contents — and the snapshots of the next batch — are what the antennas see.
- **Refusals are answers.** ``open_door`` is refused (``failed`` with ``reason``) while a
  session runs or that door is open or being counted; ``reinventory`` waits up to
  :data:`BUSY_WAIT_S` for the cabinet to be idle, then gives up with ``busy``.

Open alarms in the status: door-level alarms (a door left open, forced, a lock that did not
unlock, a count that failed) raised *after* that door's last successful count. A count of
the door clears them, since it is what settles what happened there.
"""

from __future__ import annotations

import functools
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from typing import TYPE_CHECKING, Any

from syncproto.messages import CabinetStatus, Command, CommandResult, DoorFill, StatusAlarm

from . import machine as mc

if TYPE_CHECKING:
    from .ledger import Ledger
    from .runtime import KioskRuntime

__all__ = ["BUSY_WAIT_S", "ALARM_SCAN", "RemoteCommands", "ResultStore", "kiosk_version"]

_log = logging.getLogger(__name__)

#: How long a re-inventory waits for a session to end before it is answered ``busy``.
BUSY_WAIT_S = 120.0
#: At start, how many of the newest events are scanned for alarms still open.
ALARM_SCAN = 2000
#: How many executed command ids the ledger remembers (far more than one expiry window).
_SEEN_MAX = 500
_SEEN_KEY = "commands_seen"
_RESULTS_KEY = "command_results"


@functools.cache
def kiosk_version() -> str:
    try:
        return metadata.version("lendbox")
    except metadata.PackageNotFoundError:
        return "unknown"


class ResultStore:
    """Command results waiting to be sent, kept in the ledger's meta (see module doc)."""

    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger
        self._lock = threading.Lock()

    def add(self, result: CommandResult) -> None:
        with self._lock:
            rows = [r for r in self._ledger.get_meta(_RESULTS_KEY, []) or []
                    if r.get("id") != result.id]
            rows.append(result.model_dump(mode="json"))
            self._ledger.set_meta(_RESULTS_KEY, rows)

    def pending(self) -> list[CommandResult]:
        with self._lock:
            rows = self._ledger.get_meta(_RESULTS_KEY, []) or []
        out = []
        for row in rows:
            try:
                out.append(CommandResult.model_validate(row))
            except ValueError:  # written by a newer kiosk, or damaged: cannot be sent
                _log.warning("commands: dropping an unreadable stored result")
        return out

    def delivered(self, ids: Iterable[int]) -> None:
        gone = set(ids)
        if not gone:
            return
        with self._lock:
            rows = self._ledger.get_meta(_RESULTS_KEY, []) or []
            self._ledger.set_meta(_RESULTS_KEY, [r for r in rows if r.get("id") not in gone])


@dataclass(frozen=True, slots=True)
class _RemoteOpen:
    """Engine event: unlock ``door`` for a stuck reader (no session)."""

    door: int


@dataclass(frozen=True, slots=True)
class _RemoteCount:
    """Engine event: count every door now."""


class _Refused(Exception):
    def __init__(self, reason: str, **detail: Any) -> None:
        super().__init__(reason)
        self.reason = reason
        self.detail = detail


class RemoteCommands:
    """Executes the server's commands for one running cabinet and builds its status."""

    def __init__(self, runtime: KioskRuntime) -> None:
        assert runtime.ledger is not None and runtime.machine is not None
        self.runtime = runtime
        self.ledger = runtime.ledger
        self.results = ResultStore(runtime.ledger)
        self._queue: queue.Queue[Command | None] = queue.Queue()
        self._seen_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._unlocks: dict[int, tuple[bool, str]] = {}
        self._alarms: dict[int, StatusAlarm] = {}  # door → its newest door-level alarm
        self._scanned = max(0, self.ledger.last_seq() - ALARM_SCAN)
        self._handle: Callable[[Any, float], list[Any]] | None = None

    # ------------------------------------------------------------ life cycle
    def start(self) -> RemoteCommands:
        """Install the engine hook, answer commands a crash interrupted, attach to the agent
        (before it starts: the first batch carries the status) and start the worker."""
        machine = self.runtime.machine
        assert machine is not None
        self._handle = machine.handle
        machine.handle = self._engine_handle  # type: ignore[method-assign]
        self._answer_interrupted()
        agent = self.runtime.agent
        if agent is not None:
            agent.status_provider = self.status
            agent.command_sink = self.receive
            agent.results = self.results
        self._thread = threading.Thread(target=self._work, name="kiosk-commands", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._queue.put(None)
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    # ------------------------------------------------------------ receiving
    def _seen(self) -> dict[str, str]:
        return dict(self.ledger.get_meta(_SEEN_KEY, {}) or {})

    def receive(self, commands: list[Command]) -> None:
        """From a sync reply: queue each command this cabinet has not seen (returns at once)."""
        with self._seen_lock:
            seen = self._seen()
            fresh = [c for c in commands if str(c.id) not in seen]
            if not fresh:
                return
            for c in fresh:
                seen[str(c.id)] = "started"
            # durable before anything happens: a replay, a restart never runs it again
            keep = sorted(seen, key=int)[-_SEEN_MAX:]
            self.ledger.set_meta(_SEEN_KEY, {k: seen[k] for k in keep})
        for c in fresh:
            self._queue.put(c)

    def _mark(self, command_id: int, state: str) -> None:
        with self._seen_lock:
            seen = self._seen()
            seen[str(command_id)] = state
            self.ledger.set_meta(_SEEN_KEY, seen)

    def _answer_interrupted(self) -> None:
        for key, state in self._seen().items():
            if state == "started":
                self._finish(int(key), "failed", {"reason": "interrupted",
                                                  "detail": "the cabinet restarted meanwhile"})

    def _finish(self, command_id: int, status: str, result: dict[str, Any]) -> None:
        self.results.add(CommandResult(id=command_id, status=status,  # type: ignore[arg-type]
                                       result=result, finished_at=self._now()))
        self._mark(command_id, status)
        agent = self.runtime.agent
        if agent is not None:
            agent.kick()

    def _now(self) -> datetime:
        """The cabinet clock corrected by the offset the agent measured (as events use)."""
        try:
            offset = float(self.ledger.get_meta("clock_offset_s", 0.0) or 0.0)
        except (TypeError, ValueError):
            offset = 0.0
        return datetime.fromtimestamp(self.runtime.clock() + offset, UTC)

    # ------------------------------------------------------------ executing
    def _work(self) -> None:
        while not self._stop.is_set():
            command = self._queue.get()
            if command is None:
                break
            try:
                status, result = self.execute(command)
            except Exception as exc:  # noqa: BLE001 - answer, never die
                _log.exception("commands: %s %d failed", command.kind, command.id)
                status, result = "failed", {"reason": "error", "detail": type(exc).__name__}
            _log.info("commands: %s %d → %s", command.kind, command.id, status)
            self._finish(command.id, status, result)

    def execute(self, command: Command) -> tuple[str, dict[str, Any]]:
        """Run one command now; (``done``|``failed``, result)."""
        if self._now() > command.expires_at:
            return "failed", {"reason": "expired",
                              "detail": "the command arrived after its expiry"}
        try:
            if command.kind == "open_door":
                return "done", self._open_door(command)
            if command.kind == "reinventory":
                return "done", self._reinventory(command)
            return "done", self._diagnostics()
        except _Refused as exc:
            return "failed", {"reason": exc.reason, **exc.detail}

    def _open_door(self, command: Command) -> dict[str, Any]:
        door = command.args.get("door")
        if not isinstance(door, int) or door not in self.runtime.config.doors:
            raise _Refused("no_such_door", door=door)
        self._unlocks.pop(door, None)
        try:
            self.runtime.submit(_RemoteOpen(door))
        except mc.MachineError as exc:
            raise _Refused(str(exc), door=door) from None
        ok, why = self._unlocks.pop(door, (False, "no answer"))
        if not ok:
            raise _Refused("unlock_failed", door=door, detail=why)
        _log.info("commands: door %d unlocked remotely (command %d)", door, command.id)
        return {"door": door, "unlocked": True, "confirmed": why != "unconfirmed"}

    def _reinventory(self, command: Command) -> dict[str, Any]:
        deadline = time.monotonic() + min(BUSY_WAIT_S, max(
            0.0, (command.expires_at - self._now()).total_seconds()))
        while True:
            try:
                self.runtime.submit(_RemoteCount(), timeout=120.0)
                break
            except mc.MachineError as exc:
                if time.monotonic() >= deadline or self._stop.is_set():
                    raise _Refused("busy", detail=str(exc)) from None
                self._stop.wait(1.0)
        machine = self.runtime.machine
        assert machine is not None
        contents = self.ledger.all_contents()
        doors = {str(n): {"count": len(contents.get(n, {})),
                          "unreadable": sum(1 for c in contents.get(n, {}).values()
                                            if not c.item_id)}
                 for n in sorted(self.runtime.config.doors)}
        failed = sorted(machine.uncounted)
        return {"doors": doors, "total": sum(d["count"] for d in doors.values()),
                "failed_doors": failed}

    def _diagnostics(self) -> dict[str, Any]:
        try:
            from . import diag_bundle
        except ImportError:
            diag_bundle = None  # type: ignore[assignment]
        if diag_bundle is not None and hasattr(diag_bundle, "summary"):
            summary: dict[str, Any] = diag_bundle.summary(self.runtime)
            return {"source": "diag_bundle.summary", **summary}
        # fallback while the technician part has no summary: the runtime's own health
        return {"source": "runtime.health", "health": self.runtime.health()}

    # ------------------------------------------------------------ engine side
    def _engine_handle(self, event: Any, now: float) -> list[Any]:
        """``Machine.handle`` with our two events (runs on the engine thread only)."""
        machine = self.runtime.machine
        assert machine is not None and self._handle is not None
        if isinstance(event, _RemoteOpen):
            return self._engine_open(machine, event.door)
        if isinstance(event, _RemoteCount):
            return self._engine_count(machine, now)
        if isinstance(event, mc.UnlockDone):
            run = machine.runs.get(event.door)
            if run is not None and run.phase == "unlocking" and run.purpose == "stray":
                self._unlocks[event.door] = (event.ok, event.reason or "")
        return self._handle(event, now)

    def _engine_open(self, machine: mc.Machine, door: int) -> list[Any]:
        if door not in machine.doors:
            raise mc.MachineError("no_such_door")
        if machine.session is not None:
            raise mc.MachineError("session_running")
        run = machine.runs.get(door)
        if run is not None and run.phase != "done":
            raise mc.MachineError("door_" + run.phase)  # door_open, door_counting…
        out: list[Any] = []
        machine._unlock(door, "stray", out)  # noqa: SLF001 - the machine's own unlock path
        return out

    def _engine_count(self, machine: mc.Machine, now: float) -> list[Any]:
        if machine.busy:
            raise mc.MachineError("session_running" if machine.session else "doors_busy")
        out: list[Any] = []
        for door in sorted(machine.doors):
            out.extend(machine.recover(door, kind="stray", session=None, patron=None,
                                       expect_back=(), door_open=False, now=now))
        return out

    # ------------------------------------------------------------ status
    def _scan_alarms(self) -> None:
        while True:
            batch = self.ledger.events_after(self._scanned, limit=500)
            if not batch:
                return
            for event in batch:
                p = event.payload
                door = p.get("door")
                if event.kind == "alarm" and "item_id" not in p and isinstance(door, int) \
                        and 1 <= door <= 999:
                    self._alarms[door] = StatusAlarm(kind=str(p.get("reason", "alarm"))[:64],
                                                     door=door, at=event.at)
            self._scanned = batch[-1].seq

    def open_alarms(self) -> list[StatusAlarm]:
        """Door-level alarms raised after that door's last count (see module doc)."""
        self._scan_alarms()
        counted = {s.door: s.taken_at for s in self.ledger.door_snapshots()}
        out = []
        for door, alarm in sorted(self._alarms.items()):
            last = counted.get(door)
            if last is None or _aware(last) < _aware(alarm.at):
                out.append(alarm)
        return out

    def status(self) -> CabinetStatus:
        """What the cabinet tells the fleet overview with each batch."""
        runtime = self.runtime
        hw = runtime.hardware
        assert hw is not None
        devices: dict[str, str] = {}
        for address, board in hw.boards.items():
            devices[f"board-{address}"] = board.status().availability.value
        for number, reader in hw.readers.items():
            devices[f"reader-{number}"] = reader.status().availability.value
        if hw.card_reader is not None:
            devices["card_reader"] = hw.card_reader.status().availability.value
        contents = self.ledger.all_contents()
        fill = [DoorFill(door=n, count=len(contents.get(n, {})), capacity=max(0, d.capacity))
                for n, d in sorted(runtime.config.doors.items())]
        return CabinetStatus(
            reported_at=self._now(), kiosk_version=kiosk_version(), devices=devices,
            open_alarms=self.open_alarms(), fill=fill,
            offline_exposure=self.ledger.unsynced_offline_loans(),
            offline_exposure_cap=max(0, runtime.config.policy.offline_exposure_cap),
            pending_events=self.ledger.pending())


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
