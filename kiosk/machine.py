"""The session state machine of a cabinet: events in, commands out, no I/O.

Why sans-IO (as h11 is for HTTP): every rule about who may take what, when a door must
re-open and what becomes a loan or an alarm lives here, where a hypothesis test can drive it
through any sequence of reader actions and device events in microseconds. The I/O shell
(``kiosk.runtime``) turns commands into ledger writes, lock pulses and inventories, and turns
what the devices and the API report back into events.

One session at a time (a cabinet has one screen). The shell must honour two rules the
machine relies on:
- ``Unlock``: durably write the intent *before* pulsing the lock (write ahead, then act);
- ``Commit``: write every event of the command, the door's new contents and the intent's end
  in one transaction.

The door's known contents (what the ledger believes is inside) only lose an item when a loan
or an alarm for it is committed; an item a reader was refused stays "known" until it is
either back (nothing to record) or gone for good (alarm). So a crash between a refusal and
the re-opened door's close still finds the item missing at recovery, never silently lost.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from .rules import ItemView, Patron, judge_removals, return_verdict

__all__ = [
    "AlarmRaised", "BeginReturn", "BeginSession", "ChooseDoor", "Command", "Commit", "Content",
    "DoorClosed", "DoorInfo", "DoorOpened", "EndSession", "Event", "Finish", "Inventory",
    "InventoryFailed", "InventoryResult", "Machine", "MachinePolicy", "MoreTime", "Notify",
    "Resolve", "WARN_BEFORE_S",
    "Resolved", "ResolveRefused", "SessionKind", "TagRead", "Tick", "Unlock", "UnlockDone",
]

SessionKind = Literal["borrow", "return", "restock"]

#: The "need more time?" prompt comes this long before the idle timeout (WCAG 2.2.1 asks
#: for at least 20 s to answer; the extra 5 s covers the clock's tick and the screen).
WARN_BEFORE_S = 25.0


# ---------------------------------------------------------------- configuration
@dataclass(frozen=True, slots=True, kw_only=True)
class DoorInfo:
    number: int
    capacity: int
    accessible: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class MachinePolicy:
    door_prompt_s: tuple[float, ...] = (30.0, 60.0)
    door_alarm_s: float = 120.0
    session_idle_s: float = 60.0
    credential_ttl_s: float = 300.0
    inventory_retries: int = 2
    max_reopens: int = 1  # re-openings of one door to put refused items back
    unlock_wait_s: float = 15.0  # an unlocked door nobody opened counts as closed after this
    own_library: str = ""
    network_libraries: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Content:
    """One tag the ledger believes is in a door (uid as hex)."""

    uid: str
    item_id: str | None
    owner_library: str | None = None


@dataclass(frozen=True, slots=True)
class TagRead:
    """One tag an inventory saw; ``item_id`` None and ``readable`` False when its data could
    not be read (the tag is there, its book unknown); ``readable`` True with ``item_id`` None
    is a tag with no library data (not a library book)."""

    uid: str
    item_id: str | None
    owner_library: str | None = None
    readable: bool = True


# ---------------------------------------------------------------- events (in)
@dataclass(frozen=True, slots=True)
class BeginSession:
    session: str
    credential_kind: str  # card | barcode | qr — the shell resolves the value itself


@dataclass(frozen=True, slots=True)
class BeginReturn:
    session: str
    accessible: bool = False


@dataclass(frozen=True, slots=True)
class Resolved:
    patron: Patron
    hold_doors: tuple[int, ...] = ()  # doors holding this reader's holds


@dataclass(frozen=True, slots=True)
class ResolveRefused:
    reason: str  # unknown | blocked | expired | denied | no_grant | token_* … (screen catalogue)


@dataclass(frozen=True, slots=True)
class ChooseDoor:
    door: int


@dataclass(frozen=True, slots=True)
class UnlockDone:
    door: int
    ok: bool
    reason: str = ""


@dataclass(frozen=True, slots=True)
class DoorOpened:
    door: int


@dataclass(frozen=True, slots=True)
class DoorClosed:
    door: int


@dataclass(frozen=True, slots=True)
class InventoryResult:
    """What the door holds now, with what the rules need: the ledger's known contents, the
    item cache's view of every item involved, and the cabinet's offline exposure left."""

    door: int
    tags: tuple[TagRead, ...]
    known: Mapping[str, Content]
    items: Mapping[str, ItemView] = field(default_factory=dict)
    exposure_left: int = 0


@dataclass(frozen=True, slots=True)
class InventoryFailed:
    door: int
    reason: str


@dataclass(frozen=True, slots=True)
class Finish:
    pass


@dataclass(frozen=True, slots=True)
class Tick:
    pass


@dataclass(frozen=True, slots=True)
class MoreTime:
    """The reader answered "need more time?": the idle timeout starts again."""


Event = (BeginSession | BeginReturn | Resolved | ResolveRefused | ChooseDoor | UnlockDone
         | DoorOpened | DoorClosed | InventoryResult | InventoryFailed | Finish | Tick
         | MoreTime)


# ---------------------------------------------------------------- commands (out)
@dataclass(frozen=True, slots=True)
class Resolve:
    session: str


@dataclass(frozen=True, slots=True)
class Unlock:
    """Write the intent (durably), then pulse the door's lock. ``expect_back``: items the
    reader was refused and asked to put back."""

    door: int
    purpose: str  # borrow | return | hold | restock | reopen | stray
    session: str | None
    reader_id: str | None = None
    expect_back: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Inventory:
    door: int
    attempt: int


@dataclass(frozen=True, slots=True)
class Commit:
    """The door's close, as one transaction: loans, returns, alarms (item, reason), a
    restock manifest, and the door's contents afterwards."""

    door: int
    session: str | None
    reader_id: str | None
    offline: bool
    grant_id: str | None
    loans: tuple[str, ...]
    returns: tuple[Content, ...]
    alarms: tuple[tuple[str | None, str], ...]
    contents: tuple[Content, ...]
    manifest: Mapping[str, object] | None = None


@dataclass(frozen=True, slots=True)
class Notify:
    """Something the screen must show (key of the message catalogue + its parameters)."""

    key: str
    params: Mapping[str, object] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class AlarmRaised:
    """An alarm that is not about one item (door left open, lock jammed, door forced)."""

    reason: str
    door: int | None = None


@dataclass(frozen=True, slots=True)
class EndSession:
    session: str
    outcome: str  # finished | timeout | refused | expired


Command = Resolve | Unlock | Inventory | Commit | Notify | AlarmRaised | EndSession


# ---------------------------------------------------------------- state
@dataclass(slots=True)
class _DoorRun:
    door: int
    purpose: str
    phase: str = "unlocking"  # unlocking | open | counting | done
    since: float = 0.0  # when the unlock was asked
    opened_at: float | None = None
    prompts: int = 0
    alarmed: bool = False
    attempt: int = 0
    reopens: int = 0
    expect_back: tuple[str, ...] = ()
    refusals: dict[str, str] = field(default_factory=dict)  # expect_back item → its reason
    foreign_asked: bool = False
    recovered: _Recovered | None = None


@dataclass(frozen=True, slots=True)
class _Recovered:
    """A door whose intent was left open by a crash: counted with the intent's session kind
    and patron, and never re-opened (the person is gone)."""

    kind: str
    session: str | None
    patron: Patron | None


@dataclass(slots=True)
class _Session:
    id: str
    kind: SessionKind
    phase: str  # resolving | active | ended
    started: float
    last_activity: float
    accessible: bool = False
    patron: Patron | None = None
    resolved_at: float | None = None
    loans: int = 0
    hold_doors: tuple[int, ...] = ()
    warned_for: float | None = None  # the last_activity the idle warning was given for


class MachineError(ValueError):
    """An event that makes no sense now (a door not in the cabinet, a second session …).
    The API answers it with 409/404; the state is unchanged."""


class Machine:
    """The cabinet's one-at-a-time session machine.

    Args:
        doors: the cabinet's doors.
        policy: timeouts and libraries.
        fill: door → number of tags the ledger believes are inside (for returns' free
            capacity); kept up to date from the machine's own commits.
    """

    def __init__(self, doors: Mapping[int, DoorInfo], policy: MachinePolicy,
                 fill: Mapping[int, int] | None = None) -> None:
        self.doors = dict(doors)
        self.policy = policy
        self.fill = {n: (fill or {}).get(n, 0) for n in self.doors}
        self.session: _Session | None = None
        self.runs: dict[int, _DoorRun] = {}
        # Doors whose count failed: the ledger no longer knows what is inside, so the next
        # count would charge whoever opens the door next with what the last person took.
        # Out of service until a count commits (``recover`` is the way back).
        self.uncounted: set[int] = set()
        # uid → the door whose count last saw the tag. A tag then missing from another door's
        # known contents was moved between two doors (two open at once, or a door counted
        # late): neither a loan nor an alarm there, the other door has it.
        self._placed: dict[str, int] = {}
        self._now = 0.0

    # ------------------------------------------------------------ queries
    @property
    def busy(self) -> bool:
        return self.session is not None or any(r.phase != "done" for r in self.runs.values())

    def open_doors(self) -> list[int]:
        return sorted(n for n, r in self.runs.items() if r.phase in ("unlocking", "open"))

    def snapshot(self) -> dict[str, object]:
        """The state the screen and the API show (no reader data beyond the session's)."""
        s = self.session
        return {
            "session": None if s is None else {
                "id": s.id, "kind": s.kind, "phase": s.phase, "loans": s.loans,
                "offline": bool(s.patron and s.patron.offline),
                "role": s.patron.role if s.patron else None,
                "hold_doors": list(s.hold_doors),
                # seconds until the idle timeout (None while a door keeps the session busy)
                "idle_left_s": None if self._doors_busy() else max(
                    0.0, round(self.policy.session_idle_s - (self._now - s.last_activity), 1)),
                "warned": s.warned_for is not None and s.warned_for == s.last_activity,
            },
            "doors": {str(n): {"purpose": r.purpose, "phase": r.phase, "prompts": r.prompts,
                               "alarmed": r.alarmed}
                      for n, r in sorted(self.runs.items()) if r.phase != "done"},
        }

    # ------------------------------------------------------------ entry point
    def handle(self, event: Event, now: float) -> list[Command]:
        """Apply one event at monotonic time ``now``; return what the shell must do, in
        order. Raises MachineError for an event that is refused (state unchanged)."""
        out: list[Command] = []
        self._now = now
        match event:
            case BeginSession():
                self._begin(event.session, "borrow", now)
                out.append(Resolve(event.session))
                out.append(Notify("session.identifying"))
            case BeginReturn():
                self._begin(event.session, "return", now, accessible=event.accessible)
                self._start_return(now, out)
            case Resolved():
                self._resolved(event, now, out)
            case ResolveRefused():
                s = self._need_session("resolving")
                out.append(Notify("refused." + event.reason))
                out.append(self._end(s, "refused"))
            case ChooseDoor():
                self._choose(event.door, now, out)
            case UnlockDone():
                self._unlock_done(event, now, out)
            case DoorOpened():
                self._door_opened(event.door, now, out)
            case DoorClosed():
                self._door_closed(event.door, now, out)
            case InventoryResult():
                self._inventory(event, now, out)
            case InventoryFailed():
                self._inventory_failed(event, out)
            case Finish():
                self._finish(now, out)
            case Tick():
                self._tick(now, out)
            case MoreTime():
                s = self._need_session()
                s.last_activity = now
                s.warned_for = None
        return out

    # ------------------------------------------------------------ sessions
    def _begin(self, session: str, kind: SessionKind, now: float, *,
               accessible: bool = False) -> None:
        if self.session is not None:
            raise MachineError("another session is in progress")
        if any(r.phase in ("unlocking", "open") for r in self.runs.values()):
            raise MachineError("a door is still open: close it first")
        self.session = _Session(id=session, kind=kind, phase="resolving" if kind != "return"
                                else "active", started=now, last_activity=now,
                                accessible=accessible)

    def _need_session(self, phase: str | None = None) -> _Session:
        s = self.session
        if s is None:
            raise MachineError("no session: present a card or a QR code first")
        if phase is not None and s.phase != phase:
            raise MachineError(f"the session is {s.phase}, not {phase}")
        return s

    def _end(self, s: _Session, outcome: str) -> EndSession:
        s.phase = "ended"
        self.session = None
        return EndSession(s.id, outcome)

    def _resolved(self, event: Resolved, now: float, out: list[Command]) -> None:
        s = self._need_session("resolving")
        s.patron = event.patron
        s.resolved_at = now
        s.last_activity = now
        s.phase = "active"
        if event.patron.role == "staff":
            s.kind = "restock"
            out.append(Notify("restock.choose_doors"))
            return
        # One unlock per door (the shell may list a door once per hold in it), and never a
        # door already in a run: a door forced open meanwhile is counted as stray first.
        s.hold_doors = tuple(dict.fromkeys(
            d for d in event.hold_doors if d in self.doors and d not in self.uncounted
            and (d not in self.runs or self.runs[d].phase == "done")))
        out.append(Notify("borrow.choose_door", {"offline": event.patron.offline,
                                                 "hold_doors": list(s.hold_doors)}))
        for door in s.hold_doors:  # the credential opens exactly the door of their hold
            self._unlock(door, "hold", out)

    def _start_return(self, now: float, out: list[Command]) -> None:
        s = self._need_session()
        door = self._door_for_return(s.accessible)
        if door is None:
            out.append(Notify("return.full"))
            out.append(self._end(s, "refused"))
            return
        self._unlock(door, "return", out)

    def _door_for_return(self, accessible: bool) -> int | None:
        """The emptiest-relative door with room; accessible doors first when asked."""
        free = [n for n, d in self.doors.items() if self.fill.get(n, 0) < d.capacity
                and n not in self.uncounted
                and (n not in self.runs or self.runs[n].phase == "done")]
        if not free:
            return None

        def key(n: int) -> tuple[bool, float, int]:
            d = self.doors[n]
            return (accessible and not d.accessible, self.fill.get(n, 0) / d.capacity, n)

        return min(free, key=key)

    def _choose(self, door: int, now: float, out: list[Command]) -> None:
        s = self._need_session("active")
        if door not in self.doors:
            raise MachineError(f"no door {door} in this cabinet")
        if s.kind == "return":
            raise MachineError("a return session opens its own door")
        run = self.runs.get(door)
        if run is not None and run.phase != "done":
            raise MachineError(f"door {door} is already open")
        if door in self.uncounted:
            raise MachineError(f"door {door} is out of service until it is counted again")
        if (s.resolved_at is not None
                and now - s.resolved_at > self.policy.credential_ttl_s):
            out.append(Notify("refused.credential_expired"))
            if not self._doors_busy():  # a door still being counted needs the session
                out.append(self._end(s, "expired"))
            return
        s.last_activity = now
        self._unlock(door, "restock" if s.kind == "restock" else "borrow", out)

    def _unlock(self, door: int, purpose: str, out: list[Command], *,
                expect_back: tuple[str, ...] = ()) -> None:
        s = self.session
        prev = self.runs.get(door)
        reopens = prev.reopens if prev is not None and purpose == "reopen" else 0
        self.runs[door] = _DoorRun(door=door, purpose=purpose, reopens=reopens,
                                   expect_back=expect_back, since=self._now,
                                   foreign_asked=bool(prev and purpose == "reopen"
                                                      and prev.foreign_asked))
        out.append(Unlock(door, purpose, s.id if s else None,
                          s.patron.reader_id if s and s.patron else None, expect_back))

    def _unlock_done(self, event: UnlockDone, now: float, out: list[Command]) -> None:
        run = self.runs.get(event.door)
        if run is None or run.phase != "unlocking":
            return  # a late answer for a door already handled: nothing to do
        if event.ok:
            out.append(Notify("door.unlocked", {"door": event.door}))
            return
        # The intent stays open: recovery re-inventories the door (nothing was taken, or the
        # door opened after all and the inventory says what happened).
        run.phase = "done"
        if run.purpose == "reopen":
            # The ledger still holds the refused items the reader has and lacks the tags
            # they were to take out: only a count with this session's rules may settle it.
            self.uncounted.add(event.door)
        out.append(AlarmRaised("unlock_failed:" + (event.reason or "no answer"), event.door))
        out.append(Notify("door.unlock_failed", {"door": event.door}))
        s = self.session
        if s is not None and s.kind == "return" and not self.open_doors():
            out.append(self._end(s, "refused"))

    def _door_opened(self, door: int, now: float, out: list[Command]) -> None:
        run = self.runs.get(door)
        if run is None or run.phase == "done":
            if door not in self.doors:
                return
            # Opened with no pulse of ours: forced or a broken latch. Count it on close.
            self.runs[door] = _DoorRun(door=door, purpose="stray", phase="open", opened_at=now)
            out.append(AlarmRaised("door_opened_without_session", door))
            return
        if run.phase == "unlocking":
            run.phase = "open"
            run.opened_at = now
            if self.session is not None:
                self.session.last_activity = now
            out.append(Notify("door.open", {"door": door, "purpose": run.purpose}))

    def _door_closed(self, door: int, now: float, out: list[Command]) -> None:
        run = self.runs.get(door)
        if run is None or run.phase not in ("open", "unlocking"):
            return
        run.phase = "counting"
        run.attempt = 0
        if self.session is not None:
            self.session.last_activity = now
        out.append(Notify("door.closed", {"door": door}))
        out.append(Notify("inventory.running", {"door": door}))
        out.append(Inventory(door, 0))

    # ------------------------------------------------------------ the count
    def _inventory_failed(self, event: InventoryFailed, out: list[Command]) -> None:
        run = self.runs.get(event.door)
        if run is None or run.phase != "counting":
            return
        if run.attempt < self.policy.inventory_retries:
            run.attempt += 1
            out.append(Inventory(event.door, run.attempt))
            return
        # The door's contents are unknown: leave the intent open for recovery to finish.
        run.phase = "done"
        self.uncounted.add(event.door)
        out.append(AlarmRaised("inventory_failed:" + event.reason, event.door))
        out.append(Notify("door.inventory_failed", {"door": event.door}))
        self._maybe_end_return(out)

    def _inventory(self, ev: InventoryResult, now: float, out: list[Command]) -> None:
        run = self.runs.get(ev.door)
        if run is None or run.phase != "counting":
            return
        unreadable = [t for t in ev.tags if not t.readable and t.uid not in ev.known]
        if unreadable and run.attempt < self.policy.inventory_retries:
            run.attempt += 1
            out.append(Inventory(ev.door, run.attempt))
            return
        rec = run.recovered
        s = self.session if rec is None else None
        present = {t.uid: t for t in ev.tags}
        removed = [c for uid, c in ev.known.items() if uid not in present]
        added = [t for uid, t in present.items() if uid not in ev.known]
        purpose = run.purpose
        if rec is not None:
            kind, patron, session_id = rec.kind, rec.patron, rec.session
        elif purpose == "stray" or s is None:  # nobody's: not the session's reader either
            kind, patron, session_id = "stray", None, None
        else:
            kind, patron, session_id = s.kind, s.patron, s.id
        if kind != "restock":
            removed = [c for c in removed if self._placed.get(c.uid, ev.door) == ev.door]

        loans: list[str] = []
        returns: list[Content] = []
        alarms: list[tuple[str | None, str]] = []
        keep: list[Content] = []  # known items not committed as gone (refused, to put back)
        refused: list[tuple[str, str]] = []
        foreign: list[TagRead] = []
        reposition: list[TagRead] = []
        manifest: dict[str, object] | None = None

        if kind in ("borrow",) and patron is not None:
            expected = set(run.expect_back)
            judged: list[Content] = []
            for c in removed:
                if c.item_id is None:  # a tag with no book known (no library data, unread)
                    alarms.append((None, "removed_unidentified:" + c.uid))
                elif c.item_id in expected:  # asked to put it back: not judged again
                    alarms.append((c.item_id, "refused_not_returned:"
                                   + run.refusals.get(c.item_id, "put_back")))
                else:
                    judged.append(c)
            views = [ev.items.get(c.item_id or "", ItemView(item_id=c.item_id or c.uid))
                     for c in judged]
            by_id = {c.item_id or c.uid: c for c in judged}
            final = run.reopens >= self.policy.max_reopens
            verdicts = judge_removals(patron, [v for v in views],
                                      session_loans=s.loans if s else 0,
                                      exposure_left=ev.exposure_left)
            for v in verdicts:
                if v.ok:
                    loans.append(v.item_id)
                elif final:
                    alarms.append((v.item_id, "refused_not_returned:" + v.reason))
                else:
                    refused.append((v.item_id, v.reason))
                    keep.append(by_id[v.item_id])
        elif kind == "return" or (kind == "borrow" and patron is None):
            for c in removed:  # nobody is logged in: anything taken is an alarm
                alarms.append((c.item_id or c.uid, "removed_during_return"))
        elif kind == "restock":
            pass
        else:  # stray: a door opened without a session
            for c in removed:
                alarms.append((c.item_id or c.uid, "removed_without_session"))

        for t in added:
            if kind == "restock":
                continue
            if not t.readable:
                reposition.append(t)
                continue
            verdict = return_verdict(t.item_id, t.owner_library,
                                     known_item=bool(t.item_id and t.item_id in ev.items),
                                     own_library=self.policy.own_library,
                                     network=self.policy.network_libraries)
            if verdict == "accept" and kind != "stray":
                returns.append(Content(t.uid, t.item_id, t.owner_library or
                                       self.policy.own_library or None))
            elif verdict == "accept":
                alarms.append((t.item_id, "appeared_without_session"))
            else:
                foreign.append(t)

        if kind == "restock":
            manifest = {
                "door": ev.door,
                "staff_id": patron.reader_id if patron else None,
                "loaded": sorted(t.item_id or t.uid for t in added),
                "removed": sorted(c.item_id or c.uid for c in removed),
                "unreadable": sorted(t.uid for t in added if not t.readable),
            }

        ask_again = foreign + reposition
        reopen = bool((refused or (ask_again and not run.foreign_asked))
                      and kind in ("borrow", "return") and run.reopens < self.policy.max_reopens)
        pending = {t.uid for t in ask_again} if reopen else set()
        if ask_again and not reopen:
            for t in ask_again:  # left in the door after being asked: recorded, not guessed
                alarms.append((t.item_id, "unrecognised_left:" + t.uid))

        # Tags the reader is asked to take out are not recorded as contents yet; refused
        # items stay recorded until they are back or an alarm says they are gone.
        contents = [Content(t.uid, t.item_id, t.owner_library) for t in ev.tags
                    if t.uid not in pending]
        contents += [c for c in keep if c.uid not in present]
        self.fill[ev.door] = len(contents)
        self.uncounted.discard(ev.door)
        for uid in present:
            if uid not in pending:  # a tag asked out is in no door's contents yet
                self._placed[uid] = ev.door
        if s is not None:
            s.loans += len(loans)
            s.last_activity = now
        out.append(Commit(
            door=ev.door, session=session_id,
            reader_id=patron.reader_id if patron else None,
            offline=bool(patron and patron.offline), grant_id=patron.grant_id if patron else None,
            loans=tuple(loans), returns=tuple(returns), alarms=tuple(alarms),
            contents=tuple(contents), manifest=manifest))
        if loans:
            out.append(Notify("borrow.loaned", {"door": ev.door, "items": loans}))
        if returns:
            out.append(Notify("return.accepted", {"door": ev.door, "items": [
                {"item_id": r.item_id, "owner_library": r.owner_library} for r in returns]}))
        for item, reason in alarms:
            out.append(Notify("alarm.item", {"door": ev.door, "item_id": item,
                                             "reason": reason}))
        if reopen:
            if refused:
                out.append(Notify("borrow.put_back", {"door": ev.door, "items": [
                    {"item_id": i, "reason": r} for i, r in refused]}))
            if foreign:
                out.append(Notify("return.remove_foreign", {"door": ev.door}))
            if reposition:
                out.append(Notify("return.reposition", {"door": ev.door}))
            expect = tuple(i for i, _ in refused)
            reopens = run.reopens + 1
            self._unlock(ev.door, "reopen", out, expect_back=expect)
            self.runs[ev.door].reopens = reopens
            self.runs[ev.door].refusals = dict(refused)
            self.runs[ev.door].foreign_asked = bool(ask_again) or run.foreign_asked
            return
        run.phase = "done"
        if kind == "stray" or rec is not None:
            self.runs.pop(ev.door, None)
        self._maybe_end_return(out)

    def _maybe_end_return(self, out: list[Command]) -> None:
        s = self.session
        if s is not None and s.kind == "return" and not self._doors_busy():
            out.append(Notify("return.done"))
            out.append(self._end(s, "finished"))

    def _doors_busy(self) -> bool:
        return any(r.phase != "done" for r in self.runs.values())

    # ------------------------------------------------------------ finishing and time
    def _finish(self, now: float, out: list[Command]) -> None:
        s = self._need_session()
        if self._doors_busy():
            out.append(Notify("session.close_doors_first", {"doors": self.open_doors()}))
            return
        out.append(Notify("session.finished", {"loans": s.loans}))
        out.append(self._end(s, "finished"))

    def idle_warning_due(self, now: float) -> float | None:
        """Seconds left before the idle timeout when the "need more time?" prompt is due now
        (once per stretch of inactivity), else None. The shell announces it; the machine's
        own ticks stay as they were."""
        s = self.session
        if s is None or s.phase != "active" or self._doors_busy():
            return None
        left = self.policy.session_idle_s - (now - s.last_activity)
        if left > WARN_BEFORE_S or left <= 0 or s.warned_for == s.last_activity:
            return None
        s.warned_for = s.last_activity
        return left

    def _tick(self, now: float, out: list[Command]) -> None:
        p = self.policy
        for run in list(self.runs.values()):
            if run.phase == "unlocking" and now - run.since >= p.unlock_wait_s:
                self._door_closed(run.door, now, out)  # nobody opened it: count it anyway
                continue
            if run.phase != "open" or run.opened_at is None:
                continue
            open_for = now - run.opened_at
            while run.prompts < len(p.door_prompt_s) and open_for >= p.door_prompt_s[run.prompts]:
                run.prompts += 1
                out.append(Notify("door.close_prompt", {"door": run.door, "level": run.prompts}))
            if not run.alarmed and open_for >= p.door_alarm_s:
                run.alarmed = True
                out.append(AlarmRaised("door_left_open", run.door))
                out.append(Notify("alarm.door_left_open", {"door": run.door}))
        s = self.session
        if s is None or self._doors_busy():
            return
        if now - s.last_activity >= p.session_idle_s:
            out.append(Notify("session.timeout"))
            out.append(self._end(s, "timeout"))

    # ------------------------------------------------------------ recovery
    def recover(self, door: int, *, kind: str, session: str | None, patron: Patron | None,
                expect_back: tuple[str, ...], door_open: bool, now: float) -> list[Command]:
        """Finish a door whose intent a crash left open: count it now (or when it closes, if
        it is open) with the rules of the session that opened it, never re-opening it.

        ``kind``: borrow | return | restock | stray (the intent's session kind).

        Also the way back into service for a door in ``uncounted`` (its count failed, or its
        re-open did not unlock). Call it while no session is active: ``patron`` must then be
        the reader as they are now (loans committed since included).
        """
        if door not in self.doors:
            raise MachineError(f"no door {door} in this cabinet")
        self._now = now
        run = _DoorRun(door=door, purpose="recovery", since=now,
                       reopens=self.policy.max_reopens, expect_back=expect_back,
                       foreign_asked=True, recovered=_Recovered(kind, session, patron))
        self.runs[door] = run
        if door_open:
            run.phase = "open"
            run.opened_at = now
            return [Notify("door.close_prompt", {"door": door, "level": 1})]
        run.phase = "counting"
        return [Inventory(door, 0)]
