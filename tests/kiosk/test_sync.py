"""The cabinet's sync agent against the stand-in server: real HTTP on a free port, a real
ledger file, real Ed25519 signatures.

What must hold: the outbox drains and is acked; re-sending never duplicates anything on the
server; a gap the server sees is filled by re-sending; the agent knows quickly and truthfully
whether the server is there; the server's deltas land in the ledger; the clock offset is
measured even when the cabinet clock is far off.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kiosk.ledger import Ledger, NewEvent
from kiosk.sync import BATCH_MAX, SyncAgent
from lendbox.standin_server import StandinServer
from syncproto import grants, qrtoken, signing
from syncproto.messages import CabinetEvent, ItemInfo, ReaderQuery, SyncBatch, SyncReply

CAB = "test-0001"
CAB_PRIVATE, CAB_PUBLIC = grants.generate_keypair()


class Recording(httpx.BaseTransport):
    """The real HTTP transport, remembering every exchange: lets a test see what the agent
    sent and what the server answered (nothing is faked)."""

    def __init__(self) -> None:
        self._inner = httpx.HTTPTransport()
        self.attempts = 0
        self.exchanges: list[tuple[str, bytes, int, bytes]] = []  # (path, body, status, reply)
        self._lock = threading.Lock()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        with self._lock:
            self.attempts += 1
        response = self._inner.handle_request(request)
        content = response.read()
        with self._lock:
            self.exchanges.append((request.url.path, request.content, response.status_code, content))
        return httpx.Response(response.status_code, headers=response.headers, content=content)

    def syncs(self) -> list[tuple[SyncBatch, SyncReply]]:
        with self._lock:
            done = list(self.exchanges)
        return [(SyncBatch.model_validate_json(body), SyncReply.model_validate_json(reply))
                for path, body, status, reply in done if path == "/v1/sync" and status == 200]

    def close(self) -> None:
        self._inner.close()


def _our_threads(prefix: str) -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith(prefix) and t.is_alive()]


@pytest.fixture(autouse=True, scope="module")
def no_server_thread_left() -> Iterator[None]:
    yield
    assert _our_threads("standin-server") == []


@pytest.fixture(autouse=True)
def no_sync_thread_left() -> Iterator[None]:
    yield
    assert _our_threads("sync:") == []


@pytest.fixture
def server() -> Iterator[StandinServer]:
    srv = StandinServer(port=0).start()
    srv.register_cabinet(CAB, CAB_PUBLIC)
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    with Ledger(tmp_path / "ledger.sqlite", CAB) as led:
        yield led


@pytest.fixture
def recording() -> Recording:
    return Recording()


@pytest.fixture
def make_agent(server: StandinServer, ledger: Ledger,
               recording: Recording) -> Iterator[Callable[..., SyncAgent]]:
    made: list[SyncAgent] = []

    def make(**kw: object) -> SyncAgent:
        led = kw.pop("ledger", ledger)
        args: dict[str, object] = dict(cabinet_id=CAB, server_url=server.url, private_key=CAB_PRIVATE,
                                       interval_s=0.2, backoff=(0.05, 0.3), transport=recording)
        args.update(kw)
        agent = SyncAgent(led, **args)  # type: ignore[arg-type]
        made.append(agent)
        return agent

    yield make
    for agent in made:
        agent.close()


def loans(ledger: Ledger, n: int, reader_id: str = "R0001", offline: bool = False) -> list[int]:
    return ledger.append([NewEvent("loan", {"item_id": f"I{ledger.last_seq() + i + 1:05d}",
                                            "reader_id": reader_id, "due": "2030-01-01",
                                            "door": 1, "session": "s1"}, offline=offline)
                          for i in range(n)])


def wait_for(cond: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.01)
    return cond()


def reset_ack(ledger: Ledger) -> None:
    """The ack is lost (e.g. a crash between the reply and its commit). The ledger itself
    only lets acks grow, so this reaches into the file as a second SQLite connection."""
    with sqlite3.connect(ledger.path) as conn:
        conn.execute("UPDATE meta SET value = '0' WHERE key = 'acked_through'")
    assert ledger.acked_through() == 0


# ---------------------------------------------------------------------- the outbox


def test_outbox_drains_in_batches_and_is_acked(make_agent: Callable[..., SyncAgent], ledger: Ledger,
                                               server: StandinServer, recording: Recording) -> None:
    seqs = loans(ledger, 2 * BATCH_MAX + 37)
    agent = make_agent()

    outcome = agent.sync_once()

    assert outcome.ok and outcome.error is None
    assert outcome.sent == len(seqs) and outcome.applied_through == seqs[-1]
    assert ledger.acked_through() == seqs[-1] and ledger.pending() == 0
    assert [len(batch.events) for batch, _ in recording.syncs()] == [BATCH_MAX, BATCH_MAX, 37]
    on_server = server.events(CAB)
    assert [e.seq for e in on_server] == seqs
    assert on_server == ledger.events_after(0, limit=10_000)
    assert agent.online and agent.last_success_at is not None


def test_empty_outbox_still_fetches_deltas(make_agent: Callable[..., SyncAgent], ledger: Ledger,
                                           server: StandinServer, recording: Recording) -> None:
    outcome = make_agent().sync_once()
    assert outcome.ok and outcome.sent == 0 and outcome.applied_through == 0
    assert len(recording.syncs()) == 1
    assert ledger.trusted_keys() == server.public_keys


def test_resending_after_a_lost_ack_changes_nothing(make_agent: Callable[..., SyncAgent], ledger: Ledger,
                                                    server: StandinServer) -> None:
    seqs = loans(ledger, 12)
    agent = make_agent()
    assert agent.sync_once().ok
    before = server.events(CAB)

    reset_ack(ledger)
    again = agent.sync_once()

    assert again.ok and again.sent == len(seqs) and again.applied_through == seqs[-1]
    assert server.events(CAB) == before
    assert server.conflicts(CAB) == [] and server.held(CAB) == []
    assert ledger.acked_through() == seqs[-1]


def test_a_gap_on_the_server_is_filled_by_resending(make_agent: Callable[..., SyncAgent], ledger: Ledger,
                                                    server: StandinServer, recording: Recording) -> None:
    loans(ledger, 10)
    server.drop_once(5)  # lost in transit: the server sees 1-4 and 6-10

    outcome = make_agent().sync_once()

    (first_batch, first), (second_batch, second) = recording.syncs()
    assert [e.seq for e in first_batch.events] == list(range(1, 11))
    assert (first.applied_through, first.gap_from) == (4, 5)  # stops before the missing one
    assert [e.seq for e in second_batch.events] == list(range(5, 11))  # re-sent from the gap
    assert (second.applied_through, second.gap_from) == (10, None)
    assert outcome.ok and outcome.sent == 16 and outcome.applied_through == 10
    assert [e.seq for e in server.events(CAB)] == list(range(1, 11))
    assert ledger.acked_through() == 10


def test_a_gap_below_the_ack_is_resent(make_agent: Callable[..., SyncAgent], ledger: Ledger,
                                       server: StandinServer) -> None:
    """The server lost what the cabinet thinks is acked (restored from a backup): gap_from
    sends the agent back below its own ack, and the ack never moves backwards."""
    loans(ledger, 6)
    agent = make_agent()
    assert agent.sync_once().ok
    server.forget_after(CAB, 2)
    loans(ledger, 1)

    outcome = agent.sync_once()

    assert outcome.ok and outcome.applied_through == 7
    assert [e.seq for e in server.events(CAB)] == list(range(1, 8))
    assert ledger.acked_through() == 7


# ---------------------------------------------------------------------- online state


def test_pause_and_resume(make_agent: Callable[..., SyncAgent], ledger: Ledger, server: StandinServer,
                          recording: Recording) -> None:
    agent = make_agent()
    loans(ledger, 3)
    agent.start()
    try:
        assert wait_for(lambda: ledger.pending() == 0 and agent.online)

        server.pause()
        loans(ledger, 4, offline=True)
        agent.kick()
        assert wait_for(lambda: not agent.online, timeout=2.0)
        assert agent.last_error is not None and "unreachable" in agent.last_error
        attempts = recording.attempts
        time.sleep(1.0)
        # Backing off: (0.05 s doubling to 0.3 s, jittered) is at most ~8 tries a second.
        assert 2 <= recording.attempts - attempts <= 10
        assert agent.failures >= 2
        assert ledger.pending() == 4 and len(server.events(CAB)) == 3

        server.resume()
        assert wait_for(lambda: ledger.pending() == 0, timeout=3.0)  # within the backoff cap
        assert agent.online and agent.failures == 0 and agent.last_error is None
        assert [e.seq for e in server.events(CAB)] == list(range(1, 8))
    finally:
        t0 = time.monotonic()
        agent.stop()
        assert time.monotonic() - t0 < 1.0
    assert not agent.running


def test_kick_syncs_at_once(make_agent: Callable[..., SyncAgent], ledger: Ledger) -> None:
    agent = make_agent(interval_s=30.0)  # only a kick can explain a prompt second round
    agent.start()
    try:
        assert wait_for(lambda: agent.online)
        loans(ledger, 2)
        agent.kick()
        assert wait_for(lambda: ledger.pending() == 0, timeout=5.0)  # the interval is 30 s
    finally:
        agent.stop()


def test_online_expires_after_three_intervals(make_agent: Callable[..., SyncAgent]) -> None:
    agent = make_agent(interval_s=0.1)
    assert not agent.online  # nothing known yet
    assert agent.sync_once().ok and agent.online
    time.sleep(0.35)
    assert not agent.online


def test_stop_is_prompt_while_backing_off(make_agent: Callable[..., SyncAgent],
                                         server: StandinServer) -> None:
    server.pause()
    agent = make_agent(backoff=(5.0, 60.0))
    agent.start()
    assert wait_for(lambda: agent.failures >= 1)
    t0 = time.monotonic()
    agent.stop()
    assert time.monotonic() - t0 < 1.0 and not agent.running


# ---------------------------------------------------------------------- readers


def test_resolve_reader_online_and_offline(make_agent: Callable[..., SyncAgent], ledger: Ledger,
                                           server: StandinServer, recording: Recording) -> None:
    card = server.add_reader("04A1B2C3D4E5F6", "R0001", "张三", tier="gold", max_loans=8)
    assert card is not None
    agent = make_agent()

    reply = agent.resolve_reader(ReaderQuery(cabinet_id=CAB, card_hash=grants.card_hash("04a1b2c3d4e5f6")))
    assert reply is not None and reply.status == "ok" and reply.reader_id == "R0001"
    assert reply.display_name == "张三" and reply.grant is not None and reply.grant.max_loans == 8
    grants.verify_grant(reply.grant, server.public_keys, datetime.now(UTC))
    unknown = agent.resolve_reader(ReaderQuery(cabinet_id=CAB, card_hash="0" * 64))
    assert unknown is not None and unknown.status == "unknown"
    assert agent.online

    server.pause()
    t0 = time.monotonic()
    assert agent.resolve_reader(ReaderQuery(cabinet_id=CAB, reader_id="R0001")) is None
    first = time.monotonic() - t0
    assert not agent.online and first < 1.0
    attempts = recording.attempts
    t0 = time.monotonic()
    assert agent.resolve_reader(ReaderQuery(cabinet_id=CAB, reader_id="R0001")) is None
    assert time.monotonic() - t0 < 0.5  # no request, no timeout: only a loaded machine is slower
    assert recording.attempts == attempts  # it did not even try

    server.resume()
    assert agent.sync_once().ok  # the background sync would do this: the server is back
    again = agent.resolve_reader(ReaderQuery(cabinet_id=CAB, reader_id="R0001"))
    assert again is not None and again.status == "ok"


def test_resolve_of_a_blocked_reader(make_agent: Callable[..., SyncAgent], server: StandinServer) -> None:
    server.add_reader(None, "R0002", "李四", blocked=True)
    reply = make_agent().resolve_reader(ReaderQuery(cabinet_id=CAB, reader_id="R0002"))
    assert reply is not None and reply.status == "blocked" and reply.grant is None


def test_logs_never_show_a_reader(make_agent: Callable[..., SyncAgent], ledger: Ledger,
                                  server: StandinServer, caplog: pytest.LogCaptureFixture) -> None:
    card = server.add_reader("04A1B2C3D4E5F6", "R0001", "张三")
    assert card is not None
    agent = make_agent()
    caplog.set_level(logging.DEBUG)
    agent.resolve_reader(ReaderQuery(cabinet_id=CAB, card_hash=card))
    loans(ledger, 1, reader_id="R0001")
    agent.sync_once()
    server.pause()
    agent.resolve_reader(ReaderQuery(cabinet_id=CAB, card_hash=card))
    agent.sync_once()
    text = caplog.text
    assert "R0001" not in text and card not in text and "张三" not in text
    assert grants.log_id("R0001") in text  # what logs show instead


# ---------------------------------------------------------------------- deltas


def test_deltas_land_in_the_ledger(make_agent: Callable[..., SyncAgent], ledger: Ledger,
                                   server: StandinServer) -> None:
    server.add_reader("CARD-1", "R0001", "张三", max_loans=6, offline_allowance=3)
    server.add_reader("CARD-2", "R0002", "李四")
    server.add_item(ItemInfo(item_id="I1", title="围城", author="钱锺书", category="I",
                             owner_library="CN-440300"))
    server.add_hold("I1", "R0001", cabinet_id=CAB)
    server.add_hold("I9", "R0002", cabinet_id="elsewhere")
    server.block("R0002")
    server.push_config({"loan_days": 21})
    loans(ledger, 1, reader_id="R0001")  # the server answers a grant for the borrower
    agent = make_agent()

    assert agent.sync_once().ok

    grant = ledger.grant("R0001")
    assert grant is not None and (grant.max_loans, grant.offline_allowance) == (6, 3)
    grants.verify_grant(grant, ledger.trusted_keys(), datetime.now(UTC))
    assert ledger.denied("R0002") and not ledger.denied("R0001")
    assert ledger.deny_version() == 1
    item = ledger.item("I1")
    assert item is not None and item.title == "围城"
    assert [(h.item_id, h.reader_id) for h in ledger.holds()] == [("I1", "R0001")]
    assert ledger.trusted_keys() == server.public_keys
    assert json.loads(ledger.get_meta("server_config")) == {"loan_days": 21}

    # The next changes arrive as deltas on top of these.
    server.add_item(ItemInfo(item_id="I2", title="活着"))
    server.unblock("R0002")
    server.block("R0001")
    new_key = server.rotate_key()
    assert agent.sync_once().ok
    assert ledger.item("I2") is not None and ledger.items_version() == 2
    assert ledger.denied("R0001") and not ledger.denied("R0002") and ledger.deny_version() == 3
    assert new_key in ledger.trusted_keys() and len(ledger.trusted_keys()) == 2


def test_only_newer_deltas_are_sent(make_agent: Callable[..., SyncAgent], server: StandinServer,
                                    recording: Recording) -> None:
    server.add_item(ItemInfo(item_id="I1"))
    server.block("R0009")
    agent = make_agent()
    assert agent.sync_once().ok
    assert agent.sync_once().ok
    (b1, r1), (b2, r2) = recording.syncs()
    assert (b1.items_version, b1.deny_version) == (0, 0) and len(r1.items) == 1 and len(r1.deny) == 1
    assert (b2.items_version, b2.deny_version) == (1, 1) and r2.items == [] and r2.deny == []


def test_resolved_reader_grant_comes_with_the_next_sync(make_agent: Callable[..., SyncAgent],
                                                       ledger: Ledger, server: StandinServer) -> None:
    server.add_reader(None, "R0003", "王五")
    agent = make_agent()
    assert agent.resolve_reader(ReaderQuery(cabinet_id=CAB, reader_id="R0003")) is not None
    assert ledger.grant("R0003") is None  # resolve_reader caches nothing itself
    assert agent.sync_once().ok
    assert ledger.grant("R0003") is not None


# ---------------------------------------------------------------------- signatures, clock


def test_bad_signature_is_refused_and_reported(make_agent: Callable[..., SyncAgent], ledger: Ledger,
                                               server: StandinServer) -> None:
    wrong_private, _ = grants.generate_keypair()
    loans(ledger, 2)
    agent = make_agent(private_key=wrong_private)

    outcome = agent.sync_once()

    assert not outcome.ok and outcome.sent == 0
    assert outcome.error is not None and "401" in outcome.error and "bad_signature" in outcome.error
    assert agent.last_error == outcome.error and not agent.online
    assert server.events(CAB) == [] and ledger.acked_through() == 0


def test_server_answers_401_422_400_with_json(server: StandinServer) -> None:
    def post(path: str, body: bytes, sign: bool = True) -> httpx.Response:
        headers = {"content-type": "application/json"}
        if sign:
            headers.update(signing.sign_request("POST", path, body, cabinet_id=CAB, private_key=CAB_PRIVATE,
                                                now=datetime.now(UTC)))
        return httpx.post(server.url + path, content=body, headers=headers, timeout=5.0)

    unsigned = post("/v1/sync", b"{}", sign=False)
    assert unsigned.status_code == 401 and unsigned.json()["error"] == "missing_header"
    stranger = httpx.post(server.url + "/v1/sync", content=b"{}", headers=signing.sign_request(
        "POST", "/v1/sync", b"{}", cabinet_id="nobody", private_key=CAB_PRIVATE, now=datetime.now(UTC)))
    assert stranger.status_code == 401 and stranger.json()["error"] == "unknown_cabinet"
    invalid = post("/v1/sync", json.dumps({"cabinet_id": CAB}).encode())
    assert invalid.status_code == 422 and "sent_at" in invalid.json()["detail"]
    version = post("/v1/sync", json.dumps({"version": 2, "cabinet_id": CAB}).encode())
    assert version.status_code == 400 and version.json()["error"] == "unsupported_version"
    other = post("/v1/readers/resolve", json.dumps({"cabinet_id": "someone-else", "reader_id": "x"}).encode())
    assert other.status_code == 403
    body = json.dumps({"cabinet_id": CAB, "reader_id": "R0404"}).encode()
    headers = {"content-type": "application/json", **signing.sign_request(
        "POST", "/v1/readers/resolve", body, cabinet_id=CAB, private_key=CAB_PRIVATE, now=datetime.now(UTC))}
    assert httpx.post(server.url + "/v1/readers/resolve", content=body, headers=headers).status_code == 200
    replay = httpx.post(server.url + "/v1/readers/resolve", content=body, headers=headers)
    assert replay.status_code == 401  # the same nonce twice
    health = httpx.get(server.url + "/v1/health")
    assert health.status_code == 200 and health.json()["status"] == "ok"


def test_clock_offset_is_measured_on_a_skewed_cabinet(tmp_path: Path, server: StandinServer,
                                                      make_agent: Callable[..., SyncAgent]) -> None:
    def skewed() -> float:
        return time.time() + 300.0

    with Ledger(tmp_path / "skewed.sqlite", CAB, clock=skewed) as led:
        loans(led, 1)
        agent = make_agent(ledger=led, clock=skewed)
        outcome = agent.sync_once()
        assert outcome.ok, outcome.error
        offset = led.get_meta("clock_offset_s")
        assert offset == pytest.approx(-300.0, abs=1.0)
        assert agent.clock_offset_s == pytest.approx(offset)
        # The ledger times new events with the corrected clock.
        loans(led, 1)
        event = led.events_after(1)[0]
        assert abs(event.at.timestamp() - time.time()) < 2.0
        assert agent.sync_once().ok and led.pending() == 0


def test_a_clock_beyond_the_signature_window_recovers(make_agent: Callable[..., SyncAgent],
                                                      recording: Recording) -> None:
    """An hour off: the first request is refused for its timestamp; the 401 carries the
    server time, the agent signs again with the corrected clock, and stays corrected."""
    agent = make_agent(clock=lambda: time.time() + 3600.0)
    assert agent.sync_once().ok
    assert [status for _, _, status, _ in recording.exchanges] == [401, 200]
    assert agent.clock_offset_s == pytest.approx(-3600.0, abs=1.0)
    assert agent.ledger.get_meta("clock_offset_s") == pytest.approx(-3600.0, abs=1.0)
    assert agent.sync_once().ok
    assert [status for _, _, status, _ in recording.exchanges] == [401, 200, 200]


def test_qr_from_the_standin_verifies(server: StandinServer) -> None:
    server.add_reader(None, "R0001", "张三")
    now = datetime.now(UTC)
    text = server.issue_qr("R0001", ttl_s=30, now=now)
    claims = qrtoken.verify_token(text, server.public_keys, now + timedelta(seconds=1))
    assert claims.reader_id == "R0001" and claims.grant is not None
    assert claims.grant.grant_id == claims.grant_id


# ---------------------------------------------------------------------- properties


def _events(n: int) -> list[CabinetEvent]:
    at = datetime(2030, 1, 1, tzinfo=UTC)
    return [CabinetEvent(cabinet_id=CAB, seq=s, uuid=uuid.uuid4(), kind="session", at=at, mono=float(s),
                         boot_id="b", payload={"session": f"s{s}"}) for s in range(1, n + 1)]


@settings(max_examples=150)
@given(st.integers(1, 25).flatmap(lambda n: st.tuples(
    st.just(n), st.lists(st.lists(st.integers(1, n), max_size=12), max_size=10))))
def test_any_interleaving_of_batches_applies_each_event_once_in_order(
        case: tuple[int, list[list[int]]]) -> None:
    """Duplicates, overlaps, gaps and any order: the server applies a contiguous prefix,
    each event exactly once, and everything once the full outbox has arrived."""
    n, batches = case
    events = _events(n)
    server = StandinServer()  # never started: the intake logic, without HTTP
    server.register_cabinet(CAB, CAB_PUBLIC)
    high = 0
    for batch in batches:
        applied, gap = server.receive(CAB, [events[s - 1] for s in batch])
        assert applied >= high and server.events(CAB) == events[:applied]
        assert gap is None or gap == applied + 1
        high = applied
    applied, gap = server.receive(CAB, events)  # the agent re-sends from its ack eventually
    assert (applied, gap) == (n, None)
    assert server.events(CAB) == events and server.conflicts(CAB) == []


@pytest.fixture(scope="module")
def shared_server() -> Iterator[StandinServer]:
    """One server for every example of a property (a cabinet id per example keeps them apart):
    starting uvicorn per example would dominate the run time."""
    with StandinServer() as srv:
        yield srv


@settings(max_examples=25)
@given(n=st.integers(1, 40), dropped=st.sets(st.integers(1, 40), max_size=4))
def test_agent_fills_any_gaps(shared_server: StandinServer, n: int, dropped: set[int]) -> None:
    """Whatever the server loses in transit, one sync_once leaves it with every event once."""
    cab = f"prop-{uuid.uuid4().hex[:12]}"
    shared_server.register_cabinet(cab, CAB_PUBLIC)
    for seq in dropped:
        shared_server.drop_once(seq, cab)
    with tempfile.TemporaryDirectory() as tmp, Ledger(Path(tmp) / "l.sqlite", cab) as led:
        loans(led, n)
        with SyncAgent(led, cabinet_id=cab, server_url=shared_server.url,
                       private_key=CAB_PRIVATE) as agent:
            outcome = agent.sync_once()
        assert outcome.ok, outcome.error
        assert [e.seq for e in shared_server.events(cab)] == list(range(1, n + 1))
        lost = [s for s in dropped if s <= n]
        # One batch carries all; every loss shows up as one gap, filled by one re-send.
        assert outcome.sent == n + (n - min(lost) + 1 if lost else 0)
        assert led.acked_through() == n


def test_backoff_stays_bounded_after_a_week_of_failures(make_agent: Callable[..., SyncAgent]) -> None:
    """A cabinet offline for a week fails thousands of times; the backoff stays at its cap
    (an unbounded 2 ** failures once overflowed and killed the sync thread)."""
    agent = make_agent()
    first, cap = agent.backoff
    for failures in (1, 2, 10, 1100, 10**6):
        delay = agent._backoff_delay(failures)
        assert first / 2 <= delay <= cap
    assert agent._backoff_delay(10**6) >= cap / 2
