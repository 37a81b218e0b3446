"""The central console through the real app (TestClient), on SQLite and PostgreSQL.

What staff notice: they log in with their password and stay logged in by a cookie the page's
scripts cannot read; a role sees what it may see and is told in words when it may not act;
a form posted from another site is refused; resolving an exception, queueing a remote
command, receiving a transit and moving a 荐购 all change the server's state and leave an
audit row; the charts carry the numbers the events make; an export is the API's CSV; bad
input is a page in plain words with a 4xx, never a 500.
"""

from __future__ import annotations

import csv
import io
import random
import re
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, insert, select

from lendbox.fleet import SimCabinet, push
from server.console.charts import bars, heatmap, shade
from server.console.messages import MESSAGES, message
from server.db import write_tx
from server.schema import audit, cabinets, exceptions, items, recommendations, readers, transits
from tests.server.test_security import (
    BRANCH,
    T0,
    Clock,
    add_staff,
    bearer,
    make_app,
    seed_network,
    token_for,
)

PASSWORD = "correct horse battery"
CAB = "cab-console"
HTML = {"accept": "text/html,application/xhtml+xml"}


class Console:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.clock = Clock()
        self.app = make_app(engine, self.clock)
        self.client = TestClient(self.app, raise_server_exceptions=False,
                                 base_url="http://console.test")
        self.ids = {role: add_staff(engine, f"{role}-1", role, PASSWORD)
                    for role in ("operator", "technician", "branch_staff", "auditor")}

    def token(self, role: str) -> str:
        return token_for(self.engine, self.ids[role], self.clock.now)

    def login(self, role: str) -> TestClient:
        """A browser-like client logged in through the form (cookie, Origin on POSTs)."""
        browser = TestClient(self.app, raise_server_exceptions=False, base_url="http://console.test",
                             headers={**HTML, "origin": "http://console.test"})
        r = browser.post("/console/login", data={"username": f"{role}-1", "password": PASSWORD},
                         follow_redirects=False)
        assert r.status_code == 303, r.text
        return browser


@pytest.fixture
def console(engine: Engine) -> Console:
    seed_network(engine)
    sim = SimCabinet(CAB, BRANCH, rng=random.Random(7), boot_at=T0)
    with write_tx(engine) as conn:
        conn.execute(insert(cabinets).values(id=CAB, branch_id=BRANCH, name="测试柜",
                                             location="大厅", public_key=sim.public_key,
                                             registered_at=T0, active=True, applied_through=0,
                                             deny_version_sent=0, capacity=40))
        for n in range(1, 4):
            conn.execute(insert(items).values(id=f"book-{n}", title=f"书 {n}", owner_library="",
                                              home_branch_id=BRANCH, status="in_cabinet",
                                              location_cabinet_id=CAB, version=0))
    c = Console(engine)
    c.sim = sim  # type: ignore[attr-defined]
    return c


def _push_loans(c: Console, hours: list[int], item: str = "book-1") -> None:
    """Real signed sync batches: loans of ``item`` at these UTC hours of 2025-03-01."""
    sim: SimCabinet = c.sim  # type: ignore[attr-defined]
    for hour in hours:
        sim.append("loan", datetime(2025, 3, 1, hour, 5, tzinfo=UTC),
                   {"item_id": item, "reader_id": f"R-{hour}", "door": 1, "session": f"s{hour}",
                    "due": "2025-03-31"})
    push(c.client, sim)


def _text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


# ----------------------------------------------------------------------------- login, roles


def test_login_sets_an_httponly_strict_cookie_and_logout_revokes_the_token(console: Console) -> None:
    browser = console.login("operator")
    cookie = next(h for h in browser.cookies.jar if h.name == "console_token")
    assert cookie.path == "/console"
    r = console.client.post("/console/login", data={"username": "operator-1", "password": PASSWORD},
                            follow_redirects=False)
    flags = r.headers["set-cookie"].lower()
    assert "httponly" in flags and "samesite=strict" in flags and "path=/console" in flags
    r = browser.get("/console")
    assert r.status_code == 200
    assert "operator-1" in r.text and 'lang="zh-CN"' in r.text
    # the same token the API takes
    assert console.client.get("/api/me", headers=bearer(cookie.value)).status_code == 200
    r = browser.post("/console/logout", follow_redirects=False)
    assert r.status_code == 303 and "console_token=" in r.headers["set-cookie"]
    assert console.client.get("/api/me", headers=bearer(cookie.value)).status_code == 401
    assert browser.get("/console", follow_redirects=False).status_code == 303


def test_a_wrong_password_is_a_page_in_words_and_no_cookie(console: Console) -> None:
    r = console.client.post("/console/login", data={"username": "operator-1", "password": "nope"},
                            headers=HTML)
    assert r.status_code == 401
    assert message("login.failed", "zh") in r.text
    assert "console_token" not in r.headers.get("set-cookie", "")
    r = console.client.post("/console/login", data={"username": "", "password": ""}, headers=HTML)
    assert r.status_code == 422 and message("login.missing", "zh") in r.text


def test_a_browser_without_a_session_is_sent_to_login_and_back(console: Console) -> None:
    r = console.client.get("/console/stats?from=2025-02-01", headers=HTML, follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["location"].startswith("/console/login?next=%2Fconsole%2Fstats")
    r = console.client.post("/console/login", follow_redirects=False, data={
        "username": "auditor-1", "password": PASSWORD, "next": "/console/stats?from=2025-02-01"})
    assert r.headers["location"] == "/console/stats?from=2025-02-01"
    r = console.client.post("/console/login", follow_redirects=False, data={
        "username": "auditor-1", "password": PASSWORD, "next": "https://evil.example/"})
    assert r.headers["location"] == "/console"  # never an open redirect


def test_scripts_get_the_apis_json_errors(console: Console) -> None:
    r = console.client.get("/console")
    assert r.status_code == 401 and r.json()["error"] == "missing_token"
    r = console.client.get("/console/exceptions", headers=bearer(console.token("technician")))
    assert r.status_code == 403 and "circulation.read" in r.json()["detail"]


def test_the_auditor_reads_but_is_offered_no_action_and_refused_one(console: Console) -> None:
    with write_tx(console.engine) as conn:
        x = conn.execute(insert(exceptions).values(
            kind="sequence_gap", evidence={"from_seq": 4}, actions=["acknowledge"], status="open",
            created_at=T0).returning(exceptions.c.id)).scalar_one()
    auditor = console.login("auditor")
    page = auditor.get("/console/exceptions")
    assert page.status_code == 200
    assert message("kind.sequence_gap", "zh") in page.text
    assert f'action="/console/exceptions/{x}/resolve"' not in page.text
    assert message("readonly", "zh") in page.text
    r = auditor.post(f"/console/exceptions/{x}/resolve", data={"action": "acknowledge"})
    assert r.status_code == 403
    assert "auditor" in r.text and "exceptions.resolve" in r.text
    with console.engine.connect() as conn:
        assert conn.execute(select(exceptions.c.status).where(exceptions.c.id == x)).scalar() == "open"
    # and the technician sees the fleet but not the circulation pages in its menu
    tech = console.login("technician").get("/console").text
    assert 'href="/console/exceptions"' not in tech and f'href="/console/cabinets/{CAB}"' in tech


def test_a_form_from_another_site_is_refused(console: Console) -> None:
    browser = console.login("operator")
    with write_tx(console.engine) as conn:
        x = conn.execute(insert(exceptions).values(
            kind="sequence_gap", evidence={}, actions=["acknowledge"], status="open",
            created_at=T0).returning(exceptions.c.id)).scalar_one()
    for headers in ({"origin": "http://evil.example"}, {"origin": "null"},
                    {"origin": "", "referer": ""}):
        r = browser.post(f"/console/exceptions/{x}/resolve", data={"action": "acknowledge"},
                         headers=headers)
        assert r.status_code == 403, headers
        assert message("error.origin", "zh") in r.text
    r = browser.post(f"/console/exceptions/{x}/resolve", data={"action": "acknowledge"},
                     headers={"origin": "", "referer": "http://console.test/console/exceptions"},
                     follow_redirects=False)
    assert r.status_code == 303


# ----------------------------------------------------------------------------- actions


def test_resolving_a_real_exception_from_its_page(console: Console) -> None:
    _push_loans(console, [9, 10])  # book-1 lent twice with no return between: double_loan
    browser = console.login("branch_staff")
    page = browser.get("/console/exceptions").text
    assert message("kind.double_loan", "zh") in page
    with console.engine.connect() as conn:
        x = conn.execute(select(exceptions).where(exceptions.c.kind == "double_loan")).one()
    assert 'value="keep_earlier_loan"' in page and "book-1" in page
    r = browser.post(f"/console/exceptions/{x.id}/resolve",
                     data={"action": "keep_earlier_loan", "note": "two readers, one book"},
                     follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == f"/console/exceptions?resolved={x.id}"
    done = browser.get(r.headers["location"]).text
    assert message("exceptions.resolved_ok", "zh", {"id": x.id}) in done
    with console.engine.connect() as conn:
        row = conn.execute(select(exceptions).where(exceptions.c.id == x.id)).one()
        trail = conn.execute(select(audit).where(audit.c.action == "exception.resolve")).one()
    assert (row.status, row.resolution) == ("resolved", "keep_earlier_loan")
    assert trail.actor == "branch_staff-1" and trail.detail["note"] == "two readers, one book"
    resolved = browser.get("/console/exceptions?status=resolved&lang=en").text
    assert message("exceptions.resolution", "en", {"action": "keep the earlier loan"}) in resolved
    again = browser.post(f"/console/exceptions/{x.id}/resolve", data={"action": "mark_missing"})
    assert again.status_code == 409
    offered = browser.post(f"/console/exceptions/{x.id + 999}/resolve", data={"action": "x"})
    assert offered.status_code == 404


def test_remote_commands_are_queued_listed_and_audited(console: Console) -> None:
    browser = console.login("technician")
    page = browser.get(f"/console/cabinets/{CAB}")
    assert page.status_code == 200 and message("cabinet.no_commands", "zh") in page.text
    r = browser.post(f"/console/cabinets/{CAB}/commands", data={"kind": "reinventory"},
                     follow_redirects=False)
    assert r.status_code == 303
    page = browser.get(r.headers["location"]).text
    assert message("command.reinventory", "zh") in page and message("status.queued", "zh") in page
    assert "command.queue" in page  # the audit trail on the same page
    r = browser.post(f"/console/cabinets/{CAB}/commands", data={"kind": "open_door", "door": "2",
                                                                "reason": "  "})
    assert r.status_code == 422 and message("cabinet.need_reason", "zh") in r.text
    r = browser.post(f"/console/cabinets/{CAB}/commands", data={"kind": "open_door", "door": "0",
                                                                "reason": "stuck"})
    assert r.status_code == 422
    r = browser.post(f"/console/cabinets/{CAB}/commands", data={"kind": "self_destruct"})
    assert r.status_code == 422
    r = browser.post("/console/cabinets/nope/commands", data={"kind": "reinventory"})
    assert r.status_code == 404
    r = browser.post(f"/console/cabinets/{CAB}/commands",
                     data={"kind": "open_door", "door": "2", "reason": "reader's card stuck"},
                     follow_redirects=False)
    assert r.status_code == 303
    from server.fleet_status import list_commands

    with console.engine.connect() as conn:
        listed = list_commands(conn, CAB)
    assert [(c["kind"], c["args"], c["actor"]) for c in listed] == [
        ("open_door", {"door": 2, "reason": "reader's card stuck"}, "technician-1"),
        ("reinventory", {}, "technician-1")]
    assert browser.get("/console/cabinets/unknown").status_code == 404


def test_receiving_a_transit_and_moving_a_recommendation(console: Console) -> None:
    with write_tx(console.engine) as conn:
        t = conn.execute(insert(transits).values(
            item_id="book-2", from_cabinet_id=CAB, to_branch_id=BRANCH, to_library="",
            status="in_transit", return_uuid="u-1", created_at=T0, picked_up_at=T0)
            .returning(transits.c.id)).scalar_one()
        conn.execute(insert(readers).values(id="R-1", display_name="读者", role="reader",
                                            tier="new", status="ok", registered_at=T0))
        rec = conn.execute(insert(recommendations).values(
            reader_id="R-1", isbn="9787020002207", title="红楼梦", status="need",
            history=[], created_at=T0, updated_at=T0).returning(recommendations.c.id)).scalar_one()
    browser = console.login("branch_staff")
    page = browser.get("/console/restock").text
    assert f'id="receive-{t}"' in page and "书 2" in page
    r = browser.post(f"/console/transits/{t}/receive", data={"branch_id": BRANCH},
                     follow_redirects=False)
    assert r.status_code == 303
    assert message("restock.received", "zh", {"id": t}) in browser.get(r.headers["location"]).text
    assert browser.post(f"/console/transits/{t}/receive", data={}).status_code == 409
    for step in ("review", "ordered", "shelved"):
        data = {"status": step, "note": step}
        if step == "shelved":
            data["item_id"] = "book-3"
        r = browser.post(f"/console/recommendations/{rec}/status", data=data, follow_redirects=False)
        assert r.status_code == 303, r.text
    page = browser.get("/console/recommendations?lang=en").text
    assert "shelved" in page and message("recs.final", "en") in page
    assert browser.post(f"/console/recommendations/{rec}/status",
                        data={"status": "review"}).status_code == 409
    with console.engine.connect() as conn:
        row = conn.execute(select(recommendations).where(recommendations.c.id == rec)).one()
        actions = conn.execute(select(audit.c.action)).scalars().all()
    assert row.status == "shelved" and row.item_id == "book-3"
    assert actions.count("recommendation.status") == 3 and "transit.receive" in actions


def test_expiring_holds_from_the_page_is_audited(console: Console) -> None:
    browser = console.login("operator")
    r = browser.post("/console/holds/expire", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/console/holds?expired=0"
    with console.engine.connect() as conn:
        assert conn.execute(select(audit).where(audit.c.action == "holds.expire")).first()


# ----------------------------------------------------------------------------- statistics


def test_the_heat_map_and_the_export_carry_the_pushed_loans(console: Console) -> None:
    _push_loans(console, [1, 1, 2], item="book-1")
    _push_loans(console, [1], item="book-2")
    browser = console.login("auditor")
    period = {"from": "2025-03-01", "to": "2025-03-02"}
    page = browser.get("/console/stats", params=period)
    assert page.status_code == 200
    assert page.text.count('<svg class="chart') >= 6
    assert '<svg class="chart heatmap" role="img" aria-labelledby=' in page.text
    # UTC 01:05 is 09:05 in Asia/Shanghai: three loans in that hour's cell, one at 10
    assert "2025-03-01 9: 3</title>" in page.text and "2025-03-01 10: 1</title>" in page.text
    r = browser.get("/console/export/hourly.csv", params=period)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert "attachment" in r.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert {(row["hour_of_day"], row["loans"]) for row in rows} == {("9", "3"), ("10", "1")}
    api = console.client.get("/api/reports/stats", headers=bearer(console.token("auditor")),
                             params={**period, "format": "csv", "table": "hourly"})
    assert api.text == r.text  # the console's export is the API's CSV
    annual = browser.get("/console/report/annual", params={"year": "2025"})
    assert annual.status_code == 200 and "@media print" not in annual.text
    assert message("annual.title", "zh", {"year": 2025}) in annual.text
    assert "<dd>4</dd>" in annual.text  # four loans in the key figures


BAD_PARAMETERS = [
    ("/console/stats?from=2025-13-01", 422), ("/console/stats?from=2025-03-02&to=2025-03-01", 422),
    ("/console/export/nope.csv", 404), ("/console/export/hourly.csv?from=yesterday", 422),
    ("/console/report/annual?year=12", 422), ("/console/report/annual?year=abc", 422),
    ("/console/exceptions?status=weird", 200), ("/console/holds?status=%00", 200)]


def test_bad_parameters_are_pages_in_words(console: Console) -> None:
    browser = console.login("operator")
    for path, status in BAD_PARAMETERS:
        r = browser.get(path)
        assert r.status_code == status, (path, r.text[:300])
        assert r.headers["content-type"].startswith("text/html"), path
        if status >= 400:
            assert message("error.title", "zh") in r.text, path


def test_english_is_kept_in_a_cookie_and_high_contrast_too(console: Console) -> None:
    browser = console.login("operator")
    assert 'lang="en"' in browser.get("/console?lang=en&contrast=high").text
    page = browser.get("/console/holds").text
    assert 'lang="en"' in page and 'class="contrast-high"' in page
    assert message("holds.title", "en") in page
    assert 'lang="zh-CN"' in browser.get("/console?lang=zh").text


# ----------------------------------------------------------------------------- bad bodies


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.binary(max_size=300) | st.text(max_size=200).map(lambda s: s.encode("utf-8")))
def test_no_form_body_makes_a_500(console: Console, body: bytes) -> None:
    headers = {**bearer(console.token("operator")),
               "content-type": "application/x-www-form-urlencoded"}
    for path in ("/console/exceptions/1/resolve", f"/console/cabinets/{CAB}/commands",
                 "/console/recommendations/1/status", "/console/login"):
        r = console.client.post(path, content=body, headers=headers, follow_redirects=False)
        assert r.status_code < 500, (path, body, r.text[:200])


def test_a_field_given_twice_is_refused(console: Console) -> None:
    r = console.client.post(f"/console/cabinets/{CAB}/commands", content=b"kind=reinventory&kind=x",
                            headers={**bearer(console.token("operator")),
                                     "content-type": "application/x-www-form-urlencoded"})
    assert r.status_code == 400 and "kind" in _text(r.text)


# ----------------------------------------------------------------------------- pieces


def test_every_sentence_has_both_languages_and_the_same_placeholders() -> None:
    for key, (zh, en) in MESSAGES.items():
        assert zh.strip() and en.strip(), key
        assert set(re.findall(r"{(\w+)}", zh)) == set(re.findall(r"{(\w+)}", en)), key


@given(st.floats(min_value=0, max_value=1e6), st.floats(min_value=0, max_value=1e6))
def test_shade_is_zero_only_for_nothing_and_grows_with_the_value(a: float, b: float) -> None:
    top = max(a, b)
    assert shade(0, top) == 0
    if a > 0 and top > 0:
        assert 1 <= shade(a, top) <= 5
    if 0 < a <= b:
        assert shade(a, top) <= shade(b, top)


def test_charts_carry_a_title_a_description_and_every_value() -> None:
    svg = heatmap("t", "d", ["mon", "tue"], ["0", "1"], [[0, 2], [4, 0]])
    assert svg.startswith('<svg class="chart heatmap" role="img"')
    assert "<title id=" in svg and "<desc id=" in svg
    assert svg.count("<rect") == 4 and "tue 0: 4</title>" in svg and 'class="heat-5"' in svg
    drawn = bars("t", "d", [("a", 0.5, "50%"), ("b", None, "—")], top=1.0)
    widths = re.findall(r'class="bar"[^>]*width="([\d.]+)"', drawn)
    assert [float(w) for w in widths] == [260.0, 0.0]

