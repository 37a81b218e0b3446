"""Credit lending (信用借阅): instant e-card registration, tiers, grants, deny list, exposure.

Why a policy object and not constants: how much a library lends on trust is a decision of
the library, not of the code — a city that accepts a third-party credit score (芝麻信用-style)
sets thresholds, another relies on the reader's own history only. :class:`CreditPolicy` is
loaded from a TOML/JSON table and validated up front (the error names the key), so a typo
in the config stops the server at start instead of granting the wrong allowance.

The tier rule (:meth:`CreditPolicy.tier_for`):

- the credit score picks a base tier: the highest threshold the score reaches; below every
  threshold, ``below_tier``; no score at all, ``no_score_tier`` (lowest by default);
- a reader's own history can only *raise* it, by one tier: at least
  ``history.on_time_returns`` returns on time and no item overdue now.

The tier chosen at registration is stored in ``readers.tier`` (staff may set it too);
:func:`issue_grant` applies the history rule on top each time a grant is signed, so a good
record pays off without anyone re-assessing the reader, and a bad one (an overdue item)
removes the bonus at once.

Why deny rows *and* statuses: cabinets only learn about blocks through deny-list deltas
(``deny_list`` rows after their version), while the server refuses grants by
``readers.status``. :func:`block`, :func:`unblock` and :func:`suspend_overdue` always change
both in one transaction.

Personal data: an id number or a phone number is hashed (:func:`syncproto.grants.card_hash`,
each with its own pepper, so the hash of an id number never equals the hash of the same
digits presented as a card) before it touches the database or a log line; nothing here logs
either, and reader ids in logs are :func:`syncproto.grants.log_id` hashes.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import tomllib
import uuid as uuid_mod
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, func, insert, select, update

from syncproto.grants import card_hash, log_id, sign_grant
from syncproto.messages import SignedGrant

from . import keys
from .schema import cabinets, deny_list, events, grants, items, readers

__all__ = [
    "DEFAULT_POLICY",
    "ID_PEPPER",
    "PHONE_PEPPER",
    "CreditPolicy",
    "CreditRefused",
    "History",
    "PolicyError",
    "TierSpec",
    "block",
    "fleet_exposure",
    "id_hash_of",
    "id_number_problem",
    "current_grant",
    "issue_grant",
    "load_policy",
    "phone_matches",
    "reader_history",
    "register_reader",
    "suspend_overdue",
    "unblock",
]

_log = logging.getLogger(__name__)

#: Peppers of the identity hashes: distinct from ``CARD_PEPPER`` so an id number and a card
#: barcode with the same digits never hash alike. Changing one changes every stored hash,
#: so a new pepper is a new version suffix, never an edit.
ID_PEPPER = "lendbox-id-number-v1"
PHONE_PEPPER = "lendbox-phone-v1"

#: The longest grant a policy may set: only the current and the previous server key are
#: trusted, so a grant must end before the key after next replaces its own (keys.py).
MAX_GRANT_TTL = timedelta(days=30)

# 18-character resident identity number (GB 11643): 17 digits and an ISO 7064 MOD 11-2
# check character (0-9 or X).
_ID_NUMBER = re.compile(r"[0-9]{17}[0-9X]")
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"
_PHONE = re.compile(r"1[3-9][0-9]{9}")


class PolicyError(ValueError):
    """A credit policy that cannot be used; ``key`` is the dotted path of the bad entry."""

    def __init__(self, key: str, problem: str) -> None:
        self.key = key
        self.problem = problem
        super().__init__(f"credit policy {key}: {problem}")


class CreditRefused(ValueError):
    """No grant for this reader (``reason``: blocked, suspended, expired or status name)."""

    def __init__(self, reason: str, detail: str = "") -> None:
        self.reason = reason
        super().__init__(f"{reason}: {detail}" if detail else reason)


# ----------------------------------------------------------------------------- policy


@dataclass(frozen=True, slots=True)
class TierSpec:
    """What a tier allows: loans at once, how many of them on credit while a cabinet is
    offline, and how long a grant of this tier lives (the offline window it opens)."""

    name: str
    max_loans: int
    offline_allowance: int
    grant_ttl: timedelta


@dataclass(frozen=True, slots=True)
class History:
    """What a reader's own record says: returns made by the due date, returns made late,
    and items on loan past their due date now."""

    on_time_returns: int = 0
    late_returns: int = 0
    overdue_now: int = 0


@dataclass(frozen=True, slots=True)
class CreditPolicy:
    """Tiers (lowest first) and the rule choosing one; build with :meth:`from_dict`."""

    tiers: tuple[TierSpec, ...]
    #: (minimum score, tier), highest score first
    thresholds: tuple[tuple[int, str], ...]
    below_tier: str
    no_score_tier: str
    history_on_time_returns: int

    def rank(self, tier: str) -> int:
        """Position of ``tier`` (0 = lowest); an unknown tier name ranks lowest: a stored
        tier the config no longer has is a slip, and the safe side of it is the least."""
        for i, spec in enumerate(self.tiers):
            if spec.name == tier:
                return i
        return 0

    def tier(self, name: str) -> TierSpec:
        """The tier ``name``, or the lowest tier when the policy has no such tier."""
        return self.tiers[self.rank(name)]

    def base_tier(self, credit_score: int | None) -> str:
        """The tier the score alone gives (``no_score_tier`` without a score)."""
        if credit_score is None:
            return self.no_score_tier
        for minimum, tier in self.thresholds:
            if credit_score >= minimum:
                return tier
        return self.below_tier

    def raise_by_history(self, tier: str, history: History) -> str:
        """``tier`` one step up when the record earns it; never lower than ``tier``."""
        rank = self.rank(tier)
        if (history.on_time_returns >= self.history_on_time_returns
                and history.overdue_now == 0 and rank + 1 < len(self.tiers)):
            return self.tiers[rank + 1].name
        return self.tiers[rank].name

    def tier_for(self, credit_score: int | None, history: History | None = None) -> str:
        """The tier a reader gets: the score's tier, raised one step by a good history."""
        return self.raise_by_history(self.base_tier(credit_score), history or History())

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CreditPolicy:
        """A policy from its TOML/JSON table; :class:`PolicyError` names the bad key.

        Shape (see :data:`DEFAULT_POLICY_TABLE`): ``tiers`` an array of tables, lowest
        first, each ``name``, ``max_loans``, ``offline_allowance``, ``grant_ttl_hours``;
        ``score.thresholds`` a table tier → minimum score, ``score.below`` and
        ``score.no_score`` tier names; ``history.on_time_returns`` an int ≥ 1.
        """
        if not isinstance(data, Mapping):
            raise PolicyError("(root)", "must be a table")
        _unknown(data, {"tiers", "score", "history"}, "")
        raw_tiers = data.get("tiers")
        if not isinstance(raw_tiers, list) or not raw_tiers:
            raise PolicyError("tiers", "must be a non-empty array of tables")
        tiers: list[TierSpec] = []
        for i, raw in enumerate(raw_tiers):
            where = f"tiers[{i}]"
            if not isinstance(raw, Mapping):
                raise PolicyError(where, "must be a table")
            _unknown(raw, {"name", "max_loans", "offline_allowance", "grant_ttl_hours"}, where)
            name = raw.get("name")
            if not isinstance(name, str) or not re.fullmatch(r"[a-z][a-z0-9_-]{0,31}", name):
                raise PolicyError(f"{where}.name", "must be a lower-case name of 1..32 characters")
            if any(t.name == name for t in tiers):
                raise PolicyError(f"{where}.name", f"tier {name!r} is defined twice")
            max_loans = _int(raw, "max_loans", where, 0, 100)
            allowance = _int(raw, "offline_allowance", where, 0, 100)
            if allowance > max_loans:
                raise PolicyError(f"{where}.offline_allowance", "must not exceed max_loans")
            hours = raw.get("grant_ttl_hours")
            if isinstance(hours, bool) or not isinstance(hours, int | float) or not (
                    0 < hours <= MAX_GRANT_TTL.total_seconds() / 3600):
                raise PolicyError(f"{where}.grant_ttl_hours",
                                  f"must be a number of hours in (0, {MAX_GRANT_TTL.days * 24}]")
            tiers.append(TierSpec(name, max_loans, allowance, timedelta(hours=hours)))
        names = [t.name for t in tiers]

        def tier_name(value: Any, key: str) -> str:
            if value not in names:
                raise PolicyError(key, f"must be one of the tiers {names}")
            return str(value)

        score = data.get("score", {})
        if not isinstance(score, Mapping):
            raise PolicyError("score", "must be a table")
        _unknown(score, {"thresholds", "below", "no_score"}, "score")
        raw_thresholds = score.get("thresholds", {})
        if not isinstance(raw_thresholds, Mapping):
            raise PolicyError("score.thresholds", "must be a table tier → minimum score")
        thresholds: list[tuple[int, str]] = []
        for tier in raw_thresholds:
            tier_name(tier, f"score.thresholds.{tier}")
            thresholds.append((_int(raw_thresholds, tier, "score.thresholds", 0, 1000), tier))
        thresholds.sort(reverse=True)
        below = tier_name(score.get("below", names[0]), "score.below")
        no_score = tier_name(score.get("no_score", names[0]), "score.no_score")
        # Monotone in the score: a higher score must never give a lower tier.
        ranks = [names.index(t) for _, t in thresholds] + [names.index(below)]
        for (minimum, tier), higher, lower in zip(thresholds, ranks, ranks[1:], strict=False):
            if higher < lower:
                raise PolicyError(f"score.thresholds.{tier}",
                                  f"score {minimum} gives a lower tier than a smaller score")
        history = data.get("history", {})
        if not isinstance(history, Mapping):
            raise PolicyError("history", "must be a table")
        _unknown(history, {"on_time_returns"}, "history")
        on_time = _int(history, "on_time_returns", "history", 1, 100_000) if (
            "on_time_returns" in history) else 10
        return cls(tiers=tuple(tiers), thresholds=tuple(thresholds), below_tier=below,
                   no_score_tier=no_score, history_on_time_returns=on_time)


def _unknown(table: Mapping[str, Any], known: set[str], where: str) -> None:
    for key in table:
        if key not in known:
            path = f"{where}.{key}" if where else str(key)
            raise PolicyError(path, f"unknown key (known: {sorted(known)})")


def _int(table: Mapping[str, Any], key: str, where: str, low: int, high: int) -> int:
    value = table.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise PolicyError(f"{where}.{key}", f"must be an integer in {low}..{high}")
    return value


def load_policy(path: str | Path) -> CreditPolicy:
    """A policy from a ``.toml`` or ``.json`` file (:meth:`CreditPolicy.from_dict`)."""
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    try:
        data = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
        raise PolicyError("(file)", f"{path}: {exc}") from None
    return CreditPolicy.from_dict(data)


#: The default: the tiers the first server slice had (ingest.TIERS), 7-day grants, 芝麻信用-
#: style thresholds 650 / 550, and one step up after 10 returns on time with none overdue.
DEFAULT_POLICY_TABLE: dict[str, Any] = {
    "tiers": [
        {"name": "new", "max_loans": 5, "offline_allowance": 1, "grant_ttl_hours": 168},
        {"name": "standard", "max_loans": 10, "offline_allowance": 2, "grant_ttl_hours": 168},
        {"name": "trusted", "max_loans": 15, "offline_allowance": 4, "grant_ttl_hours": 168},
    ],
    "score": {"thresholds": {"trusted": 650, "standard": 550}, "below": "new",
              "no_score": "new"},
    "history": {"on_time_returns": 10},
}
DEFAULT_POLICY = CreditPolicy.from_dict(DEFAULT_POLICY_TABLE)


# ----------------------------------------------------------------------------- identity


def id_number_problem(value: str) -> str | None:
    """Why ``value`` is not an 18-character resident id number, or None.

    The check character is verified so a mistyped digit is refused at registration, not
    turned into a second identity the dedup cannot match.
    """
    text = value.strip().upper()
    if _ID_NUMBER.fullmatch(text) is None:
        return "must be 17 digits and a check digit or X"
    total = sum(int(d) * w for d, w in zip(text[:17], _ID_WEIGHTS, strict=True))
    if _ID_CHECK[total % 11] != text[17]:
        return "check digit does not match"
    return None


def id_hash_of(id_number: str) -> str:
    problem = id_number_problem(id_number)
    if problem:
        raise ValueError(f"id_number {problem}")
    return card_hash(id_number.strip().upper(), pepper=ID_PEPPER)


def _phone_hash(phone: str) -> str:
    text = phone.strip().removeprefix("+86").strip()
    if _PHONE.fullmatch(text) is None:
        raise ValueError("phone must be an 11-digit mobile number")
    return card_hash(text, pepper=PHONE_PEPPER)


def _utc(now: datetime) -> datetime:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be a timezone-aware datetime")
    return now.astimezone(UTC)


def register_reader(conn: Connection, *, display_name: str, id_number: str,
                    phone: str | None = None, credit_score: int | None = None,
                    now: datetime, policy: CreditPolicy = DEFAULT_POLICY) -> str:
    """The reader id of the person with this id number, registering them if new (秒办证).

    One person, one card: a second registration with the same id number returns the
    existing reader unchanged (not a second card with a fresh allowance). The id number and
    phone are stored only as peppered hashes. Raises ValueError for a bad id number, phone,
    name or score (the route answers 422).
    """
    now = _utc(now)
    id_hash = id_hash_of(id_number)
    phone_hash = _phone_hash(phone) if phone is not None else None
    name = display_name.strip()
    if not 1 <= len(name) <= 100:
        raise ValueError("display_name must be 1..100 characters")
    if credit_score is not None and (isinstance(credit_score, bool)
                                     or not 0 <= credit_score <= 1000):
        raise ValueError("credit_score must be an integer in 0..1000")
    existing = conn.execute(select(readers.c.id).where(readers.c.id_number_hash == id_hash)).first()
    if existing is not None:
        return str(existing.id)
    reader_id = f"E{secrets.token_hex(8)}"  # "E": an electronic card, not a library barcode
    conn.execute(insert(readers).values(
        id=reader_id, card_hash=None, id_number_hash=id_hash, phone_hash=phone_hash,
        display_name=name, role="reader", tier=policy.base_tier(credit_score), status="ok",
        home_branch_id=None, registered_at=now, credit_score=credit_score))
    _log.info("registered reader %s (tier %s)", log_id(reader_id), policy.base_tier(credit_score))
    return reader_id


def phone_matches(conn: Connection, reader_id: str, phone: str) -> bool:
    """Whether ``phone`` is the one registered with the reader (hash comparison)."""
    stored = conn.execute(select(readers.c.phone_hash).where(readers.c.id == reader_id)).scalar()
    try:
        return stored is not None and stored == _phone_hash(phone)
    except ValueError:
        return False


# ----------------------------------------------------------------------------- history, grants


def _due_date(text: str | None) -> date | None:
    try:
        return date.fromisoformat(text[:10]) if text else None
    except ValueError:
        return None


def reader_history(conn: Connection, reader_id: str, now: datetime) -> History:
    """The reader's record from the events cabinets sent, and the items on loan now.

    A return counts as on time when its (clock-corrected) day is not after the due date of
    the loan of the same item before it. Caveat: the scan reads this reader's loan events
    through the JSON payload (no index); fine for a branch, to be replaced by a loans table
    when the circulation engine keeps one.
    """
    today = _utc(now).date()
    loaned = conn.execute(select(items.c.due).where(items.c.borrower_id == reader_id,
                                                    items.c.status == "loaned")).all()
    overdue = sum(1 for r in loaned if (d := _due_date(r.due)) is not None and d < today)
    reader_key = events.c.payload["reader_id"].as_string()
    item_ids = sorted({r.item_id for r in conn.execute(
        select(events.c.item_id).where(events.c.kind == "loan", reader_key == reader_id,
                                       events.c.item_id.is_not(None))).all()})
    on_time = late = 0
    for start in range(0, len(item_ids), 500):
        rows = conn.execute(
            select(events.c.kind, events.c.item_id, events.c.at_corrected, events.c.payload)
            .where(events.c.item_id.in_(item_ids[start:start + 500]),
                   events.c.kind.in_(("loan", "return")))
            .order_by(events.c.item_id, events.c.at_corrected)).all()
        open_due: dict[str, date | None] = {}
        for row in rows:
            if row.kind == "loan":
                if (row.payload or {}).get("reader_id") == reader_id:
                    open_due[row.item_id] = _due_date((row.payload or {}).get("due"))
                else:
                    open_due.pop(row.item_id, None)
            elif row.item_id in open_due:
                due = open_due.pop(row.item_id)
                returned = row.at_corrected.astimezone(UTC).date()
                if due is None or returned <= due:
                    on_time += 1
                else:
                    late += 1
    return History(on_time_returns=on_time, late_returns=late, overdue_now=overdue)


def issue_grant(conn: Connection, reader_id: str, now: datetime, *,
                policy: CreditPolicy = DEFAULT_POLICY) -> SignedGrant:
    """Sign and store a fresh grant for ``reader_id`` with the current server key.

    The tier is ``readers.tier`` raised by the reader's history (:meth:`CreditPolicy.
    raise_by_history`); allowance and lifetime come from that tier. Raises
    :class:`CreditRefused` when the reader's status is not ``ok`` (blocked, suspended,
    expired: a cabinet must not lend on credit to them) and LookupError for an unknown
    reader.
    """
    now = _utc(now)
    reader = conn.execute(select(readers.c.id, readers.c.tier, readers.c.status)
                          .where(readers.c.id == reader_id)).first()
    if reader is None:
        raise LookupError(f"no reader {reader_id!r}")
    if reader.status != "ok":
        raise CreditRefused(str(reader.status), f"reader {log_id(reader_id)} gets no grant")
    tier = policy.tier(policy.raise_by_history(reader.tier, reader_history(conn, reader_id, now)))
    keys.ensure_key(conn, now)
    key_id, private = keys.signing_key(conn)
    grant = sign_grant(grant_id=uuid_mod.uuid4().hex, reader_id=reader_id, tier=tier.name,
                       max_loans=tier.max_loans, offline_allowance=tier.offline_allowance,
                       issued_at=now, expires_at=now + tier.grant_ttl, key_id=key_id,
                       private_key=private)
    conn.execute(insert(grants).values(grant_id=grant.grant_id, reader_id=reader_id,
                                       signed=grant.model_dump(mode="json"), issued_at=now,
                                       expires_at=grant.expires_at, suspended=False))
    return grant


def current_grant(conn: Connection, reader_id: str, now: datetime, *,
                  min_left: timedelta = timedelta(hours=1),
                  policy: CreditPolicy = DEFAULT_POLICY) -> SignedGrant:
    """The reader's newest usable grant signed by a trusted key, or a fresh one.

    Why reuse: every QR refresh (each minute on the reader's phone) would otherwise sign
    and store a new grant. A grant with less than ``min_left`` to live, suspended, or
    signed by a key no longer trusted is replaced. Refusals as :func:`issue_grant`.
    """
    now = _utc(now)
    status = conn.execute(select(readers.c.status).where(readers.c.id == reader_id)).scalar()
    if status is None:
        raise LookupError(f"no reader {reader_id!r}")
    if status != "ok":
        raise CreditRefused(str(status))
    trusted = keys.trusted(conn)
    for row in conn.execute(
            select(grants.c.signed).where(grants.c.reader_id == reader_id,
                                          grants.c.suspended.is_(False),
                                          grants.c.expires_at > now + min_left)
            .order_by(grants.c.issued_at.desc()).limit(5)).all():
        grant = SignedGrant.model_validate(row.signed)
        if grant.key_id in trusted:
            return grant
    return issue_grant(conn, reader_id, now, policy=policy)


# ----------------------------------------------------------------------------- deny list


def _deny(conn: Connection, reader_id: str, denied: bool, reason: str, now: datetime) -> int:
    """Append one deny-list change; returns its version (what cabinets ask "after")."""
    result = conn.execute(insert(deny_list).values(reader_id=reader_id, denied=denied,
                                                   reason=reason[:64], at=now)
                          .returning(deny_list.c.version))
    return int(result.scalar_one())


def _suspend_grants(conn: Connection, reader_id: str) -> None:
    conn.execute(update(grants).where(grants.c.reader_id == reader_id,
                                      grants.c.suspended.is_(False)).values(suspended=True))


def block(conn: Connection, reader_id: str, reason: str, now: datetime) -> int:
    """Block a reader (lost card, staff decision): status ``blocked``, grants suspended, a
    deny row cabinets receive with their next sync. Returns the deny version.

    LookupError for an unknown reader. Blocking a blocked reader adds no second row.
    """
    now = _utc(now)
    status = conn.execute(select(readers.c.status).where(readers.c.id == reader_id)).scalar()
    if status is None:
        raise LookupError(f"no reader {reader_id!r}")
    _suspend_grants(conn, reader_id)
    if status == "blocked":
        return _last_version(conn, reader_id)
    conn.execute(update(readers).where(readers.c.id == reader_id).values(status="blocked"))
    return _deny(conn, reader_id, True, reason or "blocked", now)


def unblock(conn: Connection, reader_id: str, reason: str, now: datetime) -> int:
    """Lift a block or suspension: status ``ok`` and a deny row removing the reader.

    Old grants stay suspended (they were signed for a reader then blocked); the next
    resolve or QR refresh signs a new one. LookupError for an unknown reader.
    """
    now = _utc(now)
    status = conn.execute(select(readers.c.status).where(readers.c.id == reader_id)).scalar()
    if status is None:
        raise LookupError(f"no reader {reader_id!r}")
    if status == "ok":
        return _last_version(conn, reader_id)
    conn.execute(update(readers).where(readers.c.id == reader_id).values(status="ok"))
    return _deny(conn, reader_id, False, reason or "unblocked", now)


def _last_version(conn: Connection, reader_id: str) -> int:
    return int(conn.execute(select(func.coalesce(func.max(deny_list.c.version), 0))
                            .where(deny_list.c.reader_id == reader_id)).scalar_one())


def suspend_overdue(conn: Connection, now: datetime, *,
                    policy: CreditPolicy = DEFAULT_POLICY) -> list[str]:
    """Suspend readers with an item past its due date (``overdue``) or more loans than
    their tier allows (``overdraft``: offline cabinets each counting only what they knew).

    Each gets status ``suspended``, their grants suspended and a deny row, so offline
    cabinets stop lending to them at their next sync. Readers already not ``ok`` are left
    alone (a block stays a block). Returns the ids suspended now, sorted. Run it from a
    periodic job; lifting a suspension is :func:`unblock` (staff, after the return).
    """
    now = _utc(now)
    today = now.date().isoformat()
    overdue = {r.borrower_id for r in conn.execute(
        select(items.c.borrower_id).where(items.c.status == "loaned",
                                          items.c.borrower_id.is_not(None),
                                          items.c.due.is_not(None), items.c.due < today))}
    counts = conn.execute(
        select(items.c.borrower_id, readers.c.tier, func.count().label("n"))
        .join(readers, readers.c.id == items.c.borrower_id)
        .where(items.c.status == "loaned").group_by(items.c.borrower_id, readers.c.tier)).all()
    overdraft = {r.borrower_id for r in counts if r.n > policy.tier(r.tier).max_loans}
    done: list[str] = []
    for reader_id in sorted(overdue | overdraft):
        changed = conn.execute(update(readers).where(readers.c.id == reader_id,
                                                     readers.c.status == "ok")
                               .values(status="suspended"))
        if not changed.rowcount:
            continue
        _suspend_grants(conn, reader_id)
        _deny(conn, reader_id, True, "overdue" if reader_id in overdue else "overdraft", now)
        _log.info("suspended reader %s", log_id(reader_id))
        done.append(reader_id)
    return done


# ----------------------------------------------------------------------------- exposure


def fleet_exposure(conn: Connection, *, policy: CreditPolicy = DEFAULT_POLICY,
                   k: int | None = None) -> dict[str, Any]:
    """The worst case of items out on credit the server has not seen (README "Offline
    credit"), from the caps stored per cabinet and the policy's tiers.

    - fleet: ``E_fleet ≤ Σ offline_exposure_cap(c)`` over active cabinets (rule 4 of the
      cabinet: its unacknowledged offline loans never exceed its cap);
    - per reader of a tier: ``offline_allowance × k``, k = the number of different offline
      cabinets they reach before their grant expires (each cabinet counts only what it
      knows); ``k`` defaults to the number of active cabinets, the worst case.
    """
    rows = conn.execute(select(cabinets.c.id, cabinets.c.offline_exposure_cap)
                        .where(cabinets.c.active.is_(True)).order_by(cabinets.c.id)).all()
    active = len(rows)
    reach = active if k is None else k
    if reach < 0:
        raise ValueError("k must not be negative")
    fleet = sum(int(r.offline_exposure_cap) for r in rows)
    counts = {str(r.tier): int(r.n) for r in conn.execute(
        select(readers.c.tier, func.count().label("n")).where(readers.c.status == "ok")
        .group_by(readers.c.tier))}
    per_tier = []
    for spec in policy.tiers:
        readers_in_tier = sum(n for t, n in counts.items() if policy.tier(t).name == spec.name)
        per_tier.append({
            "tier": spec.name, "offline_allowance": spec.offline_allowance,
            "grant_ttl_hours": spec.grant_ttl.total_seconds() / 3600, "k": reach,
            "per_reader_bound": spec.offline_allowance * reach, "readers": readers_in_tier,
        })
    return {
        "active_cabinets": active,
        "cabinets": [{"id": r.id, "offline_exposure_cap": int(r.offline_exposure_cap)}
                     for r in rows],
        "fleet_bound": fleet,
        "formula": "E_fleet <= sum over active cabinets c of offline_exposure_cap(c)",
        "per_reader": per_tier,
        "per_reader_formula": "per reader <= offline_allowance x k, k = offline cabinets "
                              "reached before the grant expires",
        "explanation": (f"{active} active cabinets with caps summing to {fleet}: at most "
                        f"{fleet} items out on credit unseen by the server, however long the "
                        f"outage; a reader of a tier takes at most its offline allowance at "
                        f"each of k={reach} offline cabinets, and never past the fleet bound."),
    }
