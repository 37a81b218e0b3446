"""Online lookups in the library's ILS: patron validation and item details, cached.

Why (issue [5/6], requirement 3, last sentence): staff screens and the server ask the ILS
"is this reader valid, may they borrow?" and "what is this item, who has it, when is it
due?". Asking the ILS on every screen refresh loads a system we do not own and makes the
server's pages as slow and as available as the ILS; never asking shows stale data. So every
answer is cached with one **freshness rule**:

- an answer younger than ``fresh_s`` (default 300 s) is served from the cache
  (``source="cache"``), the ILS is not asked;
- an older one (or none) → the ILS is asked again (``source="ils"``), and the answer replaces
  the cached one;
- if the ILS cannot answer (nothing sent: connect/login failed; answer lost: timeout, dropped
  connection, garbled; or an unexpected answer), a cached answer younger than ``stale_ok_s``
  (default 24 h) is served with ``stale=True``; otherwise :class:`IlsLookupUnavailable`.

"Not found" is an answer too: an unknown patron (``BL`` = N) is cached as ``valid=False`` and an
unknown item (circulation status 01 "other" with no title, which is what Koha, Evergreen and
the emulator answer) as ``found=False``, so a typo in a barcode is not a stream of ILS
requests. Ages are measured with a monotonic ``clock`` (a wall-clock jump neither freshens
nor expires anything); ``fetched_at`` is the wall time of the ILS answer, for people.

The cache is thread-safe (one lock around the dictionary; the ILS is asked outside it, so a
slow ILS does not hold up cache hits) and bounded: beyond ``max_entries`` the entry fetched
longest ago is evicted. Two threads missing the same key at once may both ask the ILS; both
answers are idempotent reads, the later one is kept.

Logs carry ids through ``syncproto.grants.log_id`` and exception types only — never a
reader's name.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, Generic, Literal, Protocol, TypeVar

import sip2proto
from sip2proto import Message
from syncproto.grants import log_id

from .ils_port import CHARGED_STATUSES, due_of
from .sip2_client import AnswerLost, ClientConfig, NotSent, UnexpectedAnswer

__all__ = [
    "CIRCULATION_WORDS",
    "PATRON_FLAGS",
    "IlsLookup",
    "IlsLookupUnavailable",
    "ItemView",
    "Looked",
    "PatronView",
    "item_view",
    "patron_view",
]

_log = logging.getLogger(__name__)

#: SIP2 patron status (fixed field of 64/24), position → name; "Y" = the condition holds.
PATRON_FLAGS: tuple[str, ...] = (
    "charge_privileges_denied", "renewal_privileges_denied", "recall_privileges_denied",
    "hold_privileges_denied", "card_reported_lost", "too_many_items_charged",
    "too_many_items_overdue", "too_many_renewals", "too_many_claims_of_items_returned",
    "too_many_items_lost", "excessive_outstanding_fines", "excessive_outstanding_fees",
    "recall_overdue", "too_many_items_billed")

#: SIP2 item circulation status (fixed field of 18) → a word.
CIRCULATION_WORDS: dict[str, str] = {
    "01": "other", "02": "on_order", "03": "available", "04": "charged",
    "05": "charged_not_recallable", "06": "in_process", "07": "recalled",
    "08": "waiting_on_hold_shelf", "09": "waiting_to_be_reshelved", "10": "in_transit",
    "11": "claimed_returned", "12": "lost", "13": "missing"}


class IlsLookupUnavailable(Exception):  # noqa: N818 - a state, like sip2_client.NotSent
    """The ILS could not answer and no cached answer is recent enough (``stale_ok_s``)."""

    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(f"the ILS could not be asked about the {kind} ({reason}) and no "
                         f"answer recent enough is cached")
        self.kind = kind
        self.reason = reason


# ----------------------------------------------------------------------------- views


@dataclass(frozen=True, slots=True)
class PatronView:
    """What the ILS says of a patron (63 → 64).

    ``valid``: the ILS knows the patron (``BL``; without ``BL``, a non-empty name).
    ``blocked``: may not borrow (charge privileges denied or card reported lost).
    ``privileges``: charge/renewal/recall/hold → allowed. ``flags``: the names of every
    patron status flag set (see :data:`PATRON_FLAGS`).
    """

    patron_id: str
    valid: bool
    display_name: str
    blocked: bool
    privileges: dict[str, bool]
    flags: list[str]
    charged_items: int | None
    overdue_items: int | None
    hold_items: int | None
    fine_amount: str | None
    currency: str | None
    screen_message: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class ItemView:
    """What the ILS says of an item (17 → 18). ``found`` False: the ILS does not know it."""

    item_id: str
    found: bool
    title: str
    circulation_status: str
    status: str
    charged: bool
    due: str | None
    owner: str | None
    permanent_location: str | None
    current_location: str | None
    hold_queue_length: int | None
    screen_message: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


V = TypeVar("V", PatronView, ItemView)


@dataclass(frozen=True, slots=True)
class Looked(Generic[V]):
    """A lookup's answer and where it came from.

    ``fetched_at``: wall time (UTC, ISO) the ILS gave the answer; ``age_s``: seconds since;
    ``source``: ``"ils"`` (asked now) or ``"cache"``; ``stale``: served from the cache past
    ``fresh_s`` because the ILS could not answer.
    """

    value: V
    fetched_at: str
    age_s: float
    source: Literal["ils", "cache"]
    stale: bool

    def meta(self) -> dict[str, Any]:
        return {"fetched_at": self.fetched_at, "age_s": self.age_s, "source": self.source,
                "stale": self.stale}


def _count(text: str | None) -> int | None:
    if text is None or not text.strip().isdigit():
        return None
    return int(text.strip())


def _screen(answer: Message) -> str:
    return " ".join(v.strip() for v in answer.get_all("AF") if v and v.strip())


def _opt(answer: Message, code: str) -> str | None:
    value = answer.get(code)
    return value.strip() if value is not None and value.strip() else None


def patron_view(answer: Message, patron_id: str) -> PatronView:
    """The view of a 64 patron information answer."""
    name = (answer.get("AE") or "").strip()
    bl = (answer.get("BL") or "").strip().upper()
    valid = bl == "Y" if bl in ("Y", "N") else bool(name)
    status = (answer.get_fixed("patron_status") or "").ljust(len(PATRON_FLAGS))
    flags = [n for n, c in zip(PATRON_FLAGS, status, strict=False) if c.upper() == "Y"]
    privileges = {p: f"{p}_privileges_denied" not in flags
                  for p in ("charge", "renewal", "recall", "hold")}
    blocked = valid and ("charge_privileges_denied" in flags or "card_reported_lost" in flags)
    return PatronView(
        patron_id=patron_id, valid=valid, display_name=name if valid else "", blocked=blocked,
        privileges=privileges, flags=flags,
        charged_items=_count(answer.get_fixed("charged_items_count")),
        overdue_items=_count(answer.get_fixed("overdue_items_count")),
        hold_items=_count(answer.get_fixed("hold_items_count")),
        fine_amount=_opt(answer, "BV"), currency=_opt(answer, "BH"),
        screen_message=_screen(answer))


def item_view(answer: Message, item_id: str,
              profile: sip2proto.Profile | None = None) -> ItemView:
    """The view of an 18 item information answer."""
    code = (answer.get_fixed("circulation_status") or "").strip()
    title = (answer.get("AJ") or "").strip()
    found = bool(title) or code not in ("", "00", "01")
    charged = code in CHARGED_STATUSES
    return ItemView(
        item_id=item_id, found=found, title=title, circulation_status=code,
        status=CIRCULATION_WORDS.get(code, "unknown") if found else "not_found",
        charged=charged, due=due_of(answer.get("AH"), profile) if charged else None,
        owner=_opt(answer, "BG"), permanent_location=_opt(answer, "AQ"),
        current_location=_opt(answer, "AP"), hold_queue_length=_count(answer.get("CF")),
        screen_message=_screen(answer))


# ----------------------------------------------------------------------------- the cache


class LookupClient(Protocol):
    """What the lookup needs of a :class:`server.sip2_client.SIP2Client`."""

    config: ClientConfig

    def patron_information(self, patron_id: str) -> Message: ...

    def item_information(self, item_id: str) -> Message: ...


@dataclass(slots=True)
class _Entry:
    value: PatronView | ItemView
    at: float  # monotonic
    wall: datetime


def _utc_now() -> datetime:
    return datetime.now(UTC)


#: what counts as "the ILS could not answer".
_CANNOT_ANSWER = (NotSent, AnswerLost, UnexpectedAnswer, TimeoutError, OSError)


class IlsLookup:
    """Patron and item lookups in the ILS, cached by the freshness rule of this module.

    Args:
        client: a :class:`~server.sip2_client.SIP2Client` (or anything with its
            ``patron_information``/``item_information`` and ``config``), or a factory called
            once, on the first lookup (so creating the lookup opens nothing).
        fresh_s: answers younger than this are served from the cache.
        stale_ok_s: while the ILS cannot answer, cached answers younger than this are served
            with ``stale=True``.
        clock: monotonic seconds (ages); ``wall``: the aware time of ``fetched_at``.
        max_entries: cache bound (patrons and items together); the oldest fetched goes first.
    """

    def __init__(self, client: LookupClient | Callable[[], LookupClient], *,
                 fresh_s: float = 300.0, stale_ok_s: float = 86400.0,
                 clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], datetime] = _utc_now, max_entries: int = 10_000) -> None:
        if fresh_s < 0 or stale_ok_s < fresh_s:
            raise ValueError("need 0 <= fresh_s <= stale_ok_s")
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        if hasattr(client, "item_information"):
            self._client: LookupClient | None = client  # type: ignore[assignment]
            self._factory: Callable[[], LookupClient] | None = None
        else:
            self._client = None
            self._factory = client  # type: ignore[assignment]
        self.fresh_s = fresh_s
        self.stale_ok_s = stale_ok_s
        self.clock = clock
        self.wall = wall
        self.max_entries = max_entries
        self._cache: OrderedDict[tuple[str, str], _Entry] = OrderedDict()
        self._lock = threading.Lock()
        #: counters for status pages and tests: ils, cache, stale, unavailable.
        self.stats: dict[str, int] = {"ils": 0, "cache": 0, "stale": 0, "unavailable": 0}

    # -- public -----------------------------------------------------------------------------

    def patron(self, patron_id: str) -> Looked[PatronView]:
        """Patron validation (63 → 64), by the freshness rule.

        Raises:
            IlsLookupUnavailable: the ILS cannot answer and nothing recent enough is cached.
            ValueError: an id that cannot be put on the wire (empty, or a SIP2 delimiter).
        """
        pid = self._key(patron_id)

        def ask(client: LookupClient) -> PatronView:
            return patron_view(client.patron_information(pid), pid)

        return self._get("patron", pid, ask)  # type: ignore[return-value]

    def item(self, item_id: str) -> Looked[ItemView]:
        """Item details (17 → 18), by the freshness rule (raises as :meth:`patron`)."""
        iid = self._key(item_id)

        def ask(client: LookupClient) -> ItemView:
            return item_view(client.item_information(iid), iid, client.config.profile)

        return self._get("item", iid, ask)  # type: ignore[return-value]

    def forget(self, kind: str | None = None, key: str | None = None) -> None:
        """Drop cached answers: all, all of ``kind`` ("patron"/"item"), or one."""
        with self._lock:
            for k in list(self._cache):
                if (kind is None or k[0] == kind) and (key is None or k[1] == key):
                    del self._cache[k]

    def __len__(self) -> int:
        with self._lock:
            return len(self._cache)

    def close(self) -> None:
        """Close the client (when it has one with ``close``)."""
        close = getattr(self._client, "close", None)
        if callable(close):
            close()

    # -- the rule ---------------------------------------------------------------------------

    @staticmethod
    def _key(value: str) -> str:
        key = value.strip() if isinstance(value, str) else ""
        if not key:
            raise ValueError("an id is required")
        if "|" in key or "\r" in key or "\n" in key:
            raise ValueError("an id must not contain '|' or line breaks")
        return key

    def _client_now(self) -> LookupClient:
        with self._lock:
            if self._client is None:
                assert self._factory is not None
                self._client = self._factory()
            return self._client

    def _looked(self, entry: _Entry, source: Literal["ils", "cache"],
                stale: bool) -> Looked[Any]:
        age = max(0.0, self.clock() - entry.at)
        return Looked(value=entry.value, fetched_at=entry.wall.isoformat(),
                      age_s=round(age, 3), source=source, stale=stale)

    def _get(self, kind: str, key: str,
             ask: Callable[[LookupClient], PatronView | ItemView]) -> Looked[Any]:
        k = (kind, key)
        with self._lock:
            cached = self._cache.get(k)
            if cached is not None and self.clock() - cached.at < self.fresh_s:
                self.stats["cache"] += 1
                return self._looked(cached, "cache", False)
        try:
            value = ask(self._client_now())
        except _CANNOT_ANSWER as exc:
            with self._lock:
                cached = self._cache.get(k)
                if cached is not None and self.clock() - cached.at < self.stale_ok_s:
                    self.stats["stale"] += 1
                    _log.info("ILS %s lookup %s failed (%s); serving the cached answer",
                              kind, log_id(key), type(exc).__name__)
                    return self._looked(cached, "cache", True)
                self.stats["unavailable"] += 1
            _log.warning("ILS %s lookup %s failed (%s); nothing recent enough cached", kind,
                         log_id(key), type(exc).__name__)
            raise IlsLookupUnavailable(kind, type(exc).__name__) from exc
        except sip2proto.LocalSIP2Error as exc:  # could not be encoded: nothing was sent
            raise ValueError(f"the {kind} id cannot be sent to the ILS: {exc}") from exc
        entry = _Entry(value=value, at=self.clock(), wall=self.wall())
        with self._lock:
            self._cache[k] = entry
            self._cache.move_to_end(k)
            while len(self._cache) > self.max_entries:
                self._cache.popitem(last=False)
            self.stats["ils"] += 1
        return self._looked(entry, "ils", False)
