"""The I/O shell around the session machine: ledger, devices, sync, and one engine thread.

Why one engine thread: the machine is not thread-safe and must see events in one order. The
API handlers, the board-event pollers and the clock only *enqueue* events; the engine runs
the machine and executes its commands (write the intent, pulse the lock, inventory, commit)
one after another. Nothing physical happens before the ledger says it may.

Start-up order (each step finishes before the next):
1. open the ledger and the cabinet key;
2. recovery: every intent a crash left open is finished by counting its door (the physical
   contents are the truth); a door without a baseline is counted once;
3. board events already pending (from before the crash) are drained, so a replayed
   "door opened" is not taken for a forced door;
4. the engine, the pollers, the clock and the sync agent start.
"""

from __future__ import annotations

import base64
import functools
import itertools
import logging
import queue
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

from drivers import Hardware, JsonFileCursorStore, inventory_door
from drivers.errors import DeviceTimeout, DriverError, LockJammed
from firmware_protocol.const import EventType
from syncproto.grants import canonical_json, log_id

from . import machine as mc
from .camera_drain import FrameDrain
from .config import KioskConfig
from .credentials import CredentialResolver
from .ledger import Content as LedgerContent
from .ledger import Ledger, NewEvent
from .messages import LANGUAGES, message, reason_text
from .rules import ItemView, Patron

__all__ = ["CredentialRefused", "KioskRuntime", "load_or_create_key"]

_log = logging.getLogger(__name__)

#: How often board events are polled (a door close reaches the engine within this).
POLL_INTERVAL_S = 0.05
TICK_S = 0.5
#: How often an out-of-service door (its count failed) is counted again while idle.
UNCOUNTED_RETRY_S = 10.0
#: How long after a session ends its receipt (titles, due dates) can be shown and rated;
#: after that the next person at the screen must not see the last reader's books.
RECEIPT_S = 300.0


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def load_or_create_key(path: Path) -> Ed25519PrivateKey:
    """The cabinet's own signing key (sync requests, restock manifests), created on first
    start with owner-only permissions."""
    if path.exists():
        raw = base64.urlsafe_b64decode(path.read_text().strip() + "==")
        return Ed25519PrivateKey.from_private_bytes(raw)
    key = Ed25519PrivateKey.generate()
    raw = key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(_b64(raw))
    tmp.chmod(0o600)
    tmp.replace(path)
    return key


class CredentialRefused(Exception):
    """The credential was refused; ``reason`` is the key the screen explains."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(slots=True)
class _Pending:
    """A session's credential, kept out of the machine (which never sees card numbers)."""

    kind: str
    value: str = field(repr=False)
    refusal: str = ""


@dataclass(slots=True)
class _Subscriber:
    q: queue.Queue[dict[str, Any]] = field(default_factory=lambda: queue.Queue(maxsize=1000))


class KioskRuntime:
    """A running cabinet.

    Args:
        config: the validated cabinet config.
        hardware: devices already built (tests); default: built from ``config.hardware``.
        sync: start the sync agent when the config has a ``[server]``.
        mono / clock: monotonic and wall clocks (seconds).
    """

    def __init__(self, config: KioskConfig, *, hardware: Hardware | None = None,
                 sync: bool = True, mono: Callable[[], float] = time.monotonic,
                 clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.mono = mono
        self.clock = clock
        self._hardware = hardware
        self._want_sync = sync
        self.hardware: Hardware | None = None
        self.ledger: Ledger | None = None
        self.agent: Any = None
        self.machine: mc.Machine | None = None
        self.key: Ed25519PrivateKey | None = None
        self._q: queue.Queue[tuple[Any, Future[Any] | None]] = queue.Queue()
        self._stop = threading.Event()
        self._closing = threading.Event()
        self._threads: list[threading.Thread] = []
        self._pending: dict[str, _Pending] = {}
        self._intents: dict[int, int] = {}  # door → open intent id
        self._subs: list[_Subscriber] = []
        self._subs_lock = threading.Lock()
        self._recent: deque[dict[str, Any]] = deque(maxlen=200)
        # SSE ids keep growing across restarts, so a screen resuming with Last-Event-ID
        # after a kiosk restart does not skip the new boot's messages
        self._event_ids = itertools.count(int(clock() * 1000))
        self.recovery_report: list[dict[str, Any]] = []
        self._last_uncounted_try = -UNCOUNTED_RETRY_S
        self.started_at: float | None = None
        self.resolver: CredentialResolver | None = None
        #: when the engine received each door's last close (for the close→commit benchmark)
        self.closed_at: dict[int, float] = {}
        self.committed_at: dict[int, float] = {}
        # the camera watcher's frame skipping (it learns the decode time of this PC)
        self._frame_drain = FrameDrain()
        # the screen's view of the current (or just ended) transaction: receipt, rating
        self._tx: dict[str, Any] | None = None
        self._tx_lock = threading.Lock()

    # ------------------------------------------------------------ life cycle
    def start(self) -> KioskRuntime:
        cfg = self.config
        data = cfg.data_dir
        data.mkdir(parents=True, exist_ok=True)
        self.ledger = Ledger(data / "ledger.db", cfg.cabinet.id, clock=self.clock,
                             mono=self.mono)
        self.key = load_or_create_key(data / "cabinet.key")
        if self._hardware is None:
            self._hardware = Hardware.from_spec(
                cfg.hardware, cursor_store=JsonFileCursorStore(data / "board-cursors.json"))
        self.hardware = self._hardware
        if cfg.server is not None and self._want_sync:
            from .sync import SyncAgent

            self.agent = SyncAgent(self.ledger, cabinet_id=cfg.cabinet.id,
                                   server_url=cfg.server.url, private_key=self.private_key_b64,
                                   timeout_s=cfg.server.timeout_s,
                                   resolve_timeout_s=cfg.server.resolve_timeout_s,
                                   interval_s=cfg.server.sync_interval_s, clock=self.clock)
        self.resolver = CredentialResolver(
            ledger=self.ledger, cabinet_id=cfg.cabinet.id,
            trusted_keys=dict(cfg.server.trusted_keys) if cfg.server else {},
            online=self.agent, max_loans=cfg.policy.max_loans,
            offline_allowance=cfg.policy.offline_allowance, skew_s=cfg.policy.clock_skew_s,
            qr_max_ttl_s=cfg.policy.qr_max_ttl_s)
        doors = {n: mc.DoorInfo(number=n, capacity=d.capacity, accessible=d.accessible)
                 for n, d in cfg.doors.items()}
        p = cfg.policy
        policy = mc.MachinePolicy(
            door_prompt_s=tuple(float(x) for x in p.door_prompt_s),
            door_alarm_s=float(p.door_alarm_s), session_idle_s=float(p.session_idle_s),
            credential_ttl_s=float(p.credential_ttl_s), inventory_retries=p.inventory_retries,
            own_library=cfg.cabinet.own_library,
            network_libraries=frozenset(cfg.cabinet.network_libraries))
        contents = self.ledger.all_contents()
        self.machine = mc.Machine(doors, policy,
                                  fill={n: len(contents.get(n, {})) for n in doors})
        self._drain_board_events()
        self._recover()
        self._baseline()
        for name, target in (("engine", self._engine), ("clock", self._ticker)):
            self._spawn(name, target)
        for address in self.hardware.boards:
            self._spawn(f"board-{address}", functools.partial(self._poll_board, address))
        if self.hardware.card_reader is not None:
            self.hardware.card_reader.start(self._on_card)
        if self.hardware.camera is not None:
            self._spawn("camera", self._watch_camera)
        # remote commands (H5): status with every batch, commands from the replies
        from .commands import RemoteCommands

        self.remote: RemoteCommands | None = RemoteCommands(self).start()
        # end remote commands (H5)
        if self.agent is not None:
            self.agent.start()
        self.started_at = self.mono()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._q.put((None, None))
        for t in self._threads:
            t.join(timeout=5)
        self._threads.clear()
        # remote commands (H5)
        remote = getattr(self, "remote", None)
        if remote is not None:
            remote.stop()
        # end remote commands (H5)
        if self.agent is not None:
            self.agent.stop()
        if self.hardware is not None and self._hardware is not None:
            self.hardware.close()
        if self.ledger is not None:
            self.ledger.close()

    def __enter__(self) -> KioskRuntime:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def private_key_b64(self) -> str:
        assert self.key is not None
        return _b64(self.key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption()))

    @property
    def public_key_b64(self) -> str:
        assert self.key is not None
        return _b64(self.key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))

    @property
    def stopping(self) -> bool:
        return self._stop.is_set() or self._closing.is_set()

    def closing(self) -> None:
        """Shutdown has begun: end event streams so the HTTP server can stop."""
        self._closing.set()

    def health(self) -> dict[str, Any]:
        """Every device's availability, the outbox and the sync state (technician view)."""
        assert self.hardware is not None and self.ledger is not None
        boards = {str(a): b.status().as_dict() for a, b in self.hardware.boards.items()}
        readers = {str(n): r.status().as_dict() for n, r in self.hardware.readers.items()}
        out: dict[str, Any] = {
            "cabinet": self.config.cabinet.id, "boards": boards, "readers": readers,
            "pending_events": self.ledger.pending(), "last_seq": self.ledger.last_seq(),
            "acked_through": self.ledger.acked_through(),
            "offline_exposure": self.ledger.unsynced_offline_loans(),
            "offline_exposure_cap": self.config.policy.offline_exposure_cap,
            "online": bool(self.agent is not None and self.agent.online),
            "recovered": self.recovery_report,
        }
        if self.agent is not None:
            out["sync_error"] = self.agent.last_error or ""
        return out

    def _spawn(self, name: str, target: Callable[[], None]) -> None:
        t = threading.Thread(target=target, name=f"kiosk-{name}", daemon=True)
        t.start()
        self._threads.append(t)

    # ------------------------------------------------------------ the API's side
    def submit(self, event: Any, *, timeout: float = 30.0) -> dict[str, Any]:
        """Hand an event to the engine and wait until it is processed; returns the state.

        Raises MachineError (refused: nothing changed) or TimeoutError."""
        fut: Future[Any] = Future()
        self._q.put((event, fut))
        fut.result(timeout=timeout)
        return self.state()

    def begin_session(self, kind: str, value: str) -> dict[str, Any]:
        """Start a session with a credential. Raises CredentialRefused (with the reason the
        screen shows) when the credential is refused, MachineError when a session runs."""
        session = uuid.uuid4().hex
        self._pending[session] = _Pending(kind, value)
        try:
            state = self.submit(mc.BeginSession(session, kind))
            refusal = self._pending[session].refusal
        finally:
            self._pending.pop(session, None)
        if refusal:
            raise CredentialRefused(refusal)
        return state

    def begin_return(self, accessible: bool = False) -> dict[str, Any]:
        return self.submit(mc.BeginReturn(uuid.uuid4().hex, accessible))

    def choose_door(self, door: int) -> dict[str, Any]:
        return self.submit(mc.ChooseDoor(door))

    def finish(self) -> dict[str, Any]:
        return self.submit(mc.Finish())

    def more_time(self) -> dict[str, Any]:
        """The reader asked for more time: the session's idle timeout starts again."""
        return self.submit(mc.MoreTime())

    def transaction(self, *, ended: bool | None = None) -> dict[str, Any] | None:
        """The current or last transaction as the screen shows it (no reader id): session,
        kind, loans [{item_id, title, author, due}], returns [{item_id, title,
        owner_library, goes_home}], events (what the screen was told), outcome (None while
        it runs), rated. A transaction that ended more than ``RECEIPT_S`` ago is gone.
        ``ended``: only a running (False) or only a finished (True) one."""
        with self._tx_lock:
            tx = self._tx
            if tx is None:
                return None
            done = tx["outcome"] is not None
            if done and self.mono() - tx["ended"] > RECEIPT_S:
                return None
            if ended is not None and done != ended:
                return None
            out = {k: v for k, v in tx.items() if k != "reader_id"}
            out["events"] = list(tx["events"])
        for row in out["loans"] + out["returns"]:  # titles may have arrived since (sync)
            info = self.ledger.item(row["item_id"]) if self.ledger is not None else None
            if info is not None:
                row.setdefault("title", "")
                row["title"] = row["title"] or info.title
                row["author"] = row.get("author") or info.author
        return out

    def rate(self, score: int) -> dict[str, Any]:
        """A one-tap satisfaction rating (1..5) of the transaction that just ended, as a
        ``rating`` ledger event the server counts (满意率). ValueError: not 1..5;
        LookupError: nothing to rate (no recent borrow/return, or rated already)."""
        if isinstance(score, bool) or not isinstance(score, int) or not 1 <= score <= 5:
            raise ValueError("a rating is a whole number from 1 to 5")
        assert self.ledger is not None
        with self._tx_lock:
            tx = self._tx
            if (tx is None or tx["outcome"] is None or tx["rated"]
                    or tx["kind"] not in ("borrow", "return")
                    or self.mono() - tx["ended"] > RECEIPT_S):
                raise LookupError("no transaction to rate")
            tx["rated"] = True
            payload: dict[str, Any] = {"score": score, "session": tx["session"],
                                       "kind": tx["kind"]}
            if tx["reader_id"]:
                payload["reader_id"] = tx["reader_id"]
        self.ledger.append([NewEvent("rating", payload, offline=self._offline())])
        if self.agent is not None:
            self.agent.kick()
        return {"score": score, "session": payload["session"]}

    def state(self) -> dict[str, Any]:
        assert self.machine is not None and self.ledger is not None
        snap = self.machine.snapshot()
        snap["online"] = bool(self.agent is not None and self.agent.online)
        snap["cabinet"] = self.config.cabinet.id
        snap["pending_events"] = self.ledger.pending()
        snap["recent"] = list(self._recent)[-20:]
        return snap

    def doors(self) -> list[dict[str, Any]]:
        """Every door with what the ledger believes is in it, titled from the item cache."""
        assert self.ledger is not None
        contents = self.ledger.all_contents()
        out = []
        for n, info in sorted(self.config.doors.items()):
            items = []
            for c in contents.get(n, {}).values():
                it = self.ledger.item(c.item_id) if c.item_id else None
                items.append({"item_id": c.item_id, "title": it.title if it else "",
                              "author": it.author if it else "",
                              "category": it.category if it else "",
                              "on_hold": bool(it and it.hold_for)})
            out.append({"door": n, "size": info.size, "capacity": info.capacity,
                        "accessible": info.accessible, "count": len(items), "items": items})
        return out

    def subscribe(self) -> queue.Queue[dict[str, Any]]:
        sub = _Subscriber()
        with self._subs_lock:
            self._subs.append(sub)
        return sub.q

    def unsubscribe(self, q: queue.Queue[dict[str, Any]]) -> None:
        with self._subs_lock:
            self._subs = [s for s in self._subs if s.q is not q]

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """True once no session runs and no door is open or being counted (tests, demo)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = self.machine
            if m is not None and not m.busy and self._q.empty():
                return True
            time.sleep(0.02)
        return False

    # ------------------------------------------------------------ engine
    def _engine(self) -> None:
        while not self._stop.is_set():
            event, fut = self._q.get()
            if event is None:
                break
            try:
                self._run(event)
            except mc.MachineError as exc:
                if fut is not None:
                    fut.set_exception(exc)
                continue
            except Exception as exc:  # noqa: BLE001 - the engine must survive anything
                _log.exception("engine: %s failed", type(event).__name__)
                if fut is not None:
                    fut.set_exception(exc)
                continue
            if fut is not None:
                fut.set_result(None)

    def _run(self, first: Any) -> None:
        """Feed one event and every event its commands produce, depth first."""
        assert self.machine is not None
        todo: deque[Any] = deque([first])
        if isinstance(first, mc.Tick):
            self._retry_uncounted()
        while todo:
            event = todo.popleft()
            commands = self.machine.handle(event, self.mono())
            if isinstance(event, (mc.BeginSession, mc.BeginReturn)):
                self._new_tx(event.session, "borrow" if isinstance(event, mc.BeginSession)
                             else "return")
            follow: list[Any] = []
            for cmd in commands:
                nxt = self._execute(cmd)
                if nxt is not None:
                    follow.append(nxt)
            todo.extendleft(reversed(follow))
        if isinstance(first, mc.Tick):
            left = self.machine.idle_warning_due(self.mono())
            if left is not None:
                self._publish("session.more_time", {"seconds": int(left)})

    def _new_tx(self, session: str, kind: str) -> None:
        with self._tx_lock:
            self._tx = {"session": session, "kind": kind, "reader_id": None, "loans": [],
                        "returns": [], "events": [], "outcome": None, "ended": None,
                        "rated": False, "cabinet": self.config.cabinet.id,
                        "at": datetime.fromtimestamp(self.clock(), UTC).isoformat()}

    def _tx_commit(self, cmd: mc.Commit, due: str) -> None:
        """What the receipt and the return page show of one committed door."""
        assert self.ledger is not None
        with self._tx_lock:
            tx = self._tx
            if tx is None or tx["session"] != cmd.session or tx["outcome"] is not None:
                return
            if cmd.reader_id:
                tx["reader_id"] = cmd.reader_id
            if cmd.manifest is not None:
                tx["kind"] = "restock"
        home = self._home_branch() if cmd.returns else ""
        loans, returns = [], []
        for item in cmd.loans:
            info = self.ledger.item(item)
            loans.append({"item_id": item, "title": info.title if info else "",
                          "author": info.author if info else "", "due": due,
                          "door": cmd.door})
        own = self.config.cabinet.own_library
        for r in cmd.returns:
            info = self.ledger.item(r.item_id or "") if r.item_id else None
            goes_home = ""
            if r.owner_library and own and r.owner_library != own:
                goes_home = r.owner_library
            elif info is not None and info.home_branch and home and info.home_branch != home:
                goes_home = info.home_branch
            elif info is None and home:  # not one of this cabinet's books: from elsewhere
                goes_home = "?"
            returns.append({"item_id": r.item_id or "", "title": info.title if info else "",
                            "author": info.author if info else "",
                            "owner_library": r.owner_library or "", "goes_home": goes_home,
                            "door": cmd.door})
        with self._tx_lock:
            if self._tx is not None and self._tx["session"] == cmd.session:
                self._tx["loans"].extend(loans)
                self._tx["returns"].extend(returns)

    def _home_branch(self) -> str:
        """The branch most of this cabinet's books belong to (from the item cache)."""
        assert self.ledger is not None
        counts: dict[str, int] = {}
        for contents in self.ledger.all_contents().values():
            for c in contents.values():
                info = self.ledger.item(c.item_id) if c.item_id else None
                if info is not None and info.home_branch:
                    counts[info.home_branch] = counts.get(info.home_branch, 0) + 1
        return max(counts, key=lambda k: counts[k]) if counts else ""

    def _execute(self, cmd: mc.Command) -> Any:
        match cmd:
            case mc.Resolve():
                return self._resolve(cmd)
            case mc.Unlock():
                return self._unlock(cmd)
            case mc.Inventory():
                return self._inventory(cmd.door)
            case mc.Commit():
                self._commit(cmd)
            case mc.Notify():
                self._publish(cmd.key, dict(cmd.params))
            case mc.AlarmRaised():
                self._alarm(cmd)
            case mc.EndSession():
                self._end_session(cmd)
        return None

    # ------------------------------------------------------------ commands
    def _resolve(self, cmd: mc.Resolve) -> Any:
        assert self.resolver is not None
        pending = self._pending.get(cmd.session)
        if pending is None:
            return mc.ResolveRefused("bad_credential")
        now = datetime.fromtimestamp(self.clock(), UTC)
        result = self.resolver.resolve(pending.kind, pending.value, now)
        if isinstance(result, mc.Resolved) and result.patron.offline \
                and result.patron.role == "reader":
            # Say so at the start rather than after the reader has taken books: offline, a
            # reader with no allowance left, or a cabinet at its cap, cannot borrow here.
            p = result.patron
            assert self.ledger is not None
            if p.offline_allowance - p.offline_used <= 0:
                result = mc.ResolveRefused("offline_allowance")
            elif self.config.policy.offline_exposure_cap - \
                    self.ledger.unsynced_offline_loans() <= 0:
                result = mc.ResolveRefused("exposure_cap")
        if isinstance(result, mc.ResolveRefused):
            pending.refusal = result.reason
        if isinstance(result, mc.Resolved):
            p = result.patron
            _log.info("session %s: reader %s resolved (%s)", cmd.session[:8],
                      log_id(p.reader_id), "offline" if p.offline else "online")
        return result

    def _unlock(self, cmd: mc.Unlock) -> Any:
        assert self.ledger is not None and self.hardware is not None and self.machine
        s = self.machine.session
        patron = s.patron if s is not None else None
        context = {"expect_back": list(cmd.expect_back),
                   "session_kind": s.kind if s is not None else "stray",
                   "patron": _patron_dict(patron) if patron else None}
        intent = self.ledger.open_intent(session=cmd.session, door=cmd.door, kind=cmd.purpose,
                                         reader_id=cmd.reader_id, context=context)
        self._intents[cmd.door] = intent  # durable now: the lock may be pulsed
        spec = self.hardware.door(cmd.door)
        board = self.hardware.boards[spec.board]
        try:
            board.unlock(spec.lock)
        except LockJammed:
            return mc.UnlockDone(cmd.door, False, "jammed")
        except DeviceTimeout:
            # Not confirmed: the door may have opened. Treat it as unlocked; the door's events
            # (or the unlock wait) lead to a count either way.
            return mc.UnlockDone(cmd.door, True, "unconfirmed")
        except DriverError as exc:
            return mc.UnlockDone(cmd.door, False, type(exc).__name__)
        return mc.UnlockDone(cmd.door, True)

    def _inventory(self, door: int) -> Any:
        assert self.ledger is not None and self.hardware is not None
        try:
            tags = self._count(door)
        except DriverError as exc:
            return mc.InventoryFailed(door, type(exc).__name__)
        known = {uid: mc.Content(c.uid, c.item_id, c.owner_library)
                 for uid, c in self.ledger.contents(door).items()}
        ids = {c.item_id for c in known.values() if c.item_id}
        ids |= {t.item_id for t in tags if t.item_id}
        items: dict[str, ItemView] = {}
        for item_id in ids:
            info = self.ledger.item(item_id)
            hold = self.ledger.hold_on(item_id)
            hold_for = hold.reader_id if hold is not None else (info.hold_for if info else None)
            if info is not None or hold is not None:
                items[item_id] = ItemView(item_id=item_id,
                                          reference_only=bool(info and info.reference_only),
                                          hold_for=hold_for)
        exposure_left = self.config.policy.offline_exposure_cap - \
            self.ledger.unsynced_offline_loans()
        return mc.InventoryResult(door, tuple(tags), known, items, exposure_left)

    def _count(self, door: int) -> list[mc.TagRead]:
        assert self.hardware is not None
        spec = self.hardware.door(door)
        reader = self.hardware.reader_of(door)
        out = []
        for t in inventory_door(reader, spec.antenna, self.hardware.tag_cache):
            if t.data is None:
                out.append(mc.TagRead(t.uid.hex(), None, None, readable=False))
            else:
                out.append(mc.TagRead(t.uid.hex(), t.data.primary_item_id or None,
                                      t.data.owner_library or None, readable=True))
        return out

    def _commit(self, cmd: mc.Commit) -> None:
        assert self.ledger is not None
        events: list[NewEvent] = []
        due = (datetime.fromtimestamp(self.clock(), UTC)
               + timedelta(days=self.config.policy.loan_days)).date().isoformat()
        for item in cmd.loans:
            events.append(NewEvent("loan", {
                "item_id": item, "reader_id": cmd.reader_id, "due": due,
                "grant_id": cmd.grant_id, "door": cmd.door, "session": cmd.session},
                offline=cmd.offline))
        for r in cmd.returns:
            events.append(NewEvent("return", {
                "item_id": r.item_id, "owner_library": r.owner_library, "door": cmd.door,
                "session": cmd.session}, offline=self._offline()))
        for alarm_item, reason in cmd.alarms:
            events.append(NewEvent("alarm", {"reason": reason, "door": cmd.door,
                                             "item_id": alarm_item, "session": cmd.session},
                                   offline=self._offline()))
        if cmd.manifest is not None:
            events.append(NewEvent("restock", {"manifest": self._sign_manifest(cmd)},
                                   offline=self._offline()))
        contents = {c.uid: LedgerContent(c.uid, c.item_id, c.owner_library)
                    for c in cmd.contents}
        intent = self._intents.pop(cmd.door, None)
        if intent is None:  # a stray door: record that it was counted, then finish
            intent = self.ledger.open_intent(session=cmd.session, door=cmd.door,
                                             kind="stray", reader_id=None, context={})
        self.ledger.finish_intent(intent, contents=contents, events=events)
        self.committed_at[cmd.door] = self.mono()
        self._tx_commit(cmd, due)
        if self.agent is not None:
            self.agent.kick()
        self._publish("door.committed", {"door": cmd.door, "loans": len(cmd.loans),
                                         "returns": len(cmd.returns),
                                         "alarms": len(cmd.alarms)})

    def _sign_manifest(self, cmd: mc.Commit) -> dict[str, Any]:
        assert self.key is not None and cmd.manifest is not None
        manifest = dict(cmd.manifest)
        manifest.update({"cabinet_id": self.config.cabinet.id, "session": cmd.session,
                         "closed_at": datetime.fromtimestamp(self.clock(), UTC).isoformat()})
        manifest["signature"] = _b64(self.key.sign(canonical_json(manifest)))
        manifest["public_key"] = self.public_key_b64
        return manifest

    def _alarm(self, cmd: mc.AlarmRaised) -> None:
        assert self.ledger is not None
        self.ledger.append([NewEvent("alarm", {"reason": cmd.reason, "door": cmd.door},
                                     offline=self._offline())])
        if cmd.reason == "door_opened_without_session" and cmd.door is not None \
                and cmd.door not in self._intents:
            # durable trace of the open door, so a crash before its count is recovered
            self._intents[cmd.door] = self.ledger.open_intent(
                session=None, door=cmd.door, kind="stray", reader_id=None,
                context={"session_kind": "stray"})
        self._publish("alarm", {"reason": cmd.reason, "door": cmd.door})

    def _end_session(self, cmd: mc.EndSession) -> None:
        assert self.ledger is not None
        self.ledger.append([NewEvent("session", {"session": cmd.session,
                                                 "outcome": cmd.outcome},
                                     offline=self._offline())])
        self._publish("session.ended", {"session": cmd.session, "outcome": cmd.outcome})
        with self._tx_lock:
            if self._tx is not None and self._tx["session"] == cmd.session:
                self._tx["outcome"] = cmd.outcome
                self._tx["ended"] = self.mono()

    def _offline(self) -> bool:
        return self.agent is None or not self.agent.online

    def _texts(self, key: str, params: dict[str, Any]) -> dict[str, str]:
        """The sentence in each language; refused items are named by title and reason."""
        out = {}
        for lang in LANGUAGES:
            values = dict(params)
            if key == "borrow.put_back" and self.ledger is not None:
                names = []
                for entry in params.get("items", []):
                    info = self.ledger.item(entry["item_id"])
                    title = info.title if info and info.title else entry["item_id"]
                    sep = "（{}）" if lang == "zh" else " ({})"
                    names.append(title + sep.format(reason_text(entry["reason"], lang)))
                values["titles"] = ("；" if lang == "zh" else "; ").join(names)
            out[lang] = message(key, lang, values)
        return out

    def _publish(self, key: str, params: dict[str, Any]) -> None:
        item = {"id": next(self._event_ids), "key": key, "params": params,
                "text": self._texts(key, params),
                "at": datetime.fromtimestamp(self.clock(), UTC).isoformat()}
        self._recent.append(item)
        with self._tx_lock:
            tx = self._tx
            if tx is not None and tx["outcome"] is None and len(tx["events"]) < 100:
                tx["events"].append(item)
                if key == "restock.choose_doors":
                    tx["kind"] = "restock"
        with self._subs_lock:
            subs = list(self._subs)
        for sub in subs:
            try:
                sub.q.put_nowait(item)
            except queue.Full:  # a stalled screen must not stall the cabinet
                pass

    # ------------------------------------------------------------ devices
    def _poll_board(self, address: int) -> None:
        assert self.hardware is not None
        board = self.hardware.boards[address]
        while not self._stop.is_set():
            try:
                batch = board.poll_events()
            except DriverError as exc:
                _log.debug("board %d: poll failed: %s", address, exc)
                self._stop.wait(0.5)
                continue
            for ev in batch.events:
                doors = self.hardware.doors_of(address, lock=ev.lock)
                for door in doors:
                    if ev.kind == EventType.DOOR_OPENED:
                        self._q.put((mc.DoorOpened(door), None))
                    elif ev.kind == EventType.DOOR_CLOSED:
                        self.closed_at[door] = self.mono()
                        self._q.put((mc.DoorClosed(door), None))
                    elif ev.kind == EventType.DOOR_FORCED:
                        self._q.put((mc.DoorOpened(door), None))
            if not batch.events:
                self._stop.wait(POLL_INTERVAL_S)

    def _credential_arrived(self, kind: str, value: str) -> None:
        """A card or a QR at the cabinet's own reader starts a session when none runs."""
        if self.machine is None or self.machine.busy:
            return
        try:
            self.begin_session(kind, value)
        except (mc.MachineError, CredentialRefused, TimeoutError):
            pass  # the screen was told why (SSE); nothing else to do here

    def _on_card(self, event: Any) -> None:
        from drivers.card_reader import CardInserted

        if isinstance(event, CardInserted):
            threading.Thread(target=self._credential_arrived, args=("card", event.uid.hex()),
                             daemon=True).start()

    def _watch_camera(self) -> None:
        assert self.hardware is not None and self.hardware.camera is not None
        camera = self.hardware.camera
        last: tuple[str, float] = ("", 0.0)
        while not self._stop.wait(0.3):
            if self.machine is None or self.machine.busy:
                continue
            try:
                if not camera.is_open:
                    camera.open()
                texts = self._newest_qr(camera)
            except DriverError:
                self._stop.wait(2.0)
                continue
            for text in texts:
                if text == last[0] and self.mono() - last[1] < 10:
                    continue  # the same phone still in front of the camera
                last = (text, self.mono())
                self._credential_arrived("qr", text)
                break

    def _newest_qr(self, camera: Any) -> list[str]:
        """The QR codes on the newest frame. A live stream queues the frames nobody read
        (this watcher reads every 0.3 s, and not at all during a session): without skipping
        them it decodes a phone shown seconds ago — an earlier reader's used QR code."""
        from drivers.camera.source import SourceKind

        source = getattr(camera, "source", None)
        if getattr(source, "kind", None) in (SourceKind.URL, SourceKind.DEVICE):
            self._frame_drain.skip_queued(camera)
        texts: list[str] = camera.read_qr()
        return texts

    def _drain_board_events(self) -> None:
        """Acknowledge events from before this start (recovery reads door states instead)."""
        assert self.hardware is not None
        for address, board in self.hardware.boards.items():
            try:
                board.poll_events()
            except DriverError as exc:
                _log.warning("board %d: cannot drain events at start: %s", address, exc)

    def _ticker(self) -> None:
        while not self._stop.wait(TICK_S):
            self._q.put((mc.Tick(), None))

    # ------------------------------------------------------------ recovery
    def _door_open(self, door: int) -> bool:
        assert self.hardware is not None
        spec = self.hardware.door(door)
        try:
            states = self.hardware.boards[spec.board].states()
        except DriverError:
            return False
        return any(s.lock == spec.lock and s.open for s in states)

    def _retry_uncounted(self) -> None:
        """Count again, while the cabinet is idle, a door whose count failed (or whose
        re-open did not unlock): until then it is out of service (``Machine.uncounted``)."""
        m = self.machine
        if m is None or not m.uncounted or m.session is not None or m.open_doors():
            return
        now = self.mono()
        if now - self._last_uncounted_try < UNCOUNTED_RETRY_S:
            return
        self._last_uncounted_try = now
        self._recover(only=set(m.uncounted))

    def _recover(self, only: set[int] | None = None) -> None:
        """Finish every intent a crash left open by counting its door (see module doc);
        ``only``: just these doors (a failed count retried while idle)."""
        assert self.ledger is not None and self.machine is not None
        intents = self.ledger.open_intents()
        latest: dict[int, Any] = {}
        for it in intents:  # an older intent of the same door is superseded by the newer
            if only is not None and it.door not in only:
                continue
            if it.door in latest:
                self.ledger.void_intent(latest[it.door].id, "superseded")
            latest[it.door] = it
        for door in sorted((only or set()) - set(latest)):  # no intent left: count as stray
            latest[door] = None
        for door, it in sorted(latest.items()):
            if it is None:
                intent_id = self.ledger.open_intent(session=None, door=door, kind="stray",
                                                    reader_id=None,
                                                    context={"session_kind": "stray"})
                it = next(i for i in self.ledger.open_intents() if i.id == intent_id)
            if door not in self.machine.doors:
                self.ledger.void_intent(it.id, "door not in config")
                continue
            ctx = it.context or {}
            kind = ctx.get("session_kind") or ("return" if it.kind == "return" else "borrow")
            patron = _patron_from(ctx.get("patron"))
            if patron is not None and it.session:
                # loans this session already committed count against its limits
                patron = _with_loans(patron, self.ledger.loans_in_cabinet_session(it.session))
            if kind == "borrow" and patron is None:
                kind = "stray"
            self._intents[door] = it.id
            is_open = self._door_open(door)
            commands = self.machine.recover(
                door, kind=kind, session=it.session, patron=patron,
                expect_back=tuple(ctx.get("expect_back", ())), door_open=is_open,
                now=self.mono())
            for cmd in commands:
                nxt = self._execute(cmd)
                if nxt is not None:
                    self._run(nxt)
            self.ledger.append([NewEvent("recovery", {
                "intent": it.id, "door": door, "kind": it.kind,
                "outcome": "waiting_for_close" if is_open else "counted"})])
            self.recovery_report.append({"intent": it.id, "door": door, "kind": it.kind,
                                         "door_open": is_open})

    def _baseline(self) -> None:
        """Count every door the ledger has never counted (first start)."""
        assert self.ledger is not None and self.hardware is not None and self.machine
        for door in sorted(self.config.doors):
            if self.ledger.has_baseline(door):
                continue
            try:
                tags = self._count(door)
            except DriverError as exc:
                _log.warning("door %d: first count failed (%s); retried at next start",
                             door, exc)
                continue
            self.ledger.set_baseline(door, {t.uid: LedgerContent(t.uid, t.item_id,
                                                                 t.owner_library)
                                            for t in tags})
            self.machine.fill[door] = len(tags)

    def iter_recent(self) -> Iterator[dict[str, Any]]:
        yield from list(self._recent)


def _patron_dict(p: Patron) -> dict[str, Any]:
    return {"reader_id": p.reader_id, "role": p.role, "loans": p.loans,
            "max_loans": p.max_loans, "offline": p.offline, "grant_id": p.grant_id,
            "offline_allowance": p.offline_allowance, "offline_used": p.offline_used,
            "holds": sorted(p.holds)}


def _patron_from(d: dict[str, Any] | None) -> Patron | None:
    if not d:
        return None
    return Patron(reader_id=d["reader_id"], role=d.get("role", "reader"),
                  loans=int(d.get("loans", 0)), max_loans=int(d.get("max_loans", 0)),
                  offline=bool(d.get("offline")), grant_id=d.get("grant_id"),
                  offline_allowance=int(d.get("offline_allowance", 0)),
                  offline_used=int(d.get("offline_used", 0)),
                  holds=frozenset(d.get("holds", ())))


def _with_loans(p: Patron, session_loans: int) -> Patron:
    return Patron(reader_id=p.reader_id, role=p.role, loans=p.loans + session_loans,
                  max_loans=p.max_loans, offline=p.offline, grant_id=p.grant_id,
                  offline_allowance=p.offline_allowance,
                  offline_used=p.offline_used + (session_loans if p.offline else 0),
                  holds=p.holds)
