"""Collection rotation (轮换): which books leave a cabinet, which come in, and why.

Why this exists: a cabinet stocked once and left alone goes stale — the same books sit behind
the same doors while readers stop looking (a city's complaint: 书刊更新慢). Each cabinet gets
a *profile* (themes as 中图法 class letters with a share of the free space, how many books a
door holds, after how many days without a loan a book is stale) and :func:`propose` turns
the profile and the current state of the collection into a list for the restock staff:
books to take out, each with its reason, and books to bring in, each with its reason.
:func:`apply` puts that list on the cabinet's restock list (``server.restock``), where the
cabinet's restock manifest closes the tasks like any other.

The rules (docs/server-contracts.md, "Rotation (D)"; the README has the user's version):

- **take out** (a book in the cabinet): ``damaged``; ``other_branch`` (its home branch is
  not the cabinet's and the cabinet's branch does not float); ``off_profile`` (its class
  letter is not one of the profile's themes; an unclassified book is never off-profile — we
  cannot tell); ``stale`` (no loan for ``stale_days``, counted from ``last_loan_at``, else
  from ``acquired_at``; a book with neither date is never stale — no evidence, no move).
  One reason per book, the first of that order.
- **bring in** (a book ``on_shelf``): ``hold`` (a waiting or assigned hold picks up here and
  no restock task moves the copy yet), ``recommended`` (a 荐购 shelved in the last 30 days),
  ``new_acquisition`` (acquired in the last 30 days), ``popular_nearby`` (its title — ISBN,
  else the copy — was lent in the last 30 days at a *similar* cabinet: one whose profile
  shares a letter with this one's; an empty profile shares every letter). Except for holds,
  a book comes in only if this cabinet would keep it: not damaged, not reference-only, of
  this branch (or a floating one), in a theme letter, not stale.
- **never** proposed: a book on an open restock task anywhere (someone already moves it), a
  book with an active hold (the holds part moves those; a hold for this cabinet is only
  brought in, never taken out), and for bring-in anything not ``on_shelf`` (loaned, lost,
  missing, in transit, in another cabinet).
- **size**: free space = capacity − stock + take-outs, where stock counts the pending tasks
  (an open unload is already gone, an open load already there) so that a second proposal
  after :func:`apply` only holds what changed. Capacity is ``cabinets.capacity``; when it is
  0 (unknown), ``per_door`` × the doors the cabinet reported in its inventory snapshots;
  without snapshots either, the current stock: books are swapped one for one.
- **split**: holds come first (a reader is waiting); the rest of the free space is split by
  the theme shares (largest remainder, ties by letter), each letter filled in bring-in
  priority order (hold, recommended, new_acquisition, popular_nearby; newest / most lent
  first, then item id); what a letter cannot fill and the unshared part (1 − Σ shares) go
  to the remaining candidates of any theme letter in the same order.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Row, func, insert, select, update

from . import restock
from .schema import (
    branches,
    cabinets,
    collection_profiles,
    door_snapshots,
    events,
    holds,
    items,
    recommendations,
    restock_tasks,
)

__all__ = [
    "BRING_IN_REASONS",
    "LETTERS",
    "RECENT_DAYS",
    "TAKE_OUT_REASONS",
    "Line",
    "NoProfile",
    "Profile",
    "Proposal",
    "UnknownCabinet",
    "apply",
    "cabinet_exists",
    "check_themes",
    "get_profile",
    "letter_of",
    "propose",
    "put_profile",
    "quotas",
    "rotation_ref",
]

#: The 22 top-level classes of the Chinese Library Classification (中图法); L, M, W and Y are
#: not used by it, so a profile naming them is a typo.
LETTERS = frozenset("ABCDEFGHIJKNOPQRSTUVXZ")
#: "Recent" for acquisitions, arrived 荐购 and loans at similar cabinets.
RECENT_DAYS = 30
TAKE_OUT_REASONS = ("damaged", "other_branch", "off_profile", "stale")
BRING_IN_REASONS = ("hold", "recommended", "new_acquisition", "popular_nearby")
_ACTIVE_HOLDS = ("waiting", "assigned", "ready")
_SHARE_SLACK = 1e-9  # 0.1 + 0.2 + 0.7 is 1.0000000000000002 in floats


class UnknownCabinet(LookupError):
    """No cabinet with this id."""


class NoProfile(LookupError):
    """The cabinet has no collection profile: nothing to rotate towards."""


# ----------------------------------------------------------------------------- profiles


@dataclass(frozen=True)
class Profile:
    """A cabinet's collection profile (a ``collection_profiles`` row)."""

    cabinet_id: str
    themes: dict[str, float]
    per_door: int
    stale_days: int
    updated_at: datetime

    @property
    def letters(self) -> frozenset[str]:
        """The theme letters; empty means a general collection (every letter fits)."""
        return frozenset(self.themes)

    def fits(self, letter: str | None) -> bool:
        """Whether a book of class ``letter`` belongs in this profile."""
        return not self.themes or letter in self.themes

    def as_dict(self) -> dict[str, Any]:
        return {"cabinet_id": self.cabinet_id, "themes": dict(sorted(self.themes.items())),
                "per_door": self.per_door, "stale_days": self.stale_days,
                "updated_at": self.updated_at.isoformat()}


def check_themes(themes: Mapping[str, float]) -> dict[str, float]:
    """``themes`` if every key is a 中图法 class letter and the shares (each 0..1) sum to at
    most 1; else ValueError naming what is wrong (the API shows it as a 422)."""
    bad = sorted(letter for letter in themes if letter not in LETTERS)
    if bad:
        raise ValueError(f"not 中图法 class letters: {', '.join(map(repr, bad))}; use one of "
                         f"{' '.join(sorted(LETTERS))} (upper case)")
    for letter, share in themes.items():
        if isinstance(share, bool) or not isinstance(share, int | float) or not (
                math.isfinite(share) and 0 <= share <= 1):
            raise ValueError(f"the share of {letter!r} must be a number from 0 to 1, not {share!r}")
    total = sum(themes.values())
    if total > 1 + _SHARE_SLACK:
        raise ValueError(f"the shares sum to {total:g}; at most 1 (the rest is free choice "
                         "among the theme letters)")
    return {letter: float(share) for letter, share in sorted(themes.items())}


def _profile_of(row: Row[Any]) -> Profile:
    return Profile(row.cabinet_id, {str(k): float(v) for k, v in dict(row.themes).items()},
                   int(row.per_door), int(row.stale_days), row.updated_at)


def get_profile(conn: Connection, cabinet_id: str) -> Profile | None:
    """The cabinet's profile, or None if it has none."""
    row = conn.execute(select(collection_profiles).where(
        collection_profiles.c.cabinet_id == cabinet_id)).first()
    return None if row is None else _profile_of(row)


def put_profile(conn: Connection, cabinet_id: str, *, themes: Mapping[str, float],
                per_door: int, stale_days: int, now: datetime) -> Profile:
    """Create or replace the cabinet's profile. UnknownCabinet, or ValueError for bad themes
    or counts out of range (per_door 1..500, stale_days 1..3650)."""
    clean = check_themes(themes)
    if not 1 <= per_door <= 500 or not 1 <= stale_days <= 3650:
        raise ValueError("per_door must be 1..500 and stale_days 1..3650")
    if _cabinet(conn, cabinet_id) is None:
        raise UnknownCabinet(cabinet_id)
    values = {"themes": clean, "per_door": per_door, "stale_days": stale_days, "updated_at": now}
    if get_profile(conn, cabinet_id) is None:
        conn.execute(insert(collection_profiles).values(cabinet_id=cabinet_id, **values))
    else:
        conn.execute(update(collection_profiles).where(
            collection_profiles.c.cabinet_id == cabinet_id).values(**values))
    return Profile(cabinet_id, clean, per_door, stale_days, now)


# ----------------------------------------------------------------------------- the proposal


@dataclass(frozen=True)
class Line:
    """One book to move, with the reason staff see next to it."""

    item_id: str
    title: str
    category: str
    reason: str
    detail: str

    def as_dict(self) -> dict[str, str]:
        return {"item_id": self.item_id, "title": self.title, "category": self.category,
                "reason": self.reason, "detail": self.detail}


@dataclass(frozen=True)
class Proposal:
    """What to take out of and bring into one cabinet, and how the size was found."""

    cabinet_id: str
    capacity: int
    capacity_source: str  # cabinet | doors | stock (see the module docstring)
    stock: int  # books in the cabinet once the open restock tasks are done
    free: int  # slots to fill: capacity − stock + take-outs (never below 0)
    quotas: dict[str, int]  # slots per theme letter after the holds
    take_out: list[Line] = field(default_factory=list)
    bring_in: list[Line] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"cabinet_id": self.cabinet_id, "capacity": self.capacity,
                "capacity_source": self.capacity_source, "stock": self.stock,
                "free": self.free, "quotas": self.quotas,
                "take_out": [line.as_dict() for line in self.take_out],
                "bring_in": [line.as_dict() for line in self.bring_in]}


def letter_of(category: str | None) -> str | None:
    """The 中图法 top-level class of a call number / class number ("I247.5" → "I")."""
    first = (category or "").strip()[:1].upper()
    return first if first in LETTERS else None


@dataclass(frozen=True)
class _Context:
    """What every rule needs, read once per proposal."""

    cabinet_id: str
    branch_id: str
    floating: bool
    profile: Profile
    now: datetime
    busy: frozenset[str]  # items on an open restock task, anywhere
    hold_pickup: Mapping[str, str]  # item → pickup cabinet of the hold first in line

    def other_branch(self, item: Row[Any]) -> bool:
        return (item.home_branch_id is not None and item.home_branch_id != self.branch_id
                and not self.floating)

    def stale_since(self, item: Row[Any]) -> datetime | None:
        """When the stale clock started, if it ran out (else None)."""
        since = item.last_loan_at or item.acquired_at
        if since is None or self.now - since < timedelta(days=self.profile.stale_days):
            return None
        return since  # type: ignore[no-any-return]


def cabinet_exists(conn: Connection, cabinet_id: str) -> bool:
    """Whether a cabinet with this id is registered."""
    return _cabinet(conn, cabinet_id) is not None


def _cabinet(conn: Connection, cabinet_id: str) -> Row[Any, Any, Any, Any] | None:
    """The cabinet with its branch's ``floating``, or None."""
    columns = (cabinets.c.id, cabinets.c.branch_id, cabinets.c.capacity, branches.c.floating)
    return conn.execute(select(*columns).join(branches, branches.c.id == cabinets.c.branch_id)
                        .where(cabinets.c.id == cabinet_id)).first()


def _hold_pickups(conn: Connection) -> dict[str, str]:
    """For each item with an active hold, the pickup cabinet of the hold first in line
    (assigned or ready before waiting, then the oldest)."""
    rows = conn.execute(select(holds.c.item_id, holds.c.pickup_cabinet_id, holds.c.status)
                        .where(holds.c.status.in_(_ACTIVE_HOLDS))
                        .order_by(holds.c.placed_at, holds.c.id)).all()
    first: dict[str, str] = {}
    for row in sorted(rows, key=lambda r: r.status == "waiting"):  # stable: keeps age order
        first.setdefault(row.item_id, row.pickup_cabinet_id)
    return first


def _context(conn: Connection, cabinet_id: str, now: datetime) -> _Context:
    cabinet = _cabinet(conn, cabinet_id)
    if cabinet is None:
        raise UnknownCabinet(cabinet_id)
    profile = get_profile(conn, cabinet_id)
    if profile is None:
        raise NoProfile(cabinet_id)
    busy = conn.execute(select(restock_tasks.c.item_id).where(
        restock_tasks.c.status == "open")).scalars()
    return _Context(cabinet_id, cabinet.branch_id, bool(cabinet.floating), profile, now,
                    frozenset(busy), _hold_pickups(conn))


def _take_out_reason(item: Row[Any], ctx: _Context) -> tuple[str, str] | None:
    """Why this book should leave the cabinet (the first rule that applies), or None."""
    if item.damaged:
        return "damaged", "marked damaged"
    if ctx.other_branch(item):
        return "other_branch", f"belongs to branch {item.home_branch_id}, not {ctx.branch_id}"
    letter = letter_of(item.category)
    if letter is not None and not ctx.profile.fits(letter):
        themes = "".join(sorted(ctx.profile.letters))
        return "off_profile", f"class {letter} is not one of the themes {themes}"
    since = ctx.stale_since(item)
    if since is not None:
        what = "last lent" if item.last_loan_at is not None else "never lent; acquired"
        days = (ctx.now - since).days
        return "stale", (f"{what} {since.date().isoformat()}, {days} days ago "
                         f"(stale after {ctx.profile.stale_days})")
    return None


def _take_outs(conn: Connection, ctx: _Context) -> list[Line]:
    rows = conn.execute(select(items).where(
        items.c.status == "in_cabinet", items.c.location_cabinet_id == ctx.cabinet_id)
        .order_by(items.c.id)).all()
    lines: list[Line] = []
    for row in rows:
        if row.id in ctx.busy or row.id in ctx.hold_pickup:
            continue
        found = _take_out_reason(row, ctx)
        if found is not None:
            lines.append(Line(row.id, row.title, row.category, *found))
    order = {reason: i for i, reason in enumerate(TAKE_OUT_REASONS)}
    return sorted(lines, key=lambda line: (order[line.reason], line.item_id))


def _stock(conn: Connection, cabinet_id: str) -> int:
    """Books in the cabinet once its open restock tasks are done."""
    inside = set(conn.execute(select(items.c.id).where(
        items.c.status == "in_cabinet", items.c.location_cabinet_id == cabinet_id)).scalars())
    tasks = conn.execute(select(restock_tasks.c.item_id, restock_tasks.c.action).where(
        restock_tasks.c.cabinet_id == cabinet_id, restock_tasks.c.status == "open")).all()
    for task in tasks:
        if task.action == "unload":
            inside.discard(task.item_id)
        else:
            inside.add(task.item_id)
    return len(inside)


def _capacity(conn: Connection, cabinet: Row[Any, Any, Any, Any], profile: Profile,
              stock: int) -> tuple[int, str]:
    """(capacity, where it came from): the cabinet's, else doors × per_door, else the stock."""
    if cabinet.capacity > 0:
        return int(cabinet.capacity), "cabinet"
    doors = int(conn.execute(select(func.count()).select_from(door_snapshots).where(
        door_snapshots.c.cabinet_id == cabinet.id)).scalar_one())
    if doors > 0:
        return profile.per_door * doors, "doors"
    return stock, "stock"


# ----------------------------------------------------------------------------- bring-in candidates


@dataclass(frozen=True)
class _Candidate:
    row: Row[Any]
    reason: str
    detail: str

    @property
    def letter(self) -> str | None:
        return letter_of(self.row.category)

    def line(self) -> Line:
        return Line(self.row.id, self.row.title, self.row.category, self.reason, self.detail)


def _available(row: Row[Any], ctx: _Context) -> bool:
    """On the shelf, not being moved, not held for another cabinet."""
    return (row.status == "on_shelf" and row.id not in ctx.busy
            and ctx.hold_pickup.get(row.id, ctx.cabinet_id) == ctx.cabinet_id)


def _would_keep(row: Row[Any], ctx: _Context) -> bool:
    """Whether this cabinet would keep the book once in (else bringing it is churn)."""
    letter = letter_of(row.category)
    fits = ctx.profile.fits(letter) and (letter is not None or not ctx.profile.themes)
    return (fits and not row.damaged and not row.reference_only and not ctx.other_branch(row)
            and ctx.stale_since(row) is None)


def _hold_candidates(conn: Connection, ctx: _Context) -> list[_Candidate]:
    rows = conn.execute(select(items, holds.c.id.label("hold_id"), holds.c.placed_at).join(
        holds, holds.c.item_id == items.c.id).where(
        holds.c.pickup_cabinet_id == ctx.cabinet_id, holds.c.status.in_(("waiting", "assigned")))
        .order_by(holds.c.placed_at, holds.c.id)).all()
    return [_Candidate(r, "hold", f"hold {r.hold_id} placed {r.placed_at.date().isoformat()} "
                                  "picks up here") for r in rows]


def _recommended_candidates(conn: Connection, ctx: _Context) -> list[_Candidate]:
    since = ctx.now - timedelta(days=RECENT_DAYS)
    rows = conn.execute(select(items, recommendations.c.id.label("rec_id"),
                               recommendations.c.updated_at.label("shelved_at")).join(
        recommendations, recommendations.c.item_id == items.c.id).where(
        recommendations.c.status == "shelved", recommendations.c.updated_at >= since)
        .order_by(recommendations.c.updated_at.desc(), items.c.id)).all()
    return [_Candidate(r, "recommended", f"荐购 {r.rec_id} shelved "
                                         f"{r.shelved_at.date().isoformat()}") for r in rows]


def _recent_candidates(conn: Connection, ctx: _Context) -> list[_Candidate]:
    since = ctx.now - timedelta(days=RECENT_DAYS)
    rows = conn.execute(select(items).where(
        items.c.status == "on_shelf", items.c.acquired_at >= since)
        .order_by(items.c.acquired_at.desc(), items.c.id)).all()
    return [_Candidate(r, "new_acquisition", f"acquired {r.acquired_at.date().isoformat()}")
            for r in rows]


def _similar_cabinets(conn: Connection, ctx: _Context) -> list[str]:
    """Other cabinets whose profile shares a theme letter with this one (empty: all)."""
    rows = conn.execute(select(collection_profiles).where(
        collection_profiles.c.cabinet_id != ctx.cabinet_id)).all()
    mine = ctx.profile.letters
    return sorted(row.cabinet_id for row in rows
                  if not mine or not row.themes or mine & set(row.themes))


def _popular_candidates(conn: Connection, ctx: _Context) -> list[_Candidate]:
    similar = _similar_cabinets(conn, ctx)
    if not similar:
        return []
    lent = conn.execute(select(events.c.item_id, func.count().label("n")).where(
        events.c.kind == "loan", events.c.applied.is_(True), events.c.item_id.is_not(None),
        events.c.cabinet_id.in_(similar),
        events.c.at_corrected >= ctx.now - timedelta(days=RECENT_DAYS))
        .group_by(events.c.item_id)).all()
    if not lent:
        return []
    loans = {r.item_id: int(r.n) for r in lent}
    # a title, not a copy, is popular: count by ISBN so another copy of it can come in
    keys: dict[str, str | None] = {r.id: r.isbn for r in conn.execute(
        select(items.c.id, items.c.isbn).where(items.c.id.in_(sorted(loans))))}
    by_key: Counter[str] = Counter()
    for item_id, n in loans.items():
        by_key[keys.get(item_id) or item_id] += n
    isbns = sorted(k for i, k in keys.items() if k)
    rows = conn.execute(select(items).where(items.c.status == "on_shelf", (
        items.c.id.in_(sorted(loans)) | items.c.isbn.in_(isbns)))).all()
    ranked = sorted(rows, key=lambda r: (-by_key[r.isbn or r.id], r.id))
    return [_Candidate(r, "popular_nearby", f"{by_key[r.isbn or r.id]} loans in the last "
                                            f"{RECENT_DAYS} days at similar cabinets")
            for r in ranked]


def _candidates(conn: Connection, ctx: _Context) -> tuple[list[_Candidate], list[_Candidate]]:
    """(hold candidates, theme candidates), each available book once, in priority order."""
    seen: set[str] = set()
    held: list[_Candidate] = []
    for cand in _hold_candidates(conn, ctx):
        if _available(cand.row, ctx) and cand.row.id not in seen:
            seen.add(cand.row.id)
            held.append(cand)
    themed: list[_Candidate] = []
    for source in (_recommended_candidates, _recent_candidates, _popular_candidates):
        for cand in source(conn, ctx):
            row = cand.row
            if row.id not in seen and _available(row, ctx) and _would_keep(row, ctx):
                seen.add(row.id)
                themed.append(cand)
    return held, themed


# ----------------------------------------------------------------------------- sizing


def quotas(themes: Mapping[str, float], slots: int) -> dict[str, int]:
    """``slots`` split by the theme shares: floor(Σ shares × slots) slots in all, given out
    by largest remainder (ties: alphabetical), so the split is exact and reproducible."""
    if slots <= 0 or not themes:
        return {letter: 0 for letter in sorted(themes)}
    raw = {letter: share * slots for letter, share in themes.items()}
    given = {letter: math.floor(value + _SHARE_SLACK) for letter, value in raw.items()}
    total = min(slots, math.floor(sum(themes.values()) * slots + _SHARE_SLACK))
    by_remainder = sorted(raw, key=lambda letter: (-(raw[letter] - given[letter]), letter))
    for letter in by_remainder[:max(0, total - sum(given.values()))]:
        given[letter] += 1
    return dict(sorted(given.items()))


def _select(held: Sequence[_Candidate], themed: Sequence[_Candidate], free: int,
            themes: Mapping[str, float]) -> tuple[list[_Candidate], dict[str, int]]:
    """Holds first, then each letter's quota, then the rest in priority order."""
    chosen = list(held[:free])
    rest = free - len(chosen)
    shares = quotas(themes, rest)
    picked: set[int] = set()
    for letter, quota in shares.items():
        fitting = [i for i, c in enumerate(themed) if c.letter == letter][:quota]
        picked.update(fitting)
    for i in range(len(themed)):
        if len(picked) >= rest:
            break
        picked.add(i)
    chosen.extend(themed[i] for i in sorted(picked))
    return chosen, shares


def propose(conn: Connection, cabinet_id: str, now: datetime) -> Proposal:
    """The rotation proposal for one cabinet at ``now`` (reads only; same state, same
    answer). UnknownCabinet, NoProfile."""
    ctx = _context(conn, cabinet_id, now)
    cabinet = _cabinet(conn, cabinet_id)
    assert cabinet is not None  # _context checked it
    take_out = _take_outs(conn, ctx)
    stock = _stock(conn, cabinet_id)
    capacity, source = _capacity(conn, cabinet, ctx.profile, stock)
    free = max(0, capacity - stock + len(take_out))
    held, themed = _candidates(conn, ctx)
    chosen, shares = _select(held, themed, free, ctx.profile.themes)
    return Proposal(cabinet_id, capacity, source, stock, free, shares, take_out,
                    [cand.line() for cand in chosen])


# ----------------------------------------------------------------------------- apply


def rotation_ref(cabinet_id: str, now: datetime) -> str:
    """The ref of a day's rotation tasks (UTC date): one rotation per cabinet and day."""
    return f"rotation:{cabinet_id}:{now.date().isoformat()}"


def apply(conn: Connection, cabinet_id: str, now: datetime) -> tuple[str, list[dict[str, Any]]]:
    """Put the current proposal on the cabinet's restock list; (ref, the tasks created).

    Idempotent: books already on an open task are not proposed again and the stock counts
    the open tasks, so applying twice with nothing changed creates nothing the second time.
    Call it with the cabinet locked (``db.lock_cabinet``) so two applies do not interleave.
    """
    proposal = propose(conn, cabinet_id, now)
    ref = rotation_ref(cabinet_id, now)
    before = {task["id"] for task in restock.open_tasks(conn, cabinet_id=cabinet_id)}
    wanted: Iterable[tuple[Line, restock.Action, str]] = [
        *((line, "unload", "rotation_out") for line in proposal.take_out),
        *((line, "load", "rotation_in") for line in proposal.bring_in)]
    created: list[dict[str, Any]] = []
    for line, action, reason in wanted:
        task_id = restock.add_task(conn, cabinet_id=cabinet_id, item_id=line.item_id,
                                   action=action, reason=reason, ref=ref, now=now)
        if task_id not in before:
            created.append({"id": task_id, "item_id": line.item_id, "action": action,
                            "reason": reason, "why": line.reason, "ref": ref})
    return ref, created
