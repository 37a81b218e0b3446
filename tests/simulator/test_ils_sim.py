"""The emulated ILS (simulator/ils_sim.py, ``lendbox ils-sim``) over real sockets: SIP2 frames
built by sip2proto, each answer decoded back, the fault switches, and the command as a child."""

from __future__ import annotations

import json
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest

import sip2proto as s2
from lendbox.child import ReadyChild
from simulator.ils_sim import IlsSim

NOW = datetime(2030, 3, 1, 10, 0, 0)
INST = "SZLIB"
ZHANG, LI, BLOCKED = "R0012345", "R0023456", "R0099999"
BOOK, BOOK2, HELD = "3901000000001", "3901000000002", "3901000000007"


class Client:
    """The smallest SIP2 client: one socket, one Parser, one request at a time."""

    def __init__(self, address: tuple[str, int], profile: s2.Profile | str = "generic") -> None:
        self.profile = s2.PROFILES[profile] if isinstance(profile, str) else profile
        self.sock = socket.create_connection(address, timeout=5)
        self.parser = s2.Parser(self.profile)
        self.seq = 0
        self.raw = b""  # the bytes of the last answer

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send(self, message: s2.Message) -> bytes:
        self.seq = s2.next_seq(self.seq)
        data = s2.encode(message.with_seq(self.seq), self.profile)
        self.send_raw(data)
        return data

    def receive(self, timeout: float = 5.0) -> s2.Message:
        """The next answer; raises its sip2proto error, or ConnectionError when closed."""
        self.sock.settimeout(timeout)
        buf = b""
        while True:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError("closed by the ILS")
            buf += chunk
            items = self.parser.feed(chunk)
            if items:
                self.raw = buf
                item = items[0]
                if isinstance(item, s2.SIP2Error):
                    raise item
                return item

    def ask(self, message: s2.Message) -> s2.Message:
        self.send(message)
        return self.receive()

    def login(self, user: str = "lendbox", password: str = "lendbox") -> s2.Message:
        return self.ask(s2.login(user, password, location_code="cab-1"))

    def closed(self, timeout: float = 3.0) -> bool:
        self.sock.settimeout(timeout)
        try:
            return self.sock.recv(4096) == b""
        except ConnectionResetError:
            return True

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def ils() -> Iterator[IlsSim]:
    sim = IlsSim(institution=INST, clock=lambda: NOW).start()
    try:
        yield sim
    finally:
        sim.stop()


@pytest.fixture
def client(ils: IlsSim) -> Iterator[Client]:
    c = Client(ils.address)
    try:
        assert c.login().get_fixed("ok") == "1"
        yield c
    finally:
        c.close()


# The generic profile (strict 2.00) sends no 18-space nb due date: always give one; the ILS
# reads it only with no-block.
FAR = datetime(2030, 6, 30, 23, 59, 59)


def _checkout(item: str = BOOK, patron: str = ZHANG, **kw: Any) -> s2.Message:
    kw.setdefault("nb_due_date", FAR)
    return s2.checkout(patron, item, institution_id=INST, transaction_date=kw.pop("when", NOW), **kw)


def _renew(item: str = BOOK, patron: str = ZHANG) -> s2.Message:
    return s2.renew(patron, item, institution_id=INST, transaction_date=NOW, nb_due_date=FAR)


def _ops(sim: IlsSim) -> list[tuple[str, str]]:
    return [(e["op"], e["item_id"]) for e in sim.journal()]


# --------------------------------------------------------------------------- session

def test_login_ok_refused_and_required(ils: IlsSim) -> None:
    c = Client(ils.address)
    try:
        assert c.login(password="wrong").get_fixed("ok") == "0"
        assert c.login().get_fixed("ok") == "1"  # the same connection may try again
    finally:
        c.close()
    ils.set_faults(refuse_login=True)
    c = Client(ils.address)
    try:
        assert c.login().get_fixed("ok") == "0"
        assert ils.faults()["fired"]["refuse_login"] == 1
    finally:
        c.close()
    ils.set_faults(refuse_login=False)
    c = Client(ils.address)  # no login: a circulation request closes the session, applies nothing
    try:
        c.send(_checkout())
        assert c.closed()
    finally:
        c.close()
    assert ils.journal() == []


def test_sc_status(ils: IlsSim) -> None:
    c = Client(ils.address)
    try:
        answer = c.ask(s2.sc_status())  # allowed before login (Evergreen's clients do it)
    finally:
        c.close()
    assert answer.code == "98" and answer.get_fixed("online_status") == "Y"
    assert answer.get("AO") == INST and answer.get("BX") == "YYYYYYYYYYYYNYYY"
    assert answer.get_fixed("date_time_sync") == s2.format_date(NOW)
    assert answer.seq == 1 and s2.verify_checksum(c.raw)


@pytest.mark.parametrize("profile", ["cn-utf8", "cn-gb18030"])
def test_patron_information_with_a_chinese_name(profile: str) -> None:
    raw: dict[str, bytes] = {}
    with IlsSim(profile=profile, institution=INST, clock=lambda: NOW) as sim:
        c = Client(sim.address, profile)
        try:
            assert c.login().get_fixed("ok") == "1"
            c.ask(_checkout())
            answer = c.ask(s2.patron_information(ZHANG, institution_id=INST, transaction_date=NOW,
                                                 summary="charged", patron_password="1234"))
            raw[profile] = c.raw
        finally:
            c.close()
    assert answer.code == "64" and answer.get("AE") == "张三"
    assert answer.get("BL") == "Y" and answer.get("CQ") == "Y"
    assert answer.get_all("AU") == [BOOK] and answer.get_fixed("charged_items_count") == "0001"
    name = "张三".encode("utf-8" if profile == "cn-utf8" else "gb18030")
    assert b"AE" + name + b"|" in raw[profile]
    assert s2.decode(raw[profile], s2.PROFILES[profile]).get("AE") == "张三"


def test_chinese_name_bytes_differ_between_utf8_and_gb18030() -> None:
    frames = {}
    for profile in ("cn-utf8", "cn-gb18030"):
        with IlsSim(profile=profile, clock=lambda: NOW) as sim:
            c = Client(sim.address, profile)
            try:
                c.login()
                c.ask(s2.patron_information(ZHANG, institution_id=INST, transaction_date=NOW))
                frames[profile] = c.raw
            finally:
                c.close()
    assert frames["cn-utf8"] != frames["cn-gb18030"]
    assert "张三".encode("gb18030") in frames["cn-gb18030"] and "张三".encode() in frames["cn-utf8"]


def test_unknown_and_blocked_patron(client: Client) -> None:
    unknown = client.ask(s2.patron_status("R404", institution_id=INST, transaction_date=NOW))
    assert unknown.code == "24" and unknown.get("BL") == "N"
    blocked = client.ask(s2.patron_information(BLOCKED, institution_id=INST, transaction_date=NOW))
    assert blocked.get_fixed("patron_status").startswith("YYYY")  # type: ignore[union-attr]
    refused = client.ask(_checkout(patron=BLOCKED))
    assert refused.get_fixed("ok") == "0" and refused.get("AF") == "Patron blocked"
    answer = client.ask(s2.block_patron(LI, institution_id=INST, transaction_date=NOW,
                                        blocked_card_msg="card lost"))
    assert answer.code == "24" and answer.get_fixed("patron_status").startswith("Y")  # type: ignore[union-attr]


# --------------------------------------------------------------------------- circulation

def test_offline_checkout_keeps_the_cabinets_due_date(ils: IlsSim, client: Client) -> None:
    made = datetime(2030, 2, 20, 9, 30)  # made offline nine days before it is forwarded
    due = datetime(2030, 3, 13, 23, 59, 59)
    answer = client.ask(_checkout(no_block=True, when=made, nb_due_date=due))
    assert answer.code == "12" and answer.get_fixed("ok") == "1"
    assert s2.parse_date(answer.get("AH") or "") == due
    assert ils.library.copy(BOOK).due == date(2030, 3, 13)  # type: ignore[union-attr]
    assert ils.journal() == [{"op": "checkout", "item_id": BOOK, "patron_id": ZHANG,
                              "when": made.isoformat()}]
    # online, no nb due date: loan_days from the transaction date
    online = client.ask(_checkout(BOOK2))
    assert s2.parse_date(online.get("AH") or "") == datetime(2030, 3, 31, 23, 59, 59)
    # no-block skips the reader's blocks, never another reader's loan
    other = client.ask(_checkout(patron=LI, no_block=True))
    assert other.get_fixed("ok") == "0" and other.get("AF") == "Item charged to another patron"
    item = client.ask(s2.item_information(BOOK, institution_id=INST, transaction_date=NOW))
    assert item.code == "18" and item.get_fixed("circulation_status") == "04"
    assert s2.parse_date(item.get("AH") or "") == due


def test_checkin_with_return_date_and_renew(ils: IlsSim, client: Client) -> None:
    client.ask(_checkout())
    renewed = client.ask(_renew())
    assert renewed.code == "30" and renewed.get_fixed("ok") == "1"
    assert renewed.get_fixed("renewal_ok") == "Y"
    assert s2.parse_date(renewed.get("AH") or "") == datetime(2030, 3, 31, 23, 59, 59)
    not_his = client.ask(_renew(patron=LI))
    assert not_his.get_fixed("ok") == "0"
    returned = datetime(2030, 2, 28, 18, 0)
    back = client.ask(s2.checkin(BOOK, institution_id=INST, transaction_date=NOW,
                                 return_date=returned, no_block=True))
    assert back.code == "10" and back.get_fixed("ok") == "1" and back.get("AA") == ZHANG
    assert ils.journal()[-1] == {"op": "checkin", "item_id": BOOK, "patron_id": None,
                                 "when": returned.isoformat()}
    assert _ops(ils) == [("checkout", BOOK), ("renew", BOOK), ("checkin", BOOK)]


def test_the_other_messages(ils: IlsSim, client: Client) -> None:
    client.ask(_checkout())
    client.ask(_checkout(BOOK2))
    all_ = client.ask(s2.renew_all(ZHANG, institution_id=INST, transaction_date=NOW))
    assert all_.code == "66" and sorted(all_.get_all("BM")) == [BOOK, BOOK2]
    end = client.ask(s2.end_patron_session(ZHANG, institution_id=INST, transaction_date=NOW))
    assert end.code == "36" and end.get_fixed("end_session") == "Y"
    paid = client.ask(s2.fee_paid("R0088888", institution_id=INST, transaction_date=NOW,
                                  fee_type=1, payment_type=0, currency_type="CNY", fee_amount="3.50"))
    assert paid.code == "38" and paid.get_fixed("payment_accepted") == "Y"
    assert ils.library.reader("R0088888").fines_fen == 0  # type: ignore[union-attr]
    upd = client.ask(s2.item_status_update(BOOK, institution_id=INST, transaction_date=NOW,
                                           item_properties="x"))
    assert upd.code == "20" and upd.get_fixed("item_properties_ok") == "1"
    held = client.ask(s2.hold("+", LI, institution_id=INST, transaction_date=NOW, item_id=BOOK2))
    assert held.code == "16" and held.get_fixed("ok") == "1"
    taken = client.ask(s2.hold("+", LI, institution_id=INST, transaction_date=NOW, item_id=HELD))
    assert taken.get_fixed("ok") == "0"


# --------------------------------------------------------------------------- resend

def test_bad_checksum_gets_96_and_97_gets_the_previous_answer(client: Client) -> None:
    frame = s2.encode(s2.sc_status(seq=4), client.profile)
    bad = frame[:-5] + (b"0000" if not frame.endswith(b"0000\r") else b"1111") + b"\r"
    client.send_raw(bad)
    assert client.receive().code == "96"
    first = client.ask(s2.item_information(BOOK, institution_id=INST, transaction_date=NOW))
    first_raw = client.raw
    client.send_raw(s2.encode(s2.request_acs_resend(), client.profile))
    again = client.receive()
    assert client.raw == first_raw and again == first


# --------------------------------------------------------------------------- faults

def test_drop_before_apply_leaves_the_journal_unchanged(ils: IlsSim) -> None:
    ils.set_faults(drop_before=1)
    c = Client(ils.address)
    try:
        c.login()  # logins are not counted
        c.send(_checkout())
        assert c.closed()
    finally:
        c.close()
    assert ils.journal() == [] and ils.library.copy(BOOK).patron_id is None  # type: ignore[union-attr]
    c = Client(ils.address)  # the switch has counted down: the retry goes through
    try:
        c.login()
        assert c.ask(_checkout()).get_fixed("ok") == "1"
    finally:
        c.close()
    assert _ops(ils) == [("checkout", BOOK)] and ils.faults()["fired"] == {"drop_before": 1}


def test_drop_after_apply_journals_it(ils: IlsSim, client: Client) -> None:
    ils.set_faults(drop_after=1, codes=["11"])
    client.ask(s2.item_information(BOOK, institution_id=INST, transaction_date=NOW))  # not hit
    client.send(_checkout())
    assert client.closed()
    assert _ops(ils) == [("checkout", BOOK)]
    assert ils.library.copy(BOOK).patron_id == ZHANG  # type: ignore[union-attr]


def test_garbage_answer_is_a_sip2proto_error(ils: IlsSim, client: Client) -> None:
    ils.set_faults(garbage=1)
    client.send(_checkout())
    with pytest.raises(s2.RemoteSIP2Error):
        client.receive()
    for profile in s2.PROFILES.values():  # every profile's decoder refuses those bytes
        with pytest.raises(s2.RemoteSIP2Error):
            s2.decode(client.raw, profile)
    # the checkout was applied; 97 gets the real answer
    client.send_raw(s2.encode(s2.request_acs_resend(), client.profile))
    assert client.receive().get_fixed("ok") == "1"


def test_delay(ils: IlsSim, client: Client) -> None:
    """One answer is held back by delay_s; the next one is not. The delay is long beside a
    local round trip, so that a loaded test machine (whose round trips once took 0.56 s)
    cannot blur the two."""
    ils.set_faults(delay_s=3.0, delay=1)
    t0 = time.monotonic()
    client.ask(s2.item_information(BOOK, institution_id=INST, transaction_date=NOW))
    slow = time.monotonic() - t0
    assert ils.faults()["delay"] == 0
    t0 = time.monotonic()
    client.ask(s2.item_information(BOOK, institution_id=INST, transaction_date=NOW))
    fast = time.monotonic() - t0
    assert slow >= 3.0 and fast < 2.0, (slow, fast)


def test_bad_fault_settings_are_refused(ils: IlsSim) -> None:
    with pytest.raises(ValueError, match="unknown fault"):
        ils.set_faults(explode=1)
    with pytest.raises(ValueError, match="drop_before"):
        ils.set_faults(drop_before=-1)


def test_state_file_survives_a_restart(tmp_path: Path) -> None:
    state = tmp_path / "ils.json"
    with IlsSim(state_path=state, clock=lambda: NOW) as sim:
        c = Client(sim.address)
        c.login()
        c.ask(_checkout())
        c.close()
    with IlsSim(state_path=state, clock=lambda: NOW) as sim:
        assert _ops(sim) == [("checkout", BOOK)]
        assert sim.library.copy(BOOK).patron_id == ZHANG  # type: ignore[union-attr]


# --------------------------------------------------------------------------- the command

def _http(url: str, body: dict[str, Any] | None = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    with urllib.request.urlopen(urllib.request.Request(url, data=data), timeout=5) as r:
        return json.loads(r.read())


def test_ils_sim_command_as_a_child() -> None:
    child = ReadyChild(["ils-sim", "--port", "0", "--profile", "cn-gb18030",
                        "--institution", INST], "ils-sim ready ")
    child.start(timeout=30)
    try:
        host, port = child.url.rsplit(":", 1)
        line = next(x for x in child.lines if x.startswith("ils-sim ready "))
        control = line.split()[4]
        c = Client((host, int(port)), "cn-gb18030")
        try:
            assert c.login().get_fixed("ok") == "1"
            info = c.ask(s2.patron_information(ZHANG, institution_id=INST, transaction_date=NOW))
            assert info.get("AE") == "张三" and "张三".encode("gb18030") in c.raw
            assert _http(f"{control}/faults", {"drop_after": 1})["drop_after"] == 1
            c.send(_checkout())
            assert c.closed()
        finally:
            c.close()
        journal = _http(f"{control}/journal")
        assert [(e["op"], e["item_id"]) for e in journal] == [("checkout", BOOK)]
        # the library's own registration feed: a new reader and a new copy, then a loan
        assert _http(f"{control}/readers", {"patron_id": "E0001", "name": "孙八"})
        assert _http(f"{control}/items", {"item_id": "NEW-1", "title": "边城", "branch": "b"})
        c = Client((host, int(port)), "cn-gb18030")
        try:
            c.login()
            out = c.ask(_checkout(item="NEW-1", patron="E0001"))
            assert out.get_fixed("ok") == "1"
        finally:
            c.close()
        with pytest.raises(urllib.error.HTTPError) as bad:
            _http(f"{control}/readers", {"name": "no id"})
        assert bad.value.code == 400
    finally:
        assert child.stop() == 0
