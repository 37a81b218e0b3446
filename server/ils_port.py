"""The outbox's :class:`~server.ils_outbox.IlsPort` over SIP2: what each entry becomes on the wire.

- **checkout** → ``11`` with the *original* transaction date; an offline entry (the cabinet
  lent without the server) goes with no-block = Y and the cabinet's due date as the nb due
  date, so the ILS records the loan the reader already has, as it was made.
- **checkin** → ``09`` with the return date = when the item came back (transaction date =
  now), no-block = Y for offline returns.
- **renew** → ``29`` with the renewal's due date as nb due date.
- **lookup** → ``17`` item information: circulation status 04/05 is charged, ``AH`` its due
  date; when charged and the entry names a reader, ``63`` patron information with the charged
  items list (``AU``) says whether that reader holds it.

Errors: a lost answer (timeout, drop, garbled) is :class:`~server.ils_outbox.LostAnswer`;
nothing sent (connect/login failed) is :class:`~server.ils_outbox.IlsUnreachable`. A lookup is
idempotent: the client retries it once on a new connection, and if it still gets no answer
the ILS counts as unreachable (the forwarder stops the pass and the row stays uncertain).

A blank (18-space) nb due date is sent only where the profile allows blank dates; otherwise
a real date is sent (pysip2 and other strict servers drop the connection on a blank one).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

import sip2proto
from sip2proto import Message, SIP2Error

from .ils_outbox import Entry, IlsAnswer, IlsItemView, IlsUnreachable, LostAnswer
from .sip2_client import AnswerLost, NotSent, SIP2Client, UnexpectedAnswer

__all__ = ["ANOTHER_READER", "CHARGED_STATUSES", "SIP2IlsPort", "due_of", "item_view"]

#: item information circulation statuses meaning "on loan".
CHARGED_STATUSES = frozenset({"04", "05"})
#: ``IlsItemView.charged_to`` when the item is charged but not to the entry's reader.
ANOTHER_READER = "\x00another-reader"

_ISO = re.compile(r"(\d{4})-?(\d{2})-?(\d{2})")


def due_of(text: str | None, profile: sip2proto.Profile | None = None) -> str | None:
    """An ILS due date (``AH``: a SIP2 date, ISO, or ``YYYYMMDD…``) as ``YYYY-MM-DD``."""
    if not text or not text.strip():
        return None
    if len(text) == sip2proto.DATE_WIDTH:
        try:
            dt = sip2proto.parse_date(text, profile)
        except SIP2Error:
            dt = None
        if dt is not None:
            return dt.date().isoformat()
    m = _ISO.match(text.strip())
    return f"{m.group(1)}-{m.group(2)}-{m.group(3)}" if m else None


def item_view(info: Message, charged_items: list[str] | None, reader_id: str | None,
              item_id: str, profile: sip2proto.Profile | None = None) -> IlsItemView:
    """The view of an 18 answer (+ the reader's charged items, when asked)."""
    charged = (info.get_fixed("circulation_status") or "") in CHARGED_STATUSES
    if not charged:
        return IlsItemView(charged=False)
    due = due_of(info.get("AH"), profile)
    if charged_items is None or reader_id is None:
        return IlsItemView(charged=True, due=due)
    held = any(v.strip() == item_id or v.split(" ", 1)[0] == item_id for v in charged_items)
    return IlsItemView(charged=True, charged_to=reader_id if held else ANOTHER_READER, due=due)


def _utc(dt: datetime) -> datetime:
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def _end_of(day: str) -> datetime:
    y, m, d = (int(x) for x in day[:10].split("-"))
    return datetime(y, m, d, 23, 59, 59)


def _screen(answer: Message) -> str:
    return " ".join(v for v in answer.get_all("AF") if v).strip()


class SIP2IlsPort:
    """:class:`server.ils_outbox.IlsPort` implemented with a :class:`SIP2Client`."""

    def __init__(self, client: SIP2Client) -> None:
        self.client = client
        self.profile = client.config.profile

    def _nb_due(self, entry: Entry) -> datetime | None:
        if entry.due:
            return _end_of(entry.due)
        return None if self.profile.blank_dates_ok else _utc(entry.transaction_at)

    def send(self, entry: Entry) -> IlsAnswer:
        when = _utc(entry.transaction_at)
        try:
            if entry.kind == "checkout":
                answer = self.client.checkout(
                    entry.reader_id or "", entry.item_id, transaction_date=when,
                    no_block=entry.offline, nb_due_date=self._nb_due(entry))
            elif entry.kind == "checkin":
                answer = self.client.checkin(
                    entry.item_id, transaction_date=datetime.now(UTC), return_date=when,
                    no_block=entry.offline)
            elif entry.kind == "renew":
                answer = self.client.renew(
                    entry.reader_id or "", entry.item_id, transaction_date=when,
                    no_block=entry.offline, nb_due_date=self._nb_due(entry))
            else:
                raise ValueError(f"unknown outbox kind {entry.kind!r}")
        except NotSent as exc:
            raise IlsUnreachable(str(exc)) from exc
        except (AnswerLost, UnexpectedAnswer) as exc:
            raise LostAnswer(str(exc)) from exc
        except sip2proto.LocalSIP2Error as exc:  # nothing left: the entry cannot be put on
            return IlsAnswer(ok=False, message=f"not sent: {exc}")  # the wire → staff
        ok = answer.get_fixed("ok") == "1"
        return IlsAnswer(ok=ok, message=_screen(answer))

    def lookup(self, entry: Entry) -> IlsItemView:
        try:
            info = self.client.item_information(entry.item_id)
            charged = (info.get_fixed("circulation_status") or "") in CHARGED_STATUSES
            items: list[str] | None = None
            if charged and entry.reader_id and entry.kind in ("checkout", "renew"):
                patron = self.client.patron_information(entry.reader_id, summary="charged")
                items = patron.get_all("AU")
        except (NotSent, AnswerLost, UnexpectedAnswer) as exc:
            raise IlsUnreachable(f"lookup of the item failed: {exc}") from exc
        return item_view(info, items, entry.reader_id, entry.item_id, self.profile)
