"""Who may take what: the lending and offline-credit rules, as pure functions.

Why apart from the session machine: these are the rules a library's policy people read and
argue about (limits, holds, reference copies, offline credit), and the ones whose worst case
the README promises; one small module with no state makes that promise checkable.

Offline credit (信用借阅) rests on three independent limits, all of which must hold:
- the reader's signed grant (``max_loans`` over all their loans, known at the last contact),
- the grant's ``offline_allowance``, counted over every offline loan under that grant that
  this cabinet knows of (a new grant, after a sync, starts a new count),
- the cabinet's ``offline_exposure_cap``: items lent while the server has not yet seen them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

__all__ = ["ItemView", "Patron", "Verdict", "judge_removals", "REFUSAL_REASONS", "return_verdict"]

#: Why an item may not be taken; each has a message in the screen catalogue.
REFUSAL_REASONS = ("hold_for_other", "reference_only", "limit_reached", "offline_allowance",
                   "exposure_cap")


@dataclass(frozen=True, slots=True, kw_only=True)
class Patron:
    """A resolved reader (or staff member) as the lending rules see them.

    ``loans`` are their current loans across the network as last known; ``offline_used`` the
    offline loans under ``grant_id`` this cabinet knows of. ``holds``: items held for them in
    this cabinet."""

    reader_id: str
    role: Literal["reader", "staff"] = "reader"
    loans: int = 0
    max_loans: int = 10
    offline: bool = False
    grant_id: str | None = None
    offline_allowance: int = 0
    offline_used: int = 0
    holds: frozenset[str] = field(default_factory=frozenset)


@dataclass(frozen=True, slots=True, kw_only=True)
class ItemView:
    """What the rules need of an item taken from a door (from the item cache)."""

    item_id: str
    reference_only: bool = False
    hold_for: str | None = None


@dataclass(frozen=True, slots=True)
class Verdict:
    item_id: str
    ok: bool
    reason: str = ""  # one of REFUSAL_REASONS when not ok


def judge_removals(patron: Patron, removed: Sequence[ItemView], *, session_loans: int,
                   exposure_left: int) -> list[Verdict]:
    """Decide, for each item a reader took, whether it becomes a loan.

    Items held for this reader are judged first so that a limit never costs them their hold;
    the rest in item-id order, so the same door gives the same verdicts every time.
    ``session_loans`` are loans already granted in this session (other doors, earlier
    closes); ``exposure_left`` is the cabinet's remaining offline cap (ignored online).
    """
    budget = patron.max_loans - patron.loans - session_loans
    offline_budget = patron.offline_allowance - patron.offline_used - (
        session_loans if patron.offline else 0)
    exposure = exposure_left
    order = sorted(removed, key=lambda it: (it.item_id not in patron.holds, it.item_id))
    verdicts: list[Verdict] = []
    for it in order:
        reason = ""
        if it.hold_for is not None and it.hold_for != patron.reader_id:
            reason = "hold_for_other"
        elif it.reference_only:
            reason = "reference_only"
        elif budget <= 0:
            reason = "limit_reached"
        elif patron.offline and offline_budget <= 0:
            reason = "offline_allowance"
        elif patron.offline and exposure <= 0:
            reason = "exposure_cap"
        if reason:
            verdicts.append(Verdict(it.item_id, False, reason))
            continue
        budget -= 1
        if patron.offline:
            offline_budget -= 1
            exposure -= 1
        verdicts.append(Verdict(it.item_id, True))
    return verdicts


def return_verdict(item_id: str | None, owner_library: str | None, *, known_item: bool,
                   own_library: str, network: Iterable[str]) -> str:
    """Whether a tag put into a door is a library book this cabinet may take back.

    Returns ``accept`` or ``foreign`` (not a book of a library in the network, or no
    library data at all: ask to remove it). Unreadable tags are the machine's business.
    A tag without an owner library is the cabinet's own library's: most tags in Chinese
    libraries carry only the item id.
    """
    if item_id is None:
        return "foreign"
    owner = owner_library or own_library
    if owner in set(network) or owner == own_library or known_item:
        return "accept"
    return "foreign"
