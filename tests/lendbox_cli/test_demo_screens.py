"""`lendbox demo --story`: a day of traffic on the real network, then the URLs of the screens,
which answer while the demo waits; SIGTERM stops it and every process it started.

One demo run serves every assertion (it takes ~20 s on this machine)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import httpx

from lendbox.day_story import JAMMED_DOOR, STEPS

ROOT = Path(__file__).resolve().parents[2]
PAGES = ("reader touchscreen, cabinet A", "reader touchscreen, cabinet B",
         "technician pages, cabinet A", "central console")


def _descendants(pid: int) -> set[int]:
    """Every process below ``pid`` (children run in their own sessions: not one group)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {p for p, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _log_in(login_url: str, form: dict[str, str], landing: str) -> str:
    """Post the login form as a browser does (same-origin), follow to ``landing``; its
    HTML."""
    origin = login_url.split("/", 3)
    with httpx.Client(timeout=20, headers={"Origin": "/".join(origin[:3]),
                                           "Accept": "text/html"}) as browser:
        r = browser.post(login_url, data=form, follow_redirects=True)
        assert r.status_code == 200, (login_url, r.status_code, r.text[:300])
        assert r.url.path == landing, (login_url, str(r.url), r.text[:300])
        return r.text


def test_demo_story_then_the_screens_answer_until_sigterm(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    stderr = (tmp_path / "stderr.txt").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "lendbox.cli", "demo", "--story"], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=stderr, text=True, env=env)
    lines: list[str] = []
    waiting = threading.Event()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line.rstrip("\n"))
            if line.startswith("Press Ctrl-C to stop."):
                waiting.set()
        waiting.set()  # the demo ended without waiting: fail now, not at the timeout

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    children: set[int] = set()
    try:
        waiting.wait(150)
        assert proc.poll() is None, "\n".join(lines[-30:]) + (tmp_path / "stderr.txt").read_text()
        assert lines and lines[-1].startswith("Press Ctrl-C"), "\n".join(lines[-30:])
        out = "\n".join(lines)
        children = _descendants(proc.pid)
        # the server, the ILS and two kiosks, each its own process
        assert len(children) >= 4, children
        urls = {name: m.group(1) for name in PAGES
                if (m := re.search(rf"^   {re.escape(name)}:\s+(http://127\.0\.0\.1:\d+/\S*)$",
                                   out, re.M))}
        assert set(urls) == set(PAGES), out[-1500:]
        assert urls["technician pages, cabinet A"].endswith("/tech/login")
        assert urls["central console"].endswith("/console/login")
        assert urls["technician pages, cabinet A"].startswith(
            urls["reader touchscreen, cabinet A"].rstrip("/"))
        for name, url in urls.items():
            r = httpx.get(url, timeout=10)
            assert r.status_code == 200, (name, url, r.status_code, r.text[:300])
            assert "<html" in r.text.lower(), (name, r.text[:300])
        # the printed technician password opens cabinet A's technician pages
        tech = re.search(r"^\s+password: (.+)$", out, re.M)
        assert tech is not None, out[-1500:]
        _log_in(urls["technician pages, cabinet A"], {"password": tech.group(1)}, "/tech")
        # the printed staff account opens the console, which shows both cabinets
        staff = re.search(r"^\s+user: (\S+)  password: (.+)$", out, re.M)
        assert staff is not None, out[-1500:]
        overview = _log_in(urls["central console"], {"username": staff.group(1),
                                                     "password": staff.group(2)}, "/console")
        assert "sz-city-0001" in overview and "sz-county-0001" in overview
        assert "unlock_failed:jammed" in overview  # the day's jammed lock, an open alarm
        # the two cabinets are two different kiosks
        assert urls["reader touchscreen, cabinet A"] != urls["reader touchscreen, cabinet B"]
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            rc = proc.wait(60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            stderr.close()
        reader.join(5)
    assert rc == 0, (tmp_path / "stderr.txt").read_text()[-2000:]
    assert not [p for p in children if _alive(p)], "processes left behind"
    out = "\n".join(lines)
    assert "Traceback" not in (tmp_path / "stderr.txt").read_text()

    # every step of the day is played and says what happened
    assert "the story stopped" not in out, out
    for n, step in enumerate(STEPS, 1):
        assert f"== day {n}. {step}:" in out, step
    day = out.split("== day 1.", 1)[1]
    assert len(re.findall(r"^   \S+ at cabinet [AB], door \d: \d+《", day, re.M)) == 3
    assert re.search(r"at the county cabinet B \(door \d\): transit #\d+ to sz-city, "
                     r"waiting_pickup", day)
    assert re.search(r"hold #\d+ ready", day) and re.search(r"hold #\d+ collected, the book "
                                                            r"loaned", day)
    assert "cabinet B online: False" in day and "B's outbox reconciles" in day
    assert f"屏幕 screen │ {JAMMED_DOOR}号门未能打开" in day
    assert len(re.findall(r"gives cabinet [AB] \d/5 on the cabinet's screen", day)) == 2
    assert "gives cabinet A 5/5 on her phone" in day
    # the server counts them: 林二's 2 at A is not satisfied, 黄三's 5 is; 吴四's 4 at B is
    assert "满意率 at sz-city-0001: 1 of 2 rating(s)" in day
    assert "满意率 at sz-county-0001: 1 of 1 rating(s)" in day
    assert re.search(r"荐购 #\d+ need", day) and "a librarian takes it up: review" in day
    assert re.search(r"exception #\d+: loan_to_blocked_reader", day)
    # the temporary folder (server database, kiosk ledgers) is gone
    db = re.search(r"SQLite (\S+)/server\.db", out)
    assert db is not None and not Path(db.group(1)).exists()


def test_screens_need_the_network() -> None:
    proc = subprocess.run([sys.executable, "-m", "lendbox.cli", "demo", "--story",
                           "--no-network"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "need the network" in proc.stderr and "Traceback" not in proc.stderr
