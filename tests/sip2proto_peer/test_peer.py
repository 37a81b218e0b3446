"""pysip2 0.1.0 as an independent SIP2 peer: the harness, and raw bytes it answers.

Every request below is a bytes literal written by hand from the SIP2 2.00 spec; only the
``AY<n>AZ<checksum>`` trailer is computed here (``_checksum``: two's complement of the byte
sum, 4 upper-case hex). Nothing from ``sip2proto`` is used, so these tests state facts about
the peer that our codec and profiles must meet. Tests that pin a pysip2 quirk say so in
their name (``test_quirk_…``); ``docs/sip2-peers.md`` lists the same quirks.

One peer per encoding serves the whole module; each test that changes the library uses items
of its own (see the table in ``lendbox.sip2_peer.DEFAULT_SEED``).
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from lendbox.sip2_peer import PeerServer

pytest.importorskip("pysip2")

TD = b"20261120    101500"  # a transaction date in the past (cabinet offline since then)
NB_DUE = b"20261204    235959"  # the cabinet's due date
EOF_ = b"<EOF>"
SILENT = b"<SILENT>"


def _checksum(prefix: bytes) -> bytes:
    """SIP2 checksum of everything from the command id through ``AZ``, over the bytes."""
    return b"%04X" % (-sum(prefix) & 0xFFFF)


def _frame(body: bytes, seq: int = 0) -> bytes:
    prefix = body + b"AY%dAZ" % seq
    return prefix + _checksum(prefix) + b"\r"


def _verifies(answer: bytes) -> bool:
    """The answer's AZ checksum is right over its bytes (CR excluded)."""
    body = answer.rstrip(b"\r")
    return body[-6:-4] == b"AZ" and (sum(body[:-4]) + int(body[-4:], 16)) & 0xFFFF == 0


LOGIN = _frame(b"9300CNlendbox|COsecret|CPMAIN|", 0)


class Conn:
    """One TCP connection; ``ask`` sends bytes and reads up to a CR, EOF or silence."""

    def __init__(self, peer: PeerServer, wait: float = 2.0) -> None:
        self.sock = socket.create_connection(peer.address, timeout=wait)

    def ask(self, data: bytes, wait: float | None = None) -> bytes:
        if wait is not None:
            self.sock.settimeout(wait)
        try:
            self.sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            return EOF_
        answer = b""
        try:
            while not answer.endswith(b"\r"):
                chunk = self.sock.recv(4096)
                if not chunk:
                    return answer + EOF_
                answer += chunk
        except TimeoutError:
            return answer + SILENT
        except ConnectionResetError:
            return answer + EOF_
        return answer

    def login(self) -> None:
        assert self.ask(LOGIN) == b"941AY0AZFDFD\r"

    def close(self) -> None:
        self.sock.close()


def _peer(tmp: Path, encoding: str, **kw: object) -> PeerServer:
    return PeerServer(encoding=encoding, journal=tmp / "journal.jsonl", log=tmp / "peer.log",
                      **kw)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def utf8_peer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PeerServer]:
    with _peer(tmp_path_factory.mktemp("utf8"), "utf-8") as peer:
        yield peer


@pytest.fixture(scope="module")
def gb_peer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PeerServer]:
    with _peer(tmp_path_factory.mktemp("gb18030"), "gb18030") as peer:
        yield peer


@pytest.fixture(scope="module")
def cp850_peer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PeerServer]:
    with _peer(tmp_path_factory.mktemp("cp850"), "cp850") as peer:
        yield peer


@pytest.fixture
def conn(utf8_peer: PeerServer) -> Iterator[Conn]:
    c = Conn(utf8_peer)
    c.login()
    yield c
    c.close()


def _log_says(peer: PeerServer, text: str, within_s: float = 5.0) -> bool:
    """The peer's stderr log shows ``text`` (pysip2 logs after it has closed the socket)."""
    assert peer.log is not None
    deadline = time.monotonic() + within_s
    while text not in peer.log.read_text(encoding="utf-8", errors="replace"):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def _journal(peer: PeerServer, item: str) -> list[dict[str, object]]:
    return [e for e in peer.journal_entries() if e["item"] == item]


# -- the harness ----------------------------------------------------------------------------


def test_checksum_helper_matches_the_spec_example() -> None:
    # the SC Status example of the 3M SIP2 2.00 spec: 9900302.00AY1AZFCA5
    assert _frame(b"9900302.00", 1) == b"9900302.00AY1AZFCA5\r"


def test_peer_starts_on_a_free_port_and_stops_by_pid(tmp_path: Path) -> None:
    peer = _peer(tmp_path, "utf-8").start()
    try:
        assert peer.port > 0 and peer.lines[-1] == f"sip2 peer ready 127.0.0.1:{peer.port}"
        os.kill(peer.pid, 0)  # alive
        c = Conn(peer)
        c.login()
        c.close()
    finally:
        code = peer.stop()
    assert code == 0  # SIGTERM is a clean shutdown
    with pytest.raises(ProcessLookupError):
        os.kill(peer.pid, 0)
    with pytest.raises(OSError):
        socket.create_connection(peer.address, timeout=1).close()


def test_killed_peer_leaves_no_process(tmp_path: Path) -> None:
    peer = _peer(tmp_path, "utf-8").start()
    peer.kill()
    assert peer.stop() == -9
    with pytest.raises(ProcessLookupError):
        os.kill(peer.pid, 0)


# -- 93 login, 99 status --------------------------------------------------------------------


def test_login_answers_ok_with_the_request_sequence_number(utf8_peer: PeerServer) -> None:
    c = Conn(utf8_peer)
    assert c.ask(LOGIN) == b"941AY0AZFDFD\r"
    c.close()


def test_quirk_failed_login_answers_940_then_closes(utf8_peer: PeerServer) -> None:
    c = Conn(utf8_peer)
    assert c.ask(_frame(b"9300CNlendbox|COwrong|", 5)) == b"940AY5AZFDF9\r"
    assert c.ask(_frame(b"9900302.00", 6)) == EOF_
    c.close()


def test_quirk_status_before_login_closes_the_connection(utf8_peer: PeerServer) -> None:
    c = Conn(utf8_peer)
    assert c.ask(_frame(b"9900302.00", 1)) == EOF_  # Evergreen clients send 99 first: not here
    c.close()


def test_sc_status_after_login(conn: Conn) -> None:
    answer = conn.ask(_frame(b"9900302.00", 1))
    assert answer.startswith(b"98YYYYNY030003")  # online, checkin, checkout, renewal, -, offline
    assert answer[32:36] == b"2.00" and b"AOLENDBOX|" in answer
    assert "AM示范图书馆|".encode() in answer
    # 23 11 09 01 99 97 93 63 35 37 17 19 25 15 29 65
    assert b"BXYYYNYYYYYNYNNNYN|" in answer  # 01, 37, 19, 25, 15, 65: no
    assert answer.endswith(b"AY1AZ" + answer[-5:-1] + b"\r") and _verifies(answer)


# -- 63 patron information, 23 patron status -------------------------------------------------


@pytest.mark.parametrize(("patron", "name_utf8"), [
    (b"R0001", b"\xe5\xbc\xa0\xe4\xb8\x89"),  # 张三
    (b"R0002", b"\xe6\x9d\x8e\xe5\x9b\x9b"),  # 李四
    (b"R0003", b"\xe6\xac\xa7\xe9\x98\xb3\xe5\xa8\x9c\xe5\xa8\x9c"),  # 欧阳娜娜
])
def test_patron_information_utf8_chinese_name(conn: Conn, patron: bytes,
                                              name_utf8: bytes) -> None:
    answer = conn.ask(_frame(b"63001" + TD + b"  Y       AOLENDBOX|AA" + patron + b"|AC|AD1234|",
                             2))
    assert answer.startswith(b"64" + b" " * 14 + b"001")
    assert b"|AA" + patron + b"|AE" + name_utf8 + b"|" in answer
    assert b"BLY|CQY|" in answer and _verifies(answer)  # checksum over the UTF-8 bytes


def test_patron_information_lists_charged_items(conn: Conn) -> None:
    answer = conn.ask(_frame(b"63000" + TD + b"  Y       AOLENDBOX|AAR0003|AC|", 3))
    # counts after "64", status, language, date: holds, overdue, charged, fines, recalls, unav.
    assert answer[37:41] == b"0001" and answer[45:61] == b"0001" b"0000" b"0000" b"0000"
    assert b"AUB0007|" in answer  # (B0007's overdue count depends on the renew test's order)


def test_patron_information_gb18030_chinese_name(gb_peer: PeerServer) -> None:
    c = Conn(gb_peer)
    c.login()
    answer = c.ask(_frame(b"63000" + TD + b"          AOLENDBOX|AAR0003|AC|", 1))
    c.close()
    assert b"|AE\xc5\xb7\xd1\xf4\xc4\xc8\xc4\xc8|" in answer  # 欧阳娜娜 in GB18030
    assert _verifies(answer)


def test_patron_information_unknown_reader(conn: Conn) -> None:
    answer = conn.ask(_frame(b"63000" + TD + b"          AOLENDBOX|AAR9999|AC|", 4))
    assert b"|AE|BLN|" in answer and b"AFPATRON NOT FOUND|" in answer


def test_patron_status_of_a_blocked_reader(conn: Conn) -> None:
    answer = conn.ask(_frame(b"23000" + TD + b"AOLENDBOX|AAR0004|AC|AD1234|", 5))
    assert answer.startswith(b"24YY YY         000")
    assert "AE王五|BLY|CQY|".encode() in answer and "AF借阅证已挂失|".encode() in answer


# -- 17 item information ---------------------------------------------------------------------


def test_item_information_available_and_charged(conn: Conn) -> None:
    available = conn.ask(_frame(b"17" + TD + b"AOLENDBOX|ABB0001|AC|", 6))
    assert available.startswith(b"18030201")  # available, security marker, fee type
    assert "|ABB0001|AJ红楼梦|BGLENDBOX|".encode() in available
    assert b"AQMAIN|APMAIN|" in available and b"AH" not in available
    charged = conn.ask(_frame(b"17" + TD + b"AOLENDBOX|ABB0006|AC|", 7))
    assert charged.startswith(b"18040201") and b"CF1|AH20261210    235959|" in charged


def test_quirk_unknown_fields_are_ignored_not_refused(conn: Conn) -> None:
    answer = conn.ask(_frame(b"17" + TD + b"AOLENDBOX|ABB0001|AC|ZZlocal extension|", 8))
    assert answer.startswith(b"18030201") and b"ZZ" not in answer


# -- 11 checkout -----------------------------------------------------------------------------


def test_quirk_checkout_with_18_space_nb_due_date_is_dropped(utf8_peer: PeerServer,
                                                              conn: Conn) -> None:
    answer = conn.ask(_frame(b"11NN" + TD + b" " * 18 + b"AOLENDBOX|AAR0001|ABB0002|AC|", 1))
    assert answer == EOF_  # no 12, no 96: the connection is closed
    assert _journal(utf8_peer, "B0002") == []
    assert _log_says(utf8_peer, "at `$.nb_due_date`")


def test_checkout_no_block_with_past_date_and_cabinet_due_date(utf8_peer: PeerServer,
                                                                conn: Conn) -> None:
    answer = conn.ask(_frame(b"11YY" + TD + NB_DUE + b"AOLENDBOX|AAR0001|ABB0003|AC|", 2))
    assert answer.startswith(b"121NNY")
    assert "|AAR0001|ABB0003|AJ三国演义|AH20261204    235959|".encode() in answer
    [entry] = _journal(utf8_peer, "B0003")
    assert entry["transaction_date"] == TD.decode() and entry["due"] == NB_DUE.decode()


def test_checkout_of_a_blocked_reader_needs_no_block(utf8_peer: PeerServer, conn: Conn) -> None:
    online = conn.ask(_frame(b"11YN" + TD + TD + b"AOLENDBOX|AAR0004|ABB0004|AC|", 3))
    assert online.startswith(b"120NNN") and "AF借阅证已挂失|".encode() in online
    offline = conn.ask(_frame(b"11YY" + TD + NB_DUE + b"AOLENDBOX|AAR0004|ABB0004|AC|", 4))
    assert offline.startswith(b"121NNY")
    assert len(_journal(utf8_peer, "B0004")) == 1


def test_checkout_of_an_item_charged_to_another_reader_is_refused(conn: Conn) -> None:
    answer = conn.ask(_frame(b"11YY" + TD + NB_DUE + b"AOLENDBOX|AAR0001|ABB0007|AC|", 5))
    assert answer.startswith(b"120NNN") and b"AFITEM CHARGED TO ANOTHER PATRON|" in answer


def test_quirk_identical_retransmission_is_replayed_not_reapplied(utf8_peer: PeerServer,
                                                                  conn: Conn) -> None:
    request = _frame(b"11YY" + TD + NB_DUE + b"AOLENDBOX|AAR0002|ABB0008|AC|", 6)
    first = conn.ask(request)
    assert first.startswith(b"121NNY")
    assert conn.ask(request) == first  # same AY and AZ as the last request: cached answer
    assert len(_journal(utf8_peer, "B0008")) == 1
    # ... but only on the same connection: after a reconnect the same bytes apply again
    again = Conn(utf8_peer)
    again.login()
    second = again.ask(request)
    again.close()
    assert second.startswith(b"121YNY") and b"AFRENEWED" in second
    assert len(_journal(utf8_peer, "B0008")) == 2


# -- 09 checkin ------------------------------------------------------------------------------


def test_checkin_with_return_date_at_another_branch(utf8_peer: PeerServer, conn: Conn) -> None:
    answer = conn.ask(_frame(b"09Y" + TD + b"20261119    180000APEAST|AOLENDBOX|ABB0005|AC|",
                             7))
    assert answer.startswith(b"101YNY")  # ok, resensitize, magnetic N, alert: goes home
    assert "|ABB0005|AQMAIN|AJ围城|CLMAIN|AAR0002|".encode() in answer
    [entry] = _journal(utf8_peer, "B0005")
    assert entry["return_date"] == "20261119    180000" and entry["patron"] == "R0002"
    again = conn.ask(_frame(b"09Y" + TD + b"20261119    180000APEAST|AOLENDBOX|ABB0005|AC|",
                            8))
    assert again.startswith(b"100NNN") and b"AFITEM NOT CHECKED OUT|" in again


def test_quirk_checkin_without_required_ac_is_dropped(conn: Conn) -> None:
    answer = conn.ask(_frame(b"09N" + TD + TD + b"APMAIN|AOLENDBOX|ABB0010|", 9))
    assert answer == EOF_


# -- 29 renew --------------------------------------------------------------------------------


def test_renew_extends_from_the_old_due_date(utf8_peer: PeerServer, conn: Conn) -> None:
    answer = conn.ask(_frame(b"29NN" + TD + TD + b"AOLENDBOX|AAR0003|ABB0007|AC|", 1))
    assert answer.startswith(b"301YNY")
    assert "|ABB0007|AJ平凡的世界|AH20261218    235959|".encode() in answer  # 20261120 + 28
    assert len(_journal(utf8_peer, "B0007")) == 1


def test_renew_refused_when_another_reader_holds_it(conn: Conn) -> None:
    answer = conn.ask(_frame(b"29NN" + TD + TD + b"AOLENDBOX|AAR0001|ABB0006|AC|", 2))
    assert answer.startswith(b"300NNN") and b"AFITEM ON HOLD FOR ANOTHER PATRON|" in answer


def test_quirk_renew_with_18_space_nb_due_date_is_dropped(conn: Conn) -> None:
    answer = conn.ask(_frame(b"29NN" + TD + b" " * 18 + b"AOLENDBOX|AAR0003|ABB0007|AC|", 3))
    assert answer == EOF_


# -- framing and checksum quirks -------------------------------------------------------------


def test_quirk_bad_checksum_gets_96(conn: Conn) -> None:
    assert conn.ask(b"9900302.00AY1AZ0000\r") == b"96AZFEF6\r"


def test_quirk_lowercase_checksum_is_accepted(utf8_peer: PeerServer) -> None:
    c = Conn(utf8_peer)
    assert c.ask(LOGIN[:-5] + LOGIN[-5:-1].lower() + b"\r") == b"941AY0AZFDFD\r"
    c.close()


def test_quirk_no_checksum_is_answered_without_one(utf8_peer: PeerServer) -> None:
    c = Conn(utf8_peer)
    assert c.ask(b"9300CNlendbox|COsecret|\r") == b"941\r"
    c.close()


def test_quirk_checksum_without_sequence_number_drops_the_connection(
        utf8_peer: PeerServer) -> None:
    c = Conn(utf8_peer)
    prefix = b"9300CNlendbox|COsecret|AZ"
    assert c.ask(prefix + _checksum(prefix) + b"\r") == EOF_
    c.close()


def test_quirk_two_digit_sequence_number_drops_the_connection(utf8_peer: PeerServer) -> None:
    c = Conn(utf8_peer)
    prefix = b"9300CNlendbox|COsecret|AY10AZ"
    assert c.ask(prefix + _checksum(prefix) + b"\r") == EOF_
    c.close()


def test_quirk_required_error_detection_answers_96_without_checksum(tmp_path: Path) -> None:
    with _peer(tmp_path, "utf-8", error_detection="required") as peer:
        c = Conn(peer)
        assert c.ask(b"9300CNlendbox|COsecret|\r") == b"96AZFEF6\r"
        c.close()


@pytest.mark.parametrize(("what", "request_body"), [
    ("ISO transaction date", b"17" b"2026-11-20T10:15:0" b"AOLENDBOX|ABB0001|AC|"),
    ("lower-case time zone", b"17" b"20261120utc 101500" b"AOLENDBOX|ABB0001|AC|"),
    ("23 without the required AD", b"23000" + TD + b"AOLENDBOX|AAR0001|AC|"),
    ("a field twice", b"17" + TD + b"AOLENDBOX|AOLENDBOX|ABB0001|AC|"),
    ("last field without its delimiter", b"17" + TD + b"AOLENDBOX|ABB0001|AC"),
    ("a tab as field delimiter", b"17" + TD + b"AOLENDBOX\tABB0001\tAC\t"),
])
def test_quirk_invalid_requests_drop_the_connection(conn: Conn, what: str,
                                                    request_body: bytes) -> None:
    assert conn.ask(_frame(request_body, 1)) == EOF_, what


def test_upper_case_time_zones_and_reordered_fields_are_accepted(conn: Conn) -> None:
    assert conn.ask(_frame(b"17" b"20261120UTC 101500" b"ABB0001|AC|AOLENDBOX|", 1)) \
        .startswith(b"18030201")


def test_quirk_crlf_terminator_breaks_the_next_frame(utf8_peer: PeerServer) -> None:
    c = Conn(utf8_peer)
    assert c.ask(LOGIN[:-1] + b"\r\n") == b"941AY0AZFDFD\r"
    # the LF becomes the first byte of the next frame, so its checksum no longer adds up
    assert c.ask(_frame(b"9900302.00", 1)[:-1] + b"\r\n") == b"96AZFEF6\r"
    c.close()


def test_quirk_unknown_command_gets_no_answer_at_all(conn: Conn) -> None:
    assert conn.ask(_frame(b"XX1234", 1), wait=0.5) == SILENT
    assert conn.ask(_frame(b"9900302.00", 2), wait=2.0).startswith(b"98")


def test_quirk_unsupported_message_gets_a_negative_answer(conn: Conn) -> None:
    answer = conn.ask(_frame(b"65" + TD + b"AOLENDBOX|AAR0001|AC|", 3))
    assert answer.startswith(b"66000000000") and b"AFCOMMAND NOT SUPPORTED|" in answer


def test_end_session_and_unregistered_block_patron(conn: Conn) -> None:
    assert conn.ask(_frame(b"35" + TD + b"AOLENDBOX|AAR0001|AC|", 5)).startswith(b"36Y")
    blocked = conn.ask(_frame(b"01N" + TD + b"AOLENDBOX|ALlost|AAR0001|AC|", 6))
    assert blocked.startswith(b"24" + b" " * 14) and b"AFCOMMAND NOT SUPPORTED|" in blocked


def test_acs_resend_repeats_the_last_answer(conn: Conn) -> None:
    status = conn.ask(_frame(b"9900302.00", 4))
    assert conn.ask(b"97AZFEF5\r") == status


def test_split_and_merged_reads_are_framed_on_cr(utf8_peer: PeerServer) -> None:
    c = Conn(utf8_peer)
    c.sock.sendall(LOGIN[:7])  # half a frame ...
    c.sock.sendall(LOGIN[7:] + _frame(b"9900302.00", 1))  # ... its rest and a whole one
    got = b""
    while got.count(b"\r") < 2:
        chunk = c.sock.recv(4096)
        assert chunk, "closed early"
        got += chunk
    c.close()
    login, status, _ = got.split(b"\r")
    assert login == b"941AY0AZFDFD" and status.startswith(b"98")


# -- encodings -------------------------------------------------------------------------------


def test_quirk_cp850_peer_drops_the_connection_on_a_chinese_name(cp850_peer: PeerServer) -> None:
    c = Conn(cp850_peer)
    c.login()
    assert c.ask(_frame(b"63000" + TD + b"          AOLENDBOX|AAR0001|AC|", 1)) == EOF_
    c.close()
    c = Conn(cp850_peer)  # the listener survives; a Latin name is cp850 bytes
    c.login()
    answer = c.ask(_frame(b"63000" + TD + b"          AOLENDBOX|AAR0005|AC|", 1))
    c.close()
    assert b"|AEZo\x89 Martin|" in answer  # ë is 0x89 in cp850
    assert _log_says(cp850_peer, "UnicodeEncodeError")


def test_quirk_utf8_peer_drops_the_connection_on_gb18030_bytes(conn: Conn) -> None:
    assert conn.ask(_frame(b"17" + TD + b"AO\xd7\xdc\xb9\xdd|ABB0001|AC|", 9)) == EOF_


def test_quirk_gb18030_peer_decodes_utf8_bytes_silently(gb_peer: PeerServer) -> None:
    c = Conn(gb_peer)
    c.login()
    answer = c.ask(_frame(b"17" + TD + "AO总馆|ABB0001|AC|".encode(), 1))  # UTF-8, wrong
    c.close()
    assert answer.startswith(b"18030201")  # answered: the mojibake went unnoticed


def test_journal_records_what_was_applied(tmp_path: Path) -> None:
    with _peer(tmp_path, "utf-8") as peer:
        c = Conn(peer)
        c.login()
        c.ask(_frame(b"11NY" + TD + NB_DUE + b"AOLENDBOX|AAR0001|ABB0001|AC|", 1))
        c.ask(_frame(b"29NN" + TD + TD + b"AOLENDBOX|AAR0001|ABB0001|AC|", 2))
        c.ask(_frame(b"09N" + TD + TD + b"APMAIN|AOLENDBOX|ABB0001|AC|", 3))
        c.close()
        lines = (tmp_path / "journal.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["op"] for line in lines] == ["checkout", "renew", "checkin"]
    assert [e["txn"] for e in peer.journal_entries()] == ["T000001", "T000002", "T000003"]
