"""Notifications to readers ("hold ready", "due soon"): an outbox and pluggable senders.

Why an outbox table and not a send at the moment a hold becomes ready: that moment is inside
a cabinet's sync transaction, and a slow or dead mail server must never hold up (or roll
back) circulation. The notice is queued in the same transaction as the change that causes
it, and :func:`send_pending` drains the queue later (``POST /api/notifications/send``, or a
timer calling it). ``(kind, reader, ref)`` is unique, so the same notice is never queued
twice however often its cause is applied.

Senders: :class:`OutboxLogSender` (default: logs a hashed reader id, nothing leaves the
server), :class:`SmtpSender` (mail through a relay), :class:`WebhookSender` (JSON POST to the
library's messaging gateway, which knows the readers' phones — the server stores none in
clear). :func:`sender_from_env` picks one from ``LENDBOX_NOTIFY_*`` variables.
"""

from __future__ import annotations

import logging
import os
import smtplib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from email.message import EmailMessage
from typing import Any, Protocol

import httpx
from sqlalchemy import Connection, select, update
from sqlalchemy.dialects import postgresql, sqlite

from syncproto.grants import log_id

from .schema import items, notifications

__all__ = [
    "MAX_ATTEMPTS",
    "Notification",
    "OutboxLogSender",
    "Sender",
    "SmtpSender",
    "WebhookSender",
    "queue",
    "queue_due_soon",
    "send_pending",
    "sender_from_env",
]

_log = logging.getLogger(__name__)

#: A notice that failed this many times stays in the outbox with its last error (staff see
#: it) instead of being retried for ever.
MAX_ATTEMPTS = 5
#: At most this many notices per drain: a big backlog goes out over several calls.
SEND_BATCH = 200


@dataclass(frozen=True)
class Notification:
    """One queued notice as a sender sees it."""

    id: int
    reader_id: str
    kind: str
    ref: str
    body: dict[str, Any]
    created_at: datetime

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "reader_id": self.reader_id, "kind": self.kind, "ref": self.ref,
                "body": self.body, "created_at": self.created_at.isoformat()}


class Sender(Protocol):
    """Delivers one notice or raises (the outbox records the error and tries again)."""

    name: str

    def send(self, notification: Notification) -> None: ...


class OutboxLogSender:
    """The default: writes one log line per notice (hashed reader id) and marks it sent."""

    name = "outbox_log"

    def send(self, notification: Notification) -> None:
        _log.info("notice %s %s for reader %s", notification.kind, notification.ref,
                  log_id(notification.reader_id))


_SUBJECTS = {"hold_ready": "Your hold is ready / 您预约的图书已到柜",
             "due_soon": "A loan is due soon / 您借阅的图书即将到期"}


class SmtpSender:
    """Mail through an SMTP relay. ``to_addr`` may hold ``{reader_id}``: readers' addresses
    are not stored here, so the relay (or a mailbox per reader id) maps them."""

    name = "smtp"

    def __init__(self, host: str, port: int, from_addr: str,
                 to_addr: str = "{reader_id}@readers.invalid", timeout: float = 10.0) -> None:
        self.host, self.port, self.from_addr = host, port, from_addr
        self.to_addr, self.timeout = to_addr, timeout

    def send(self, notification: Notification) -> None:
        message = EmailMessage()
        message["From"] = self.from_addr
        message["To"] = self.to_addr.format(reader_id=notification.reader_id)
        message["Subject"] = _SUBJECTS.get(notification.kind, notification.kind)
        message["X-Lendbox-Ref"] = notification.ref
        lines = [f"{k}: {v}" for k, v in sorted(notification.body.items())]
        message.set_content("\n".join(lines) + "\n")
        with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
            smtp.send_message(message)


class WebhookSender:
    """POSTs the notice as JSON to ``url``; any answer but 2xx is a failure."""

    name = "webhook"

    def __init__(self, url: str, timeout: float = 10.0) -> None:
        self.url, self.timeout = url, timeout

    def send(self, notification: Notification) -> None:
        response = httpx.post(self.url, json=notification.as_json(), timeout=self.timeout)
        response.raise_for_status()


def sender_from_env(env: Mapping[str, str] | None = None) -> Sender:
    """The sender ``LENDBOX_NOTIFY_SENDER`` names: ``log`` (default), ``smtp``
    (``LENDBOX_SMTP_HOST``, ``LENDBOX_SMTP_PORT`` = 25, ``LENDBOX_SMTP_FROM``,
    ``LENDBOX_SMTP_TO``) or ``webhook`` (``LENDBOX_WEBHOOK_URL``). ValueError for a missing
    or unknown setting."""
    env = os.environ if env is None else env
    kind = env.get("LENDBOX_NOTIFY_SENDER", "log").strip().lower()
    if kind == "log":
        return OutboxLogSender()
    if kind == "smtp":
        host, from_addr = env.get("LENDBOX_SMTP_HOST"), env.get("LENDBOX_SMTP_FROM")
        if not host or not from_addr:
            raise ValueError("LENDBOX_NOTIFY_SENDER=smtp needs LENDBOX_SMTP_HOST and "
                             "LENDBOX_SMTP_FROM")
        to_addr = env.get("LENDBOX_SMTP_TO", "{reader_id}@readers.invalid")
        return SmtpSender(host, int(env.get("LENDBOX_SMTP_PORT", "25")), from_addr, to_addr)
    if kind == "webhook":
        url = env.get("LENDBOX_WEBHOOK_URL")
        if not url:
            raise ValueError("LENDBOX_NOTIFY_SENDER=webhook needs LENDBOX_WEBHOOK_URL")
        return WebhookSender(url)
    raise ValueError(f"unknown LENDBOX_NOTIFY_SENDER {kind!r}; one of log, smtp, webhook")


# ----------------------------------------------------------------------------- the outbox


def queue(conn: Connection, *, reader_id: str, kind: str, ref: str, body: dict[str, Any],
          now: datetime) -> bool:
    """Queue a notice unless (kind, reader, ref) was queued before; True if queued now.

    ON CONFLICT DO NOTHING rather than read-then-insert: two transactions queueing the same
    notice on PostgreSQL would otherwise abort one of them on the unique key.
    """
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    done = conn.execute(dialect.insert(notifications).values(
        reader_id=reader_id, kind=kind, ref=ref, body=body, created_at=now, attempts=0)
        .on_conflict_do_nothing().returning(notifications.c.id))
    # RETURNING, not rowcount: psycopg's rowcount for a skipped row is not reliably 0
    return done.first() is not None


def queue_due_soon(conn: Connection, now: datetime, days: int = 2) -> int:
    """Queue a "due soon" notice for every loan due within ``days`` (not yet overdue); how
    many were new. The ref names the due date, so a renewed loan is reminded again."""
    today = now.date()
    last = (today + timedelta(days=days)).isoformat()
    rows = conn.execute(select(items.c.id, items.c.title, items.c.borrower_id, items.c.due).where(
        items.c.status == "loaned", items.c.borrower_id.is_not(None),
        items.c.due.is_not(None), items.c.due >= today.isoformat(), items.c.due <= last)).all()
    queued = 0
    for row in rows:
        try:
            date.fromisoformat(row.due)
        except ValueError:
            continue
        queued += queue(conn, reader_id=row.borrower_id, kind="due_soon",
                        ref=f"loan:{row.id}:{row.due}", now=now,
                        body={"item_id": row.id, "title": row.title, "due": row.due})
    return queued


def send_pending(conn: Connection, sender: Sender, now: datetime) -> dict[str, int]:
    """Send queued notices through ``sender``: each is marked sent, or keeps its error and
    one more attempt. Counts ``{"sent", "failed"}``."""
    rows = conn.execute(select(notifications).where(
        notifications.c.sent_at.is_(None), notifications.c.attempts < MAX_ATTEMPTS)
        .order_by(notifications.c.id).limit(SEND_BATCH)).all()
    sent = failed = 0
    for row in rows:
        notice = Notification(id=row.id, reader_id=row.reader_id, kind=row.kind, ref=row.ref,
                              body=dict(row.body or {}), created_at=row.created_at)
        try:
            sender.send(notice)
        except Exception as exc:  # any failure of a sender is recorded, never fatal
            failed += 1
            _log.warning("notice %d via %s failed: %s", row.id, sender.name, type(exc).__name__)
            conn.execute(update(notifications).where(notifications.c.id == row.id).values(
                attempts=row.attempts + 1, error=f"{type(exc).__name__}: {exc}"[:300]))
            continue
        sent += 1
        conn.execute(update(notifications).where(notifications.c.id == row.id).values(
            attempts=row.attempts + 1, sent_at=now, sender=sender.name[:32], error=None))
    return {"sent": sent, "failed": failed}
