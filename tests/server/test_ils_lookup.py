"""Online lookups in the ILS, cached (server.ils_lookup, issue 7 requirement 3).

What must hold, over real sockets against the in-process emulator: a fresh answer is served
from the cache without asking the ILS again; past ``fresh_s`` the ILS is asked again; while
the ILS cannot answer a cached answer younger than ``stale_ok_s`` is served marked stale, and
with nothing recent enough the lookup fails with a typed error; unknown patrons and items are
answers too (cached); Chinese names survive a cn-utf8 ILS; the HTTP routes answer 200 / 503 /
409 and never log a reader's name.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from server.app import create_app
from server.ils_lookup import IlsLookup, IlsLookupUnavailable
from server.ils_service import client_config
from server.settings import Settings
from server.sip2_client import SIP2Client
from simulator.ils_sim import IlsSim
from tests.server.test_security import (
    TTL_S,
    WINDOW_S,
    Clock,
    add_staff,
    bearer,
    make_app,
    seed_network,
    token_for,
)

ITEM = "3901000000003"
UNKNOWN_ITEM = "3901999999999"


class Mono:
    """An injected monotonic clock."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t

    def advance(self, s: float) -> None:
        self.t += s


def settings_for(sim: IlsSim, **kw: Any) -> Settings:
    values: dict[str, Any] = dict(ils_host=sim.host, ils_port=sim.port, ils_user="lendbox",
                                  ils_password="lendbox", ils_institution="LENDBOX",
                                  ils_location="sz-city", ils_profile=sim.profile.name)
    values.update(kw)
    return Settings(**values)


@pytest.fixture
def sim() -> Iterator[IlsSim]:
    with IlsSim(profile="generic") as s:
        yield s


@pytest.fixture
def clock() -> Mono:
    return Mono()


@pytest.fixture
def lookup(sim: IlsSim, clock: Mono) -> Iterator[IlsLookup]:
    client = SIP2Client(client_config(settings_for(sim)))
    lk = IlsLookup(client, fresh_s=300.0, stale_ok_s=3600.0, clock=clock)
    yield lk
    lk.close()


def asked(sim: IlsSim, code: str) -> int:
    return sim.requests.get(code, 0)


# ----------------------------------------------------------------------------- the rule


def test_a_fresh_answer_is_served_from_the_cache(sim: IlsSim, lookup: IlsLookup,
                                                  clock: Mono) -> None:
    first = lookup.patron("R0012345")
    assert (first.source, first.stale, first.age_s) == ("ils", False, 0.0)
    p = first.value
    assert (p.valid, p.display_name, p.blocked, p.charged_items) == (True, "张三", False, 0)
    assert p.privileges == {"charge": True, "renewal": True, "recall": True, "hold": True}
    datetime.fromisoformat(first.fetched_at)
    clock.advance(299.0)
    again = lookup.patron(" R0012345 ")  # the same key, trimmed
    assert (again.source, again.stale, again.age_s) == ("cache", False, 299.0)
    assert again.value == p and again.fetched_at == first.fetched_at
    assert asked(sim, "63") == 1

    item = lookup.item(ITEM)
    assert (item.source, item.value.found, item.value.title, item.value.circulation_status,
            item.value.status, item.value.charged, item.value.due) == (
        "ils", True, "围城", "03", "available", False, None)
    assert (item.value.owner, item.value.permanent_location,
            item.value.current_location) == ("LENDBOX", "sz-city", "sz-city")
    assert lookup.item(ITEM).source == "cache" and asked(sim, "17") == 1


def test_an_answer_past_fresh_s_is_asked_again(sim: IlsSim, lookup: IlsLookup,
                                                clock: Mono) -> None:
    lookup.item(ITEM)
    # the item is lent meanwhile: the cache does not know until the answer expires
    with SIP2Client(client_config(settings_for(sim))) as other:
        assert other.checkout("R0023456", ITEM, transaction_date=datetime.now(UTC),
                              no_block=False, nb_due_date=datetime(2030, 4, 1, 23, 59)
                              ).get_fixed("ok") == "1"
    clock.advance(299.9)
    assert lookup.item(ITEM).value.charged is False
    clock.advance(0.1)
    now = lookup.item(ITEM)
    assert (now.source, now.stale, now.age_s) == ("ils", False, 0.0)
    assert (now.value.charged, now.value.status) == (True, "charged")
    assert now.value.due is not None and len(now.value.due) == 10
    assert asked(sim, "17") == 2


def test_stale_is_served_while_the_ils_is_down_then_unavailable(
        sim: IlsSim, lookup: IlsLookup, clock: Mono) -> None:
    lookup.patron("R0012345")
    lookup.item(ITEM)
    sim.stop()
    clock.advance(301.0)
    stale = lookup.patron("R0012345")
    assert (stale.source, stale.stale, stale.age_s) == ("cache", True, 301.0)
    assert stale.value.display_name == "张三"
    assert lookup.item(ITEM).stale
    clock.advance(3600.0 - 301.0)  # now as old as stale_ok_s: no longer served
    with pytest.raises(IlsLookupUnavailable) as err:
        lookup.patron("R0012345")
    assert err.value.kind == "patron" and err.value.reason == "ConnectFailed"
    assert lookup.stats["stale"] == 2 and lookup.stats["unavailable"] == 1


def test_unavailable_when_nothing_is_cached(sim: IlsSim, lookup: IlsLookup) -> None:
    sim.stop()
    with pytest.raises(IlsLookupUnavailable, match="could not be asked about the item"):
        lookup.item(ITEM)
    with pytest.raises(IlsLookupUnavailable):
        lookup.patron("R0012345")
    assert len(lookup) == 0


def test_a_lost_answer_serves_stale(sim: IlsSim, lookup: IlsLookup, clock: Mono) -> None:
    lookup.item(ITEM)
    clock.advance(400.0)
    sim.set_faults(drop_before=2, codes=["17"])  # the client retries a lookup once
    stale = lookup.item(ITEM)
    assert stale.stale and stale.value.title == "围城"
    assert lookup.item(ITEM).source == "ils"  # the faults are spent: asked again


def test_unknown_patrons_and_items_are_answers_too(sim: IlsSim, lookup: IlsLookup) -> None:
    for _ in range(3):
        item = lookup.item(UNKNOWN_ITEM).value
        patron = lookup.patron("R9999999").value
    assert (item.found, item.status, item.title, item.charged) == (
        False, "not_found", "", False)
    assert "not found" in item.screen_message.lower()
    assert (patron.valid, patron.display_name, patron.blocked) == (False, "", False)
    assert asked(sim, "17") == 1 and asked(sim, "63") == 1


def test_blocked_readers_and_fines(lookup: IlsLookup) -> None:
    blocked = lookup.patron("R0099999").value
    assert blocked.valid and blocked.blocked
    assert blocked.privileges == {"charge": False, "renewal": False, "recall": False,
                                  "hold": False}
    assert "charge_privileges_denied" in blocked.flags
    fined = lookup.patron("R0088888").value
    assert (fined.blocked, fined.fine_amount, fined.currency) == (False, "3.50", "CNY")


def test_chinese_names_under_cn_utf8(clock: Mono) -> None:
    with IlsSim(profile="cn-utf8") as sim:
        lk = IlsLookup(SIP2Client(client_config(settings_for(sim))), clock=clock)
        try:
            assert lk.patron("R0034567").value.display_name == "欧阳娜娜"
            assert lk.patron("R0012345").value.display_name == "张三"
            assert lk.item("3901000000001").value.title == "三体"
        finally:
            lk.close()


def test_bounded_and_thread_safe(sim: IlsSim, clock: Mono) -> None:
    lk = IlsLookup(SIP2Client(client_config(settings_for(sim)), size=3), clock=clock,
                   max_entries=4)
    items = [f"39010000{n:05d}" for n in range(6)]
    errors: list[BaseException] = []

    def work(ids: list[str]) -> None:
        try:
            for iid in ids:
                assert lk.item(iid).value.found
        except BaseException as exc:  # noqa: BLE001 - collected for the assert below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(items[n::2],)) for n in range(2)]
    threads += [threading.Thread(target=work, args=(items,))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    lk.close()
    assert not errors and len(lk) == 4


def test_bad_ids_and_bad_parameters(lookup: IlsLookup) -> None:
    for bad in ("", "  ", "A|B"):
        with pytest.raises(ValueError):
            lookup.item(bad)
    with pytest.raises(ValueError):
        IlsLookup(lookup, fresh_s=10, stale_ok_s=5)  # type: ignore[arg-type]


def test_a_factory_is_called_once_on_first_use(sim: IlsSim) -> None:
    made: list[SIP2Client] = []

    def factory() -> SIP2Client:
        made.append(SIP2Client(client_config(settings_for(sim))))
        return made[-1]

    lk = IlsLookup(factory)
    assert made == []
    lk.item(ITEM)
    lk.patron("R0012345")
    assert len(made) == 1
    lk.close()


# ----------------------------------------------------------------------------- the routes


@pytest.fixture
def sqlite_engine(sqlite_db_url: str) -> Iterator[Engine]:
    from server.db import make_engine
    from server.migrate import upgrade

    upgrade(sqlite_db_url)
    eng = make_engine(sqlite_db_url)
    seed_network(eng)
    yield eng
    eng.dispose()


def test_the_routes(sqlite_engine: Engine, sim: IlsSim,
                    caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    clock = Clock()
    settings = settings_for(sim, database_url=str(sqlite_engine.url),
                            signature_window_s=WINDOW_S, token_ttl_s=TTL_S)
    app = create_app(settings, engine=sqlite_engine, clock=clock)
    token = token_for(sqlite_engine, add_staff(sqlite_engine, "desk", "branch_staff"),
                      clock.now)
    with TestClient(app) as client:
        r = client.get("/api/ils/patrons/R0012345", headers=bearer(token))
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["patron"]["display_name"] == "张三" and body["patron"]["valid"] is True
        assert (body["source"], body["stale"]) == ("ils", False)
        again = client.get("/api/ils/patrons/R0012345", headers=bearer(token)).json()
        assert again["source"] == "cache" and asked(sim, "63") == 1
        r = client.get(f"/api/ils/items/{ITEM}", headers=bearer(token))
        assert r.status_code == 200 and r.json()["item"]["title"] == "围城"
        unknown = client.get(f"/api/ils/items/{UNKNOWN_ITEM}", headers=bearer(token)).json()
        assert unknown["item"]["found"] is False

        sim.stop()
        assert client.get(f"/api/ils/items/{ITEM}", headers=bearer(token)).json()[
            "source"] == "cache"  # still fresh
        r = client.get("/api/ils/patrons/R0023456", headers=bearer(token))
        assert r.status_code == 503, r.text
        assert r.json()["error"] == "ils_unavailable"
        assert "could not be asked about this patron" in r.json()["detail"]
        r = client.get("/api/ils/items/A%7CB", headers=bearer(token))
        assert r.status_code == 422 and r.json()["error"] == "invalid_id"
        assert client.get("/api/ils/items/x").status_code == 401
    server_logs = " ".join(r.getMessage() for r in caplog.records if r.name.startswith("server"))
    assert "ILS patron lookup" in server_logs  # the 503 was logged, by hashed id
    assert "张三" not in server_logs and "R0023456" not in server_logs


def test_the_routes_without_an_ils(sqlite_engine: Engine) -> None:
    clock = Clock()
    client = TestClient(make_app(sqlite_engine, clock))
    token = token_for(sqlite_engine, add_staff(sqlite_engine, "desk", "branch_staff"),
                      clock.now)
    for url in ("/api/ils/patrons/R0012345", f"/api/ils/items/{ITEM}"):
        r = client.get(url, headers=bearer(token))
        assert r.status_code == 409 and r.json()["error"] == "ils_not_configured"
        assert "LENDBOX_ILS_HOST" in r.json()["detail"]
