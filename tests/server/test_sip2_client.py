"""The SIP2 client over real sockets (server.sip2_client, server.ils_port).

Socket-level behaviours (split/merged reads, timeouts, drops, garbled answers, the pool, the
heartbeat, TLS) run against a small scriptable ACS (tests/server/sip2_fake_acs.py). Exactly
once runs the outbox's Forwarder through our IlsPort against **pysip2**, the independent
SIP2 server (lendbox/sip2_peer.py), behind a proxy that drops connections before the request
reaches it or after it applied it and before its answer comes back.
"""

from __future__ import annotations

import contextlib
import random
import socket
import ssl
import subprocess
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import sip2proto
from server import ils_outbox
from server.db import write_tx
from server.ils_outbox import Entry, Forwarder, IlsItemView, LostAnswer, effect_visible
from server.ils_port import ANOTHER_READER, SIP2IlsPort, due_of
from server.sip2_client import (
    AnswerLost,
    ClientConfig,
    ConnectFailed,
    GarbledAnswer,
    LoginRefused,
    RequestTimeout,
    SIP2Client,
    SIP2Connection,
)

from .sip2_fake_acs import INSTITUTION, FakeACS

T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


def _config(acs: FakeACS, **kw: object) -> ClientConfig:
    base = dict(host="127.0.0.1", port=acs.port, user="sc", password="secret", location="MAIN",
                institution_id=INSTITUTION, profile=acs.profile, timeout_s=2.0,
                backoff_s=0.05, heartbeat_s=None)
    base.update(kw)
    return ClientConfig(**base)  # type: ignore[arg-type]


@pytest.fixture
def acs() -> Iterator[FakeACS]:
    with FakeACS() as server:
        yield server


def _entry(kind: str, item: str, reader: str | None = "P1", due: str | None = "2026-12-18",
           offline: bool = True, entry_id: int = 1) -> Entry:
    return Entry(id=entry_id, kind=kind, item_id=item, reader_id=reader, transaction_at=T0,
                 due=due, offline=offline, status="pending", attempts=0)


# ----------------------------------------------------------------------------- session


def test_login_then_sc_status_on_connect(acs: FakeACS) -> None:
    conn = SIP2Connection(_config(acs)).open()
    try:
        assert acs.codes() == ["93", "99"]
        assert conn.acs_status is not None and conn.acs_status.code == "98"
        assert conn.acs_status.get("AM") == "测试图书馆"
        # checksums on: AY cycles per request and the answer echoes it
        assert [m.seq for m in acs.received] == [0, 1]
    finally:
        conn.close()


def test_login_refused_is_not_sent_and_not_retried(acs: FakeACS) -> None:
    with pytest.raises(LoginRefused):
        SIP2Connection(_config(acs, password="wrong", reconnect_attempts=3)).open()
    assert acs.codes() == ["93"]


def test_connect_refused_after_backoff() -> None:
    with socket.create_server(("127.0.0.1", 0)) as s:
        port = s.getsockname()[1]
    cfg = ClientConfig(host="127.0.0.1", port=port, user="u", password="p",
                       reconnect_attempts=3, backoff_s=0.05, connect_timeout_s=1)
    t = time.monotonic()
    with pytest.raises(ConnectFailed):
        SIP2Connection(cfg).open()
    assert time.monotonic() - t >= 0.05 + 0.1  # waited 0.05 then 0.1 between the three


def test_heartbeat_before_reuse_and_from_the_thread(acs: FakeACS) -> None:
    with SIP2Client(_config(acs, heartbeat_s=0.2)) as client:
        client.item_information("B1")
        assert acs.codes() == ["93", "99", "17"]
        time.sleep(0.3)
        client.item_information("B1")  # idle past the heartbeat: 99 first
        assert acs.codes()[3:] == ["99", "17"]
        client.start_heartbeat(interval_s=0.05)
        time.sleep(0.6)
        assert acs.codes()[5:].count("99") >= 2  # the idle connection is kept alive
        assert set(acs.codes()[5:]) == {"99"}


def test_split_and_merged_reads(acs: FakeACS) -> None:
    with SIP2Client(_config(acs)) as client:
        acs.lookup_faults = ["split", "merged"]
        a = client.item_information("B1")  # answer arrives one byte per read
        b = client.item_information("B2")  # a stale answer and ours in one read
        assert (a.code, a.get("AB")) == ("18", "B1")
        assert (b.code, b.get("AB")) == ("18", "B2")
        assert b.seq == 3  # 93 → 0, 99 → 1, 17 → 2, 17 → 3: the stale seq-8 copy was skipped


def test_timeout_on_checkout_is_a_lost_answer_resolved_by_lookup(acs: FakeACS) -> None:
    acs.faults = ["silent_after"]
    with SIP2Client(_config(acs, timeout_s=0.5)) as client:
        port = SIP2IlsPort(client)
        entry = _entry("checkout", "B7")
        with pytest.raises(LostAnswer):
            port.send(entry)
        assert acs.codes().count("11") == 1  # never re-sent
        view = port.lookup(entry)
        assert view == IlsItemView(charged=True, charged_to="P1", due="2026-12-18")
        assert effect_visible(entry, view)
        assert acs.library.applied == Counter({("checkout", "B7"): 1})


def test_lookup_names_another_reader(acs: FakeACS) -> None:
    acs.library.charged["B8"] = ("P9", "20261201    235959")
    with SIP2Client(_config(acs)) as client:
        view = SIP2IlsPort(client).lookup(_entry("checkout", "B8"))
    assert view.charged and view.charged_to == ANOTHER_READER
    assert not effect_visible(_entry("checkout", "B8"), view)


def test_offline_checkout_carries_no_block_original_date_and_due(acs: FakeACS) -> None:
    with SIP2Client(_config(acs)) as client:
        answer = SIP2IlsPort(client).send(_entry("checkout", "B3", offline=True))
        SIP2IlsPort(client).send(_entry("checkin", "B3", offline=True))
    assert answer.ok
    out = [m for m in acs.received if m.code in ("11", "09")]
    assert out[0].get_fixed("no_block") == "Y"
    assert out[0].get_fixed("transaction_date") == "20261120   Z090000"
    assert out[0].get_fixed("nb_due_date") == "20261218    235959"
    assert out[1].get_fixed("return_date") == "20261120   Z090000"
    assert out[1].get("AP") == "MAIN"


def test_reconnect_after_the_ils_dropped_idle_connections(acs: FakeACS) -> None:
    with SIP2Client(_config(acs)) as client:
        client.item_information("B1")
        acs.drop_all()
        time.sleep(0.1)
        SIP2IlsPort(client).send(_entry("checkout", "B4"))  # no lost answer: found closed first
        assert client.reconnects == 1
        assert acs.logins == 2
        acs.lookup_faults = ["drop_before"]  # a lookup cut mid-request is retried once
        assert client.item_information("B4").get_fixed("circulation_status") == "04"


def test_drop_after_apply_is_lost_then_resolved(acs: FakeACS) -> None:
    acs.faults = ["drop_after"]
    with SIP2Client(_config(acs)) as client:
        port = SIP2IlsPort(client)
        with pytest.raises(LostAnswer):
            port.send(_entry("checkin", "B5"))
    acs.library.charged["B5"] = ("P1", "")
    acs.faults = ["drop_after"]
    with SIP2Client(_config(acs)) as client:
        port = SIP2IlsPort(client)
        with pytest.raises(LostAnswer):
            port.send(_entry("checkin", "B5"))
        assert effect_visible(_entry("checkin", "B5"), port.lookup(_entry("checkin", "B5")))


def test_pool_shared_by_threads(acs: FakeACS) -> None:
    errors: list[BaseException] = []
    results: list[str] = []
    with SIP2Client(_config(acs), size=3) as client:
        def work(n: int) -> None:
            try:
                for k in range(5):
                    results.append(client.item_information(f"T{n}-{k}").get("AB") or "")
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(n,)) for n in range(10)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(20)
    assert errors == []
    assert sorted(results) == sorted(f"T{n}-{k}" for n in range(10) for k in range(5))
    assert acs.logins <= 3 and acs.max_open <= 3


def test_resend_rule_on_a_garbled_answer(acs: FakeACS) -> None:
    with SIP2Client(_config(acs)) as client:
        acs.lookup_faults = ["garble_once"]
        assert client.item_information("B1").get("AB") == "B1"
        assert acs.codes()[-2:] == ["17", "97"]
        acs.faults = ["garble_always"]
        with pytest.raises(GarbledAnswer):
            client.checkout("P1", "B2", transaction_date=T0, no_block=True,
                            nb_due_date=T0 + timedelta(days=28))
        tail = acs.codes()[acs.codes().index("11"):]
        assert tail == ["11", "97", "97"]  # two resend requests, the checkout never again


def test_a_circulation_timeout_is_never_retried(acs: FakeACS) -> None:
    acs.faults = ["silent_after"]
    with SIP2Client(_config(acs, timeout_s=0.3)) as client:
        with pytest.raises(RequestTimeout):
            client.checkout("P1", "B6", transaction_date=T0, no_block=False,
                            nb_due_date=T0 + timedelta(days=28))
        acs.faults = ["drop_before"]
        with pytest.raises(AnswerLost):  # retry=True does not apply to circulation
            client.request(sip2proto.checkin("B6", institution_id=INSTITUTION,
                                             transaction_date=T0, return_date=T0,
                                             terminal_password=""), retry=True)
    assert acs.codes().count("11") == 1 and acs.codes().count("09") == 1


def test_tls(tmp_path: Path) -> None:
    key, cert = tmp_path / "k.pem", tmp_path / "c.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
                    str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                   check=True, capture_output=True, timeout=30)
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)
    client_ctx = ssl.create_default_context(cafile=str(cert))
    with FakeACS(ssl_context=server_ctx) as acs, \
            SIP2Client(_config(acs, ssl_context=client_ctx)) as client:
        assert client.item_information("B1").get("AB") == "B1"
    with FakeACS(ssl_context=server_ctx) as acs:
        with pytest.raises(ConnectFailed):  # an unverified certificate is refused
            SIP2Connection(_config(acs, ssl_context=ssl.create_default_context(),
                                   reconnect_attempts=1)).open()


def test_due_of_reads_the_usual_forms() -> None:
    assert due_of("20261218    235959") == "2026-12-18"
    assert due_of("2026-12-18") == "2026-12-18"
    assert due_of("20261218") == "2026-12-18"
    assert due_of("") is None and due_of("  ") is None


# ----------------------------------------------------------------------------- exactly once


class DroppingProxy:
    """TCP proxy in front of the peer that drops the connection at random for circulation
    requests: before forwarding (not applied) or after the answer came (applied, lost)."""

    def __init__(self, upstream: tuple[str, int], rng: random.Random, p: float) -> None:
        self.upstream = upstream
        self.rng = rng
        self.p = p
        self.drops: Counter[str] = Counter()
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]
        self._stop = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        self._stop.set()
        with contextlib.suppress(OSError):
            self._sock.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._pair, args=(client,), daemon=True).start()

    def _pair(self, client: socket.socket) -> None:
        up = socket.create_connection(self.upstream)
        swallow = threading.Event()

        def close_both() -> None:
            for s in (client, up):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                with contextlib.suppress(OSError):
                    s.close()

        def down() -> None:  # peer → client
            buf = b""
            try:
                while data := up.recv(65536):
                    buf += data
                    while b"\r" in buf:
                        frame, buf = buf.split(b"\r", 1)
                        if swallow.is_set():
                            close_both()
                            return
                        client.sendall(frame + b"\r")
            except OSError:
                pass
            close_both()

        threading.Thread(target=down, daemon=True).start()
        buf = b""
        try:
            while data := client.recv(65536):
                buf += data
                while b"\r" in buf:
                    frame, buf = buf.split(b"\r", 1)
                    if frame[:2] in (b"11", b"09", b"29") and self.rng.random() < self.p:
                        if self.rng.random() < 0.5:
                            self.drops["before"] += 1
                            close_both()
                            return
                        self.drops["after"] += 1
                        swallow.set()
                    up.sendall(frame + b"\r")
        except OSError:
            pass
        close_both()


def test_forwarder_over_sip2_applies_each_entry_once_despite_drops(
        sqlite_db_url: str, tmp_path: Path) -> None:
    from lendbox.sip2_peer import PeerServer
    from server.db import make_engine
    from server.migrate import upgrade

    upgrade(sqlite_db_url)
    engine = make_engine(sqlite_db_url)
    journal = tmp_path / "applied.jsonl"
    items = ["B0001", "B0002", "B0003", "B0004", "B0008", "B0009", "B0010", "B0011"]
    readers = ["R0001", "R0002", "R0003", "R0005", "R0004"]
    plan: list[tuple[str, str, str | None, datetime]] = []
    for n, item in enumerate(items):
        plan.append(("checkout", item, readers[n % len(readers)], T0 + timedelta(minutes=n)))
    for n, item in enumerate(items[:5]):
        plan.append(("checkin", item, None, T0 + timedelta(hours=2, minutes=n)))
    with write_tx(engine) as conn:
        for kind, item, reader, at in plan:
            ils_outbox.enqueue(conn, kind=kind, source=str(uuid.uuid4()), item_id=item,
                               reader_id=reader, cabinet_id="C1", transaction_at=at,
                               due="2026-12-18" if kind == "checkout" else None, offline=True,
                               now=at)
    with PeerServer(encoding="utf-8", journal=journal, log=tmp_path / "peer.log") as peer:
        proxy = DroppingProxy(peer.address, random.Random(7), p=0.45)
        cfg = ClientConfig(host="127.0.0.1", port=proxy.port, user="lendbox",
                           password="secret", location="MAIN", institution_id="LENDBOX",
                           profile=sip2proto.PROFILES["pysip2"], timeout_s=3.0,
                           backoff_s=0.05, heartbeat_s=None)
        try:
            with SIP2Client(cfg, size=2) as client:
                totals = Forwarder(engine, SIP2IlsPort(client)).drain(max_passes=60)
        finally:
            proxy.close()
        applied = peer.journal_entries()
    engine.dispose()
    assert proxy.drops["before"] >= 1 and proxy.drops["after"] >= 1, proxy.drops
    assert totals["lost"] >= 2 and totals["looked_up"] >= 2, totals
    with make_engine(sqlite_db_url).connect() as conn:
        assert ils_outbox.counts(conn) == {"confirmed": len(plan)}
    got = Counter((e["op"], e["item"]) for e in applied)
    assert got == Counter((kind, item) for kind, item, _, _ in plan)
    by_item = {e["item"]: e for e in applied if e["op"] == "checkout"}
    assert by_item["B0001"]["no_block"] == "Y"
    assert by_item["B0001"]["nb_due_date"] == "20261218    235959"
    assert by_item["B0001"]["transaction_date"] == "20261120   Z090000"


def test_renew_with_the_peer(tmp_path: Path) -> None:
    from lendbox.sip2_peer import PeerServer

    with PeerServer(encoding="gb18030", log=tmp_path / "peer.log") as peer:
        cfg = ClientConfig(host=peer.address[0], port=peer.address[1], user="lendbox",
                           password="secret", location="MAIN", institution_id="LENDBOX",
                           profile=replace(sip2proto.PROFILES["pysip2"], encoding="gb18030"),
                           heartbeat_s=None)
        with SIP2Client(cfg) as client:
            port = SIP2IlsPort(client)
            answer = port.send(_entry("renew", "B0007", reader="R0003", due="2027-01-15",
                                      offline=False))
            assert answer.ok, answer
            assert client.patron_information("R0003").get("AE") == "欧阳娜娜"
            view = port.lookup(_entry("renew", "B0007", reader="R0003"))
            assert view.charged and view.charged_to == "R0003" and view.due is not None


# ----------------------------------------------------------------------------- the emulator


class _FaultingPort(SIP2IlsPort):
    """Arms the emulator's fault switch for exactly the next circulation request."""

    def __init__(self, client: SIP2Client, sim: object, faults: list[str]) -> None:
        super().__init__(client)
        self.sim = sim
        self.faults = faults

    def send(self, entry: Entry) -> ils_outbox.IlsAnswer:
        fault = self.faults.pop(0) if self.faults else "ok"
        if fault != "ok":
            self.sim.set_faults(**{fault: 1}, codes=["11", "09", "29"])  # type: ignore[attr-defined]
        try:
            return super().send(entry)
        finally:
            self.sim.clear_faults()  # type: ignore[attr-defined]


@settings(max_examples=12, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@example(n_items=3, n_checkins=2, profile="generic",
         faults=["drop_after", "drop_before", "garbage", "drop_after", "ok", "drop_before"])
@given(n_items=st.integers(2, 6), n_checkins=st.integers(0, 6),
       profile=st.sampled_from(["generic", "koha", "cn-gb18030", "folio"]),
       faults=st.lists(st.sampled_from(["ok", "drop_before", "drop_after", "garbage"]),
                       max_size=14))
def test_emulator_with_faults_n_forwarded_end_as_n_applied(
        tmp_path_factory: pytest.TempPathFactory, n_items: int, n_checkins: int, profile: str,
        faults: list[str]) -> None:
    from server.db import make_engine
    from server.migrate import upgrade
    from simulator.ils_sim import IlsSim

    url = f"sqlite:///{tmp_path_factory.mktemp('fwd') / 'db.sqlite'}"
    upgrade(url)
    engine = make_engine(url)
    readers = ["R0012345", "R0023456", "R0045678", "R0099999"]
    items = [f"39010000{n:05d}" for n in range(10, 10 + n_items)]
    plan: list[tuple[str, str, str | None, datetime]] = [
        ("checkout", item, readers[k % len(readers)], T0 + timedelta(minutes=k))
        for k, item in enumerate(items)]
    plan += [("checkin", item, None, T0 + timedelta(hours=1, minutes=k))
             for k, item in enumerate(items[:n_checkins])]
    with write_tx(engine) as conn:
        for kind, item, reader, at in plan:
            ils_outbox.enqueue(conn, kind=kind, source=str(uuid.uuid4()), item_id=item,
                               reader_id=reader, cabinet_id="C1", transaction_at=at,
                               due="2026-12-18" if kind == "checkout" else None, offline=True,
                               now=at)
    with IlsSim(profile=profile) as sim:
        cfg = ClientConfig(host=sim.host, port=sim.port, user="lendbox", password="lendbox",
                           location="sz-city", institution_id="LENDBOX",
                           profile=sip2proto.PROFILES[profile], timeout_s=2.0, backoff_s=0.02,
                           heartbeat_s=None)
        port = _FaultingPort(client := SIP2Client(cfg), sim, list(faults))
        with client:
            Forwarder(engine, port).drain(max_passes=40)
        journal = sim.journal()
        used = faults[:len(faults) - len(port.faults)]
        assert sum(sim.faults()["fired"].values()) == sum(f != "ok" for f in used)
    with engine.connect() as conn:
        assert ils_outbox.counts(conn) == {"confirmed": len(plan)}
    engine.dispose()
    assert Counter((j["op"], j["item_id"]) for j in journal) == \
        Counter((kind, item) for kind, item, _, _ in plan)
