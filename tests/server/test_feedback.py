"""荐购, ratings and notification senders, on both databases and against real local servers.

What must hold: an ISBN is accepted exactly when its check digit matches (hypothesis), a
recommendation moves only along need → review → ordered → shelved (or rejected), each step
audited and visible to the reader; a rating event counts exactly once however often it is
re-sent, and a bad score is dropped with a log line; a notice is queued once per (kind,
reader, ref) and each sender really delivers it (a tiny SMTP server, a real HTTP server),
or records the error and the attempt.
"""

from __future__ import annotations

import http.server
import json
import logging
import socketserver
import threading
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import Engine, select

from server import feedback, notify
from server.db import write_tx
from server.schema import audit, notifications, ratings
from syncproto.grants import log_id
from syncproto.messages import CabinetEvent, SyncBatch
from tests.server.test_holds import NOW, World, add_item, make_world
from tests.server.test_security import assert_error, bearer



@pytest.fixture
def world(engine: Engine) -> Iterator[World]:
    with make_world(engine) as made:
        yield made


# ----------------------------------------------------------------------------- ISBN (pure)


def isbn13(body: str) -> str:
    total = sum(int(d) * (3 if i % 2 else 1) for i, d in enumerate(body))
    return body + str((10 - total % 10) % 10)


def isbn10(body: str) -> str:
    check = (11 - sum(int(d) * (10 - i) for i, d in enumerate(body)) % 11) % 11
    return body + ("X" if check == 10 else str(check))


@given(body=st.text(alphabet="0123456789", min_size=12, max_size=12))
def test_every_isbn13_with_its_check_digit_is_valid_and_one_typo_is_not(body: str) -> None:
    good = isbn13(body)
    assert feedback.isbn_problem(good) is None
    assert feedback.isbn_problem(f"{good[:3]}-{good[3:]}") is None
    wrong = good[:12] + str((int(good[12]) + 1) % 10)
    assert "check digit" in (feedback.isbn_problem(wrong) or "")


@given(body=st.text(alphabet="0123456789", min_size=9, max_size=9), pos=st.integers(0, 8),
       delta=st.integers(1, 9))
def test_isbn10_check_digit_catches_any_single_digit_typo(body: str, pos: int,
                                                          delta: int) -> None:
    good = isbn10(body)
    assert feedback.isbn_problem(good) is None and feedback.isbn_problem(good.lower()) is None
    typo = good[:pos] + str((int(good[pos]) + delta) % 10) + good[pos + 1:]
    assert feedback.isbn_problem(typo) is not None


@given(text=st.text(max_size=20))
def test_any_text_gets_an_answer_never_an_exception(text: str) -> None:
    problem = feedback.isbn_problem(text)
    assert problem is None or isinstance(problem, str)


def test_known_isbns() -> None:
    assert feedback.isbn_problem("978-7-02-002431-5") is None  # 红楼梦
    assert feedback.isbn_problem("7-02-002431-X") is not None
    assert feedback.isbn_problem("0-306-40615-2") is None
    assert feedback.isbn_problem("978-0-306-40615-7") is None
    assert feedback.isbn_problem("0-8044-2957-X") is None
    assert feedback.isbn_problem("97870200243") == "an ISBN has 10 or 13 digits, not 11"


# ----------------------------------------------------------------------------- 荐购


def test_recommendations_move_step_by_step_audited_and_visible(world: World) -> None:
    w = world
    rid, headers = w.reader()
    _, other = w.reader()
    operator, auditor = bearer(w.staff["operator"]), bearer(w.staff["auditor"])
    for body, code in [({"isbn": "978-7-02-002431-8"}, "invalid_isbn"),
                       ({"isbn": "12345"}, "invalid_isbn"), ({}, "invalid_request"),
                       ({"title": "   "}, "invalid_request")]:
        assert_error(w.client.post("/api/readers/me/recommendations", headers=headers,
                                   json=body), 422, code)
    assert_error(w.client.post("/api/readers/me/recommendations", headers=headers,
                               json={"title": 5}), 422)
    made = w.client.post("/api/readers/me/recommendations", headers=headers,
                         json={"isbn": "978-7-02-002431-5", "note": "please"})
    assert made.status_code == 201, made.text
    rec = made.json()
    assert (rec["isbn"], rec["status"]) == ("9787020024315", "need")
    by_title = w.client.post("/api/readers/me/recommendations", headers=headers,
                             json={"title": "三体"}).json()

    def step(rec_id: int, status: str, **more: Any) -> Any:
        return w.client.post(f"/api/recommendations/{rec_id}/status", headers=operator,
                             json={"status": status, **more})

    assert_error(step(rec["id"], "shelved"), 409, "illegal_transition")
    assert_error(step(rec["id"], "lost"), 422, "invalid_status")
    assert_error(step(99999, "review"), 404)
    add_item(w.engine, "NEW1", "cab-p")
    for status in ("review", "ordered"):
        assert step(rec["id"], status, note=f"to {status}").status_code == 200
    assert_error(step(rec["id"], "shelved", item_id="nope"), 422, "unknown_item")
    shelved = step(rec["id"], "shelved", item_id="NEW1").json()
    assert shelved["status"] == "shelved" and shelved["item"] == {
        "item_id": "NEW1", "status": "in_cabinet", "cabinet_id": "cab-p"}
    assert_error(step(rec["id"], "review"), 409, "illegal_transition")
    assert step(by_title["id"], "rejected", note="out of print").status_code == 200
    assert_error(step(by_title["id"], "review"), 409)

    mine = w.client.get("/api/readers/me/recommendations", headers=headers).json()
    first = next(r for r in mine["recommendations"] if r["id"] == rec["id"])
    assert [h["status"] for h in first["history"]] == [
        "need", "review", "ordered", "shelved"]
    assert first["item"]["item_id"] == "NEW1"
    assert w.client.get("/api/readers/me/recommendations",
                        headers=other).json() == {"recommendations": []}
    staff_view = w.client.get("/api/recommendations", headers=auditor,
                              params={"status": "rejected"}).json()["recommendations"]
    assert [(r["id"], r["reader_id"]) for r in staff_view] == [(by_title["id"], rid)]
    with w.engine.connect() as conn:
        steps = conn.execute(select(audit.c.action, audit.c.detail).where(
            audit.c.action == "recommendation.status").order_by(audit.c.id)).all()
    assert [s.detail["status"] for s in steps] == ["review", "ordered", "shelved", "rejected"]


# ----------------------------------------------------------------------------- ratings


def _rating_event(cab: str, seq: int, score: Any, **more: Any) -> CabinetEvent:
    return CabinetEvent(cabinet_id=cab, seq=seq, uuid=uuid.uuid4(), kind="rating", at=NOW,
                        mono=1.0, boot_id="b", payload={"session": f"s{seq}", "score": score,
                                                        **more})


def test_rating_events_count_once_and_bad_scores_are_dropped(
        world: World, caplog: pytest.LogCaptureFixture) -> None:
    from server.db import lock_cabinet
    from server.ingest import apply_batch

    w = world
    rid, headers = w.reader()
    evs = [_rating_event("cab-a", 1, 5, comment="好", reader_id=rid),
           _rating_event("cab-a", 2, 7), _rating_event("cab-a", 3, "3"),
           _rating_event("cab-a", 4, 2, comment="a\x00b", session="s" * 100)]
    caplog.set_level(logging.WARNING, logger="server.feedback")
    for _ in range(2):  # a re-sent batch changes nothing
        with write_tx(w.engine) as conn:
            row = lock_cabinet(conn, "cab-a")
            assert row is not None
            apply_batch(conn, row, SyncBatch(cabinet_id="cab-a", sent_at=NOW, events=evs), NOW)
    # a rating applied again by hand (same uuid) is not stored twice either
    with write_tx(w.engine) as conn:
        assert not feedback.record_rating(conn, score=5, comment="", now=NOW,
                                          event_uuid=str(evs[0].uuid))
    assert sum("ignored" in r.getMessage() for r in caplog.records) == 2
    made = w.client.post("/api/readers/me/ratings", headers=headers,
                         json={"score": 4, "cabinet_id": "cab-a"})
    assert made.status_code == 201, made.text
    for bad in ({"score": 0}, {"score": 6}, {"score": "5"}, {}):
        assert_error(w.client.post("/api/readers/me/ratings", headers=headers, json=bad), 422)
    with w.engine.connect() as conn:
        rows = conn.execute(select(ratings).order_by(ratings.c.id)).all()
    assert [(r.score, r.reader_id, r.comment) for r in rows] == [
        (5, rid, "好"), (2, None, "ab"), (4, rid, "")]
    assert rows[1].session == "s" * 64


# ----------------------------------------------------------------------------- notifications


def _loaned(engine: Engine, item: str, reader_id: str, due: str) -> None:
    add_item(engine, item, None, status="loaned", borrower_id=reader_id, due=due)


def test_due_soon_notices_are_queued_once_per_due_date(world: World) -> None:
    w = world
    rid, _ = w.reader()
    _loaned(w.engine, "D1", rid, (NOW + timedelta(days=1)).date().isoformat())
    _loaned(w.engine, "D2", rid, (NOW + timedelta(days=5)).date().isoformat())
    _loaned(w.engine, "D3", rid, (NOW - timedelta(days=1)).date().isoformat())
    with write_tx(w.engine) as conn:
        assert notify.queue_due_soon(conn, NOW) == 1
        assert notify.queue_due_soon(conn, NOW) == 0
        assert notify.queue_due_soon(conn, NOW, days=7) == 1
        refs = sorted(conn.execute(select(notifications.c.ref)).scalars())
    assert refs == [f"loan:D1:{(NOW + timedelta(days=1)).date()}",
                    f"loan:D2:{(NOW + timedelta(days=5)).date()}"]


def test_the_log_sender_logs_a_hashed_reader_and_failures_are_recorded(
        world: World, caplog: pytest.LogCaptureFixture) -> None:
    w = world
    rid, _ = w.reader()
    with write_tx(w.engine) as conn:
        assert notify.queue(conn, reader_id=rid, kind="hold_ready", ref="hold:1", body={},
                            now=NOW)
        assert not notify.queue(conn, reader_id=rid, kind="hold_ready", ref="hold:1", body={},
                                now=NOW)

    class Broken:
        name = "broken"

        def send(self, notification: notify.Notification) -> None:
            raise ConnectionError("gateway down")

    with write_tx(w.engine) as conn:
        assert notify.send_pending(conn, Broken(), NOW) == {"sent": 0, "failed": 1}
    caplog.set_level(logging.INFO, logger="server.notify")
    with write_tx(w.engine) as conn:
        assert notify.send_pending(conn, notify.OutboxLogSender(), NOW) == {
            "sent": 1, "failed": 0}
        assert notify.send_pending(conn, notify.OutboxLogSender(), NOW) == {
            "sent": 0, "failed": 0}
        row = conn.execute(select(notifications)).one()
    assert (row.attempts, row.sender, row.error) == (2, "outbox_log", None)
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert log_id(rid) in logged and rid not in logged


def test_a_sender_that_keeps_failing_is_given_up_after_max_attempts(world: World) -> None:
    w = world
    rid, _ = w.reader()

    class Broken:
        name = "broken"

        def send(self, notification: notify.Notification) -> None:
            raise OSError("no route")

    with write_tx(w.engine) as conn:
        notify.queue(conn, reader_id=rid, kind="due_soon", ref="x", body={}, now=NOW)
        for _ in range(notify.MAX_ATTEMPTS + 2):
            notify.send_pending(conn, Broken(), NOW)
        row = conn.execute(select(notifications)).one()
    assert row.attempts == notify.MAX_ATTEMPTS and row.error == "OSError: no route"
    assert row.sent_at is None


class _SmtpHandler(socketserver.StreamRequestHandler):
    """Just enough SMTP (RFC 5321) for smtplib: greet, EHLO, MAIL, RCPT, DATA, QUIT."""

    def handle(self) -> None:
        self.wfile.write(b"220 test ESMTP\r\n")
        while line := self.rfile.readline():
            verb = line.decode().strip().split(" ")[0].upper()
            if verb in ("EHLO", "HELO"):
                self.wfile.write(b"250 test\r\n")
            elif verb in ("MAIL", "RCPT"):
                self.server.envelope.append(line.decode().strip())  # type: ignore[attr-defined]
                self.wfile.write(b"250 ok\r\n")
            elif verb == "DATA":
                self.wfile.write(b"354 go on\r\n")
                data = []
                while (part := self.rfile.readline()) not in (b".\r\n", b""):
                    data.append(part)
                self.server.messages.append(b"".join(data))  # type: ignore[attr-defined]
                self.wfile.write(b"250 queued\r\n")
            elif verb == "QUIT":
                self.wfile.write(b"221 bye\r\n")
                return
            else:
                self.wfile.write(b"502 not here\r\n")


@pytest.fixture
def smtp_server() -> Iterator[Any]:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _SmtpHandler)
    server.messages = []  # type: ignore[attr-defined]
    server.envelope = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _notice(rid: str = "R-1") -> notify.Notification:
    return notify.Notification(id=1, reader_id=rid, kind="hold_ready", ref="hold:7",
                               body={"item_id": "B1", "cabinet_id": "cab-p"}, created_at=NOW)


def test_the_smtp_sender_delivers_to_a_real_smtp_server(smtp_server: Any) -> None:
    host, port = smtp_server.server_address
    notify.SmtpSender(host, port, "library@example.org", "{reader_id}@relay.example").send(
        _notice())
    assert [e.upper() for e in smtp_server.envelope] == [
        "MAIL FROM:<LIBRARY@EXAMPLE.ORG>", "RCPT TO:<R-1@RELAY.EXAMPLE>"]
    text = smtp_server.messages[0].decode()
    assert "Subject: Your hold is ready" in text and "item_id: B1" in text
    assert "X-Lendbox-Ref: hold:7" in text


class _Hook(http.server.BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802 - the http.server protocol
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.received.append(json.loads(body))  # type: ignore[attr-defined]
        self.send_response(self.server.status)  # type: ignore[attr-defined]
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass


@pytest.fixture
def hook_server() -> Iterator[Any]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    server.received = []  # type: ignore[attr-defined]
    server.status = 204  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_the_webhook_sender_posts_json_and_a_refusal_is_an_error(hook_server: Any) -> None:
    host, port = hook_server.server_address
    sender = notify.WebhookSender(f"http://{host}:{port}/notify")
    sender.send(_notice())
    assert hook_server.received == [{**_notice().as_json()}]
    hook_server.status = 500
    with pytest.raises(Exception, match="500"):
        sender.send(_notice())


def test_the_sender_comes_from_the_environment() -> None:
    assert isinstance(notify.sender_from_env({}), notify.OutboxLogSender)
    smtp = notify.sender_from_env({"LENDBOX_NOTIFY_SENDER": "smtp", "LENDBOX_SMTP_HOST": "mx",
                                   "LENDBOX_SMTP_FROM": "a@b", "LENDBOX_SMTP_PORT": "2525"})
    assert isinstance(smtp, notify.SmtpSender) and (smtp.host, smtp.port) == ("mx", 2525)
    hook = notify.sender_from_env({"LENDBOX_NOTIFY_SENDER": "webhook",
                                   "LENDBOX_WEBHOOK_URL": "http://x/y"})
    assert isinstance(hook, notify.WebhookSender)
    for env in ({"LENDBOX_NOTIFY_SENDER": "smtp"}, {"LENDBOX_NOTIFY_SENDER": "webhook"},
                {"LENDBOX_NOTIFY_SENDER": "pigeon"}):
        with pytest.raises(ValueError, match="LENDBOX_"):
            notify.sender_from_env(env)


def test_the_send_endpoint_drains_through_a_webhook(world: World, hook_server: Any,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    w = world
    rid, _ = w.reader()
    _loaned(w.engine, "D9", rid, (NOW + timedelta(days=2)).date().isoformat())
    host, port = hook_server.server_address
    monkeypatch.setenv("LENDBOX_NOTIFY_SENDER", "webhook")
    monkeypatch.setenv("LENDBOX_WEBHOOK_URL", f"http://{host}:{port}/")
    sent = w.client.post("/api/notifications/send", headers=bearer(w.staff["operator"]))
    assert sent.json() == {"queued_due_soon": 1, "sent": 1, "failed": 0, "sender": "webhook"}
    assert [(m["kind"], m["reader_id"], m["body"]["item_id"]) for m in hook_server.received] == [
        ("due_soon", rid, "D9")]
    monkeypatch.setenv("LENDBOX_NOTIFY_SENDER", "pigeon")
    assert_error(w.client.post("/api/notifications/send", headers=bearer(w.staff["operator"])),
                 503, "sender_not_configured")
