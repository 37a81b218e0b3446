"""A real browser (Debian's Chromium, driven by Playwright) against a real kiosk process on
the simulator. ``./scripts/test`` installs ``chromium`` and ``fonts-noto-cjk``; Playwright's
own browser download is not used (and not available offline).

Screenshots go to a session temporary folder (printed at the end of the run); set
``LENDBOX_SCREENSHOTS=DIR`` to also copy them into ``DIR`` (how docs/screenshots/ was made).
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from lendbox.kiosk_kit import KioskClient, KioskProcess, write_kiosk_config
from lendbox.network_story import NetworkStory
from simulator import Simulator

CHROMIUM = Path("/usr/bin/chromium")
SMALL = Path(__file__).resolve().parents[2] / "simulator" / "cabinets" / "small.toml"
AXE = Path(__file__).resolve().parent / "vendor" / "axe.min.js"


def cjk_fonts() -> list[str]:
    """Font families fontconfig offers for Chinese (empty: Chinese would render as boxes)."""
    try:
        out = subprocess.run(["fc-list", ":lang=zh", "family"], capture_output=True, text=True,
                             timeout=30, check=False).stdout
    except FileNotFoundError:
        return []
    return [line for line in out.splitlines() if line.strip()]


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.skip("no /usr/bin/chromium: run ./scripts/test (it installs Debian's chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install lendbox[test]")
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(CHROMIUM))
        try:
            yield b
        finally:
            b.close()


@dataclass
class Cabinet:
    sim: Any
    kiosk: KioskProcess
    client: KioskClient
    url: str


@pytest.fixture(scope="session")
def cabinet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cabinet]:
    """The small simulated cabinet run by a real ``lendbox kiosk run`` (stand-alone)."""
    tmp = tmp_path_factory.mktemp("screens-kiosk")
    sim = Simulator.from_file(SMALL, control_port=None).start()
    try:
        cfg = write_kiosk_config(tmp / "kiosk.toml", sim, data_dir=tmp / "data")
        kiosk = KioskProcess(cfg, log=tmp / "kiosk.log").start()
    except BaseException:
        sim.stop()
        raise
    client = KioskClient(kiosk.url)
    try:
        yield Cabinet(sim, kiosk, client, kiosk.url.rstrip("/"))
    finally:
        client.close()
        kiosk.stop()
        sim.stop()


@pytest.fixture(scope="session")
def network(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NetworkStory]:
    """The real thing, once per test process: ``lendbox server run`` on SQLite, ``lendbox
    ils-sim``, two branches and two simulated cabinets (A ``sz-city-0001``, B
    ``sz-county-0001``, B behind a cable ``network.relay`` can cut) each run by ``lendbox kiosk
    run``, registered, catalogued and counted (``NetworkStory.build_network``). ``network.api``
    is an operator's httpx client; ``network.cabinets[i].kiosk.url`` the screens."""
    story = NetworkStory(tmp_path_factory.mktemp("screens-network"), io.StringIO())
    try:
        story.start()
        story.build_network()
        yield story
    finally:
        story.stop()


@pytest.fixture(scope="session")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    folder = tmp_path_factory.mktemp("screenshots")
    yield folder
    target = os.environ.get("LENDBOX_SCREENSHOTS")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        for png in folder.glob("*.png"):
            shutil.copy(png, Path(target) / png.name)
    print(f"\nscreenshots: {folder}")


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh context (no cookies) with the cabinet's portrait screen."""
    ctx = browser.new_context(viewport={"width": 1080, "height": 1920}, locale="zh-CN")
    try:
        yield ctx.new_page()
    finally:
        ctx.close()


def axe_violations(page: Any, *, enhanced_contrast: bool = False) -> list[dict[str, Any]]:
    """axe-core (vendored, see vendor/README.md) on the page: serious or critical violations.

    ``enhanced_contrast`` also runs WCAG AAA ``color-contrast-enhanced`` (7:1) and reports
    any of its violations whatever their impact."""
    page.add_script_tag(path=str(AXE))
    options = {"rules": {"color-contrast-enhanced": {"enabled": enhanced_contrast}}}
    result = page.evaluate("(opts) => axe.run(document, opts)", options)
    return [v for v in result["violations"]
            if v["impact"] in ("serious", "critical")
            or (enhanced_contrast and v["id"] == "color-contrast-enhanced")]


def describe(violations: list[dict[str, Any]]) -> str:
    lines = []
    for v in violations:
        lines.append(f"{v['id']} ({v['impact']}): {v['help']}")
        lines.extend(f"    {n['target']}: {n.get('failureSummary', '')}" for n in v["nodes"][:5])
    return "\n".join(lines)
