"""The technician's diagnostics pages on a real kiosk (``lendbox kiosk run``) on the simulator,
in Debian's Chromium.

What a technician notices: the pages want the technician password (a wrong one is refused
plainly); the devices page shows each board's firmware and counters; a fault injected into
the simulated cabinet (a lock's wiring cut) is named by the self-test's verdict; a
test-unlock shows the door sensor following; the antenna inventory lists every tag with its
RSSI; the diagnostics bundle downloads without a secret in it. Every page passes axe-core in
Chinese, English and high contrast.
"""

from __future__ import annotations

import io
import json
import re
import time
import zipfile
from pathlib import Path
from typing import Any

import httpx

from kiosk.messages import message

from . import technician_kit
from .technician_kit import PASSWORD, TechCabinet, assert_axe_clean, login, wait_idle

tech_cabinet = technician_kit.tech_cabinet  # the module's fixture


def test_pages_want_the_technician_password(page: Any, tech_cabinet: TechCabinet,
                                            shots: Path) -> None:
    cab = tech_cabinet
    with httpx.Client(base_url=cab.url, timeout=30) as http:
        for path in ("/tech", "/tech/doors", "/tech/inventory?door=1", "/tech/selftest",
                     "/tech/bundle.zip", "/tech/selftest/status.json"):
            r = http.get(path)
            assert r.status_code == 303 and r.headers["location"].startswith("/tech/login"), path
        assert http.post("/tech/doors/1/unlock").status_code == 303
        http.cookies.set("tech_session", "9999999999.x.y")
        forged = http.get("/tech")
        assert forged.status_code == 303
    page.goto(f"{cab.url}/tech")
    assert "/tech/login" in page.url
    assert page.inner_text("h1") == message("tech.login_title", "zh")
    page.screenshot(path=str(shots / "tech-login-zh-1080x1920.png"))
    assert_axe_clean(page)
    page.fill("#password", "not the password")
    with page.expect_response(lambda r: r.url.endswith("/tech/login")) as wrong:
        page.click("#login")
    assert wrong.value.status == 401
    assert page.inner_text("#login-error") == message("tech.wrong_password", "zh")
    assert_axe_clean(page)
    page.fill("#password", PASSWORD)
    page.click("#login")
    page.wait_for_url("**/tech")
    cookie = next(c for c in page.context.cookies() if c["name"] == "tech_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert 800 < cookie["expires"] - time.time() <= 900  # about 15 minutes
    page.click("#logout")
    page.wait_for_url("**/tech/login")
    page.goto(f"{cab.url}/tech")
    assert "/tech/login" in page.url


def test_devices_page_shows_firmware_and_counters(page: Any, tech_cabinet: TechCabinet,
                                                  shots: Path) -> None:
    cab = tech_cabinet
    login(page, cab)
    info = cab.sim.hardware_config()
    row = page.locator("#devices tbody tr").first
    text = row.inner_text()
    assert "1" in text and info["buses"][0]["name"] in text
    assert re.fullmatch(r"\d+\.\d+(\.\d+)?", page.locator(".firmware").first.inner_text())
    assert "LB04T0000001" in text  # the simulated board's serial (small.toml)
    assert "正常帧" in text and "校验错误" in text  # frames ok, CRC errors
    if message("tech.avail_ok", "zh") in text:
        assert page.inner_text("#device-findings") == message("tech.all_passed", "zh")
    else:  # a loaded test machine can make the link re-send: the board shows "degraded"
        assert message("tech.avail_degraded", "zh") in text
    page.screenshot(path=str(shots / "tech-devices-zh-1080x1920.png"), full_page=True)
    page.set_viewport_size({"width": 1920, "height": 1080})
    page.goto(f"{cab.url}/tech?lang=en")
    assert "frames ok" in page.locator("#devices tbody tr").first.inner_text()
    page.screenshot(path=str(shots / "tech-devices-en-1920x1080.png"), full_page=True)


def test_the_self_test_names_an_injected_fault(page: Any, tech_cabinet: TechCabinet,
                                               shots: Path) -> None:
    cab = tech_cabinet
    login(page, cab, "/tech/selftest")
    cab.sim.break_lock_wiring(2)
    try:
        page.click("#run-selftest")
        page.wait_for_selector("#verdict", timeout=30_000)
        assert page.get_attribute("#verdict", "data-passed") == "0"
        assert page.inner_text("#h-verdict") == message("tech.verdict_fail", "zh")
        faulty = page.locator('#selftest-findings li.fault[data-subject="door 2"]')
        assert faulty.count() == 1
        # the technician reads the fault in Chinese: the part, what is wrong, what to check
        assert faulty.get_attribute("data-code") == "lock_coil"
        text = faulty.inner_text()
        assert message("tech.subject.door", "zh", {"n": 2}) in text
        assert message("tech.finding.lock_coil", "zh",
                       {"status": message("tech.part_status.open_circuit", "zh"),
                        "lock": 2}) in text
        assert "wiring" not in text
        subjects = page.eval_on_selector_all("#selftest-findings li.fault",
                                             "els => els.map(e => e.dataset.subject)")
        # no other door or antenna is blamed (a loaded test machine may add a slow-bus note)
        assert not [s for s in subjects if s != "door 2" and ("door" in s or "antenna" in s)]
        page.screenshot(path=str(shots / "tech-selftest-fault-zh-1080x1920.png"), full_page=True)
        assert_axe_clean(page)
        page.goto(f"{cab.url}/tech/selftest?lang=en")  # the same report, in English
        faulty = page.locator('#selftest-findings li.fault[data-subject="door 2"]')
        assert "door 2" in faulty.inner_text() and "lock 2 wiring" in faulty.inner_text()
        assert_axe_clean(page)
    finally:
        cab.sim.break_lock_wiring(2, False)


def test_a_test_unlock_shows_the_sensor_follow(page: Any, tech_cabinet: TechCabinet,
                                               shots: Path) -> None:
    cab = tech_cabinet
    wait_idle(cab)
    login(page, cab, "/tech/doors")
    page.click("#unlock-1")
    page.wait_for_selector("#unlock-result")
    assert page.get_attribute("#unlock-result", "data-opened") == "1"
    assert page.inner_text("#sensor") == message("tech.sensor_opened", "zh")
    assert cab.sim.model.door(1).sensed_open  # the simulated door really is open
    page.screenshot(path=str(shots / "tech-unlock-zh-1080x1920.png"), full_page=True)
    assert_axe_clean(page)
    # while the door is open and being counted, another test-unlock is refused plainly
    with httpx.Client(base_url=cab.url, timeout=30,
                      cookies={c["name"]: c["value"] for c in page.context.cookies()}) as http:
        refused = http.post("/tech/doors/2/unlock")
        assert refused.status_code == 409
        assert message("tech.busy", "zh") in refused.text
        cab.sim.close_door(1)
        wait_idle(cab)
        page.goto(f"{cab.url}/tech")  # the kiosk recorded the opening as an alarm
        alarm = page.locator('#alarms li[data-reason="door_opened_without_session"]').first
        assert message("tech.door_n", "zh", {"door": 1}) in alarm.inner_text()


def test_a_test_unlock_is_refused_while_a_reader_returns_books(
        page: Any, tech_cabinet: TechCabinet) -> None:
    cab = tech_cabinet
    wait_idle(cab)
    login(page, cab, "/tech/doors")
    state = cab.client.start_return()
    assert state["session"] is not None
    try:
        with page.expect_response(lambda r: "/unlock" in r.url) as answer:
            page.click("#unlock-3")
        assert answer.value.status == 409
        assert page.inner_text("#refused") == message("tech.busy", "zh")
        assert_axe_clean(page)
    finally:
        state = cab.client.state()
        for door in state["doors"]:
            cab.client.wait(lambda s, d=door: s["doors"].get(d, {}).get("phase") == "open",
                            timeout=10, what=f"door {door} open")
            cab.sim.close_door(int(door))
        wait_idle(cab)


def test_the_antenna_inventory_lists_tags_with_rssi(page: Any, tech_cabinet: TechCabinet,
                                                    shots: Path) -> None:
    cab = tech_cabinet
    wait_idle(cab)
    login(page, cab, "/tech/inventory")
    page.select_option("#door", "2")
    page.click("#read")
    page.wait_for_selector("#inventory-result")
    expected = {it.item_id for it in cab.sim.door_items(2)}
    rows = page.locator("#tags tbody tr")
    assert rows.count() == len(expected) > 0
    items = {rows.nth(i).locator("td").nth(1).inner_text() for i in range(rows.count())}
    assert items == expected
    for rssi in page.locator("#tags .rssi").all_inner_texts():
        assert -100 <= int(rssi) < 0
    page.screenshot(path=str(shots / "tech-inventory-zh-1080x1920.png"), full_page=True)
    page.click("#read")  # refresh: read again
    page.wait_for_selector("#inventory-result")
    assert page.locator("#tags tbody tr").count() == len(expected)


def test_the_bundle_downloads_without_secrets(page: Any, tech_cabinet: TechCabinet) -> None:
    cab = tech_cabinet
    login(page, cab)
    with page.expect_download() as dl:
        page.click("#bundle")
    path = dl.value.path()
    assert dl.value.suggested_filename.startswith("lendbox-diag-small-0001-")
    raw = Path(path).read_bytes()
    found = re.search(r'password_hash = "([^"]+)"', cab.config.read_text())
    assert found is not None
    stored = found.group(1)
    salt_and_hash = stored.split("$", 2)[2]
    with zipfile.ZipFile(io.BytesIO(raw)) as z:
        names = set(z.namelist())
        assert {"summary.json", "config.json", "devices.json", "selftest.json",
                "ledger-integrity.json", "events.json", "logs/kiosk.log"} <= names
        everything = b"".join(z.read(n) for n in names).decode("utf-8")
        config = json.loads(z.read("config.json"))
        summary = json.loads(z.read("summary.json"))
        integrity = json.loads(z.read("ledger-integrity.json"))
    assert salt_and_hash.split("$")[0] not in everything
    assert salt_and_hash.split("$")[1] not in everything
    assert config["technician"]["password_hash"] == "[redacted]"
    assert config["cabinet"]["id"] == "small-0001"
    assert integrity["ok"] is True and integrity["problems"] == []
    # the board answers; on a loaded test machine its link may show re-sends ("degraded")
    assert summary["devices"]["board 1"] in ("ok", "degraded")
    assert summary["verdict"]["checked"] == ["devices", "self-test"]
    assert not [f for f in summary["verdict"]["faults"] if "door" in f or "antenna" in f]
    assert summary["counters"]["board 1"]["counters"]["frames_ok"] > 0


def test_the_self_test_with_unlocks_names_a_jammed_lock(page: Any,
                                                        tech_cabinet: TechCabinet) -> None:
    """The deeper self-test pulses every lock: a jammed bolt (it cannot be seen without a
    pulse) is named by its door, and the doors that did open are the technician's to close."""
    cab = tech_cabinet
    wait_idle(cab)
    doors = sorted(cab.sim.model.doors)
    jammed = doors[-1]
    login(page, cab, "/tech/selftest")
    cab.sim.jam_lock(jammed)
    try:
        page.click("#run-selftest-unlock")
        page.wait_for_selector("#verdict", timeout=60_000)
        assert page.get_attribute("#verdict", "data-passed") == "0"
        faulty = page.locator(f'#selftest-findings li.fault[data-subject="door {jammed}"]')
        assert faulty.count() == 1
        assert faulty.get_attribute("data-code") == "lock_jammed"
        assert message("tech.finding.lock_jammed", "zh") in faulty.inner_text()
        assert not cab.sim.model.door(jammed).sensed_open  # the jammed door stayed shut
    finally:
        cab.sim.jam_lock(jammed, False)
        for door in doors:
            if cab.sim.model.door(door).sensed_open:
                cab.sim.close_door(door)
        wait_idle(cab)
