"""A tiny scriptable SIP2 ACS over real sockets, for the client's socket-level behaviours.

It speaks through sip2proto (the codec is tested on its own; the independent peer is pysip2,
used where these tests need a server nobody here wrote). Faults are consumed one per
circulation request (11/09/29) or per lookup when listed in ``lookup_faults``:

- ``drop_before``: close without applying or answering;
- ``drop_after``: apply, then close without answering;
- ``silent_after``: apply, never answer (the client times out);
- ``garble_once`` / ``garble_always``: answer with a broken checksum (once, or every time,
  97 included);
- ``split``: the answer one byte per send; ``merged``: a stale answer and the real one in
  one send.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

import sip2proto
from sip2proto import Message, Profile

INSTITUTION = "LIB"


@dataclass
class FakeLibrary:
    charged: dict[str, tuple[str, str]] = field(default_factory=dict)  # item → (patron, AH)
    applied: Counter[tuple[str, str]] = field(default_factory=Counter)  # (op, item) → times


class FakeACS:
    def __init__(self, profile: Profile | None = None, *, password: str = "secret",
                 ssl_context: ssl.SSLContext | None = None) -> None:
        self.profile = profile or sip2proto.PROFILES["generic"]
        self.password = password
        self.ssl_context = ssl_context
        self.library = FakeLibrary()
        self.faults: list[str] = []
        self.lookup_faults: list[str] = []
        self.received: list[Message] = []
        self.logins = 0
        self.open_connections = 0
        self.max_open = 0
        self._lock = threading.Lock()
        self._conns: list[socket.socket] = []
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]
        self._stop = False
        self._thread = threading.Thread(target=self._accept, daemon=True)

    def __enter__(self) -> FakeACS:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop = True
        with contextlib.suppress(OSError):
            self._sock.close()
        self.drop_all()

    def codes(self) -> list[str]:
        with self._lock:
            return [m.code for m in self.received]

    def drop_all(self) -> None:
        """Close every client connection (the ILS restarting)."""
        with self._lock:
            conns, self._conns = self._conns, []
        for c in conns:
            with contextlib.suppress(OSError):
                c.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                c.close()

    def _accept(self) -> None:
        while not self._stop:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            if self.ssl_context is not None:
                try:
                    conn = self.ssl_context.wrap_socket(conn, server_side=True)
                except (OSError, ssl.SSLError):
                    conn.close()
                    continue
            with self._lock:
                self._conns.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    # -- answers --------------------------------------------------------------------------

    def _answer(self, req: Message) -> Message | None:
        now = datetime(2026, 11, 20, 10, 15, 0)
        lib = self.library
        code = req.code
        if code == "93":
            self.logins += 1
            return sip2proto.login_response(req.get("CO") == self.password)
        if code == "99":
            return sip2proto.acs_status(institution_id=INSTITUTION, date_time_sync=now,
                                        library_name="测试图书馆")
        item = req.get("AB") or ""
        if code == "17":
            held = lib.charged.get(item)
            return sip2proto.item_information_response(
                item, transaction_date=now, circulation_status=4 if held else 3,
                title="书名", due_date=held[1] if held else None)
        if code == "63":
            patron = req.get("AA") or ""
            mine = [i for i, (p, _) in lib.charged.items() if p == patron]
            return sip2proto.patron_information_response(
                patron, institution_id=INSTITUTION, transaction_date=now,
                personal_name="张三", charged_items=mine, valid_patron=True)
        if code == "11":
            patron = req.get("AA") or ""
            held = lib.charged.get(item)
            if held and held[0] != patron:
                return sip2proto.checkout_response(False, patron, item, institution_id=INSTITUTION,
                                                   transaction_date=now,
                                                   screen_messages=["Item charged to another"])
            due = req.get_fixed("nb_due_date") or ""
            lib.charged[item] = (patron, due if due.strip() else "20261231    235959")
            lib.applied["checkout", item] += 1
            return sip2proto.checkout_response(True, patron, item, institution_id=INSTITUTION,
                                               transaction_date=now,
                                               due_date=lib.charged[item][1])
        if code == "09":
            ok = lib.charged.pop(item, None) is not None
            if ok:
                lib.applied["checkin", item] += 1
            return sip2proto.checkin_response(ok, item, institution_id=INSTITUTION,
                                              transaction_date=now)
        if code == "29":
            patron = req.get("AA") or ""
            ok = lib.charged.get(item, ("", ""))[0] == patron
            if ok:
                lib.charged[item] = (patron, req.get_fixed("nb_due_date") or "")
                lib.applied["renew", item] += 1
            return sip2proto.renew_response(ok, patron, item, institution_id=INSTITUTION,
                                            transaction_date=now)
        if code == "35":
            return sip2proto.end_session_response(True, req.get("AA") or "",
                                                  institution_id=INSTITUTION,
                                                  transaction_date=now)
        return None

    def _serve(self, conn: socket.socket) -> None:
        parser = sip2proto.Parser(self.profile)
        last: bytes | None = None
        garble_all = False
        with self._lock:
            self.open_connections += 1
            self.max_open = max(self.max_open, self.open_connections)
        try:
            while True:
                try:
                    data = conn.recv(65536)
                except OSError:
                    return
                if not data:
                    return
                for msg in parser.feed(data):
                    if not isinstance(msg, Message):
                        conn.sendall(sip2proto.encode(sip2proto.request_sc_resend(), self.profile))
                        continue
                    with self._lock:
                        self.received.append(msg)
                    if msg.code == "97":
                        if last is not None:
                            conn.sendall(self._garble(last) if garble_all else last)
                        continue
                    fault = ""
                    if msg.code in ("11", "09", "29") and self.faults:
                        fault = self.faults.pop(0)
                    elif msg.code in ("17", "63") and self.lookup_faults:
                        fault = self.lookup_faults.pop(0)
                    if fault == "drop_before":
                        return
                    answer = self._answer(msg)
                    if answer is None:
                        continue
                    frame = sip2proto.encode(answer.with_seq(msg.seq), self.profile)
                    last = frame
                    if fault == "drop_after":
                        return
                    if fault == "silent_after":
                        continue
                    if fault in ("garble_once", "garble_always"):
                        garble_all = fault == "garble_always"
                        conn.sendall(self._garble(frame))
                    elif fault == "split":
                        for i in range(len(frame)):
                            conn.sendall(frame[i:i + 1])
                            time.sleep(0.001)
                    elif fault == "merged":
                        stale = sip2proto.encode(answer.with_seq(
                            None if msg.seq is None else (msg.seq + 5) % 10), self.profile)
                        conn.sendall(stale + frame)
                    else:
                        conn.sendall(frame)
        finally:
            with self._lock:
                self.open_connections -= 1
            with contextlib.suppress(OSError):
                conn.close()

    @staticmethod
    def _garble(frame: bytes) -> bytes:
        i = frame.rfind(b"AZ")
        if i < 0:  # no checksum: break the message code instead
            return b"X" + frame[1:]
        bad = b"0000" if frame[i + 2:i + 6] != b"0000" else b"0001"
        return frame[:i + 2] + bad + frame[i + 6:]
