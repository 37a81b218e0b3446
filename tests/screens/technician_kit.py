"""The technician pages' test cabinet (H3): the small simulator with a technician password,
run by a real ``lendbox kiosk run``; shared by tests/screens/test_technician*.py."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from kiosk.tech_auth import set_technician_hash
from lendbox.kiosk_kit import KioskClient, KioskProcess, write_kiosk_config
from simulator import Simulator

from .conftest import SMALL, axe_violations, describe

PASSWORD = "correct horse battery staple"


@dataclass
class TechCabinet:
    sim: Any
    kiosk: KioskProcess
    client: KioskClient
    url: str
    config: Path


@pytest.fixture(scope="module")
def tech_cabinet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TechCabinet]:
    """The small simulated cabinet with a technician password, run by a real kiosk."""
    tmp = tmp_path_factory.mktemp("tech-kiosk")
    sim = Simulator.from_file(SMALL, control_port=None).start()
    kiosk: KioskProcess | None = None
    try:
        cfg = write_kiosk_config(tmp / "kiosk.toml", sim, data_dir=tmp / "data")
        # what `lendbox kiosk technician-password` does (tests/kiosk/test_tech_auth.py runs it)
        set_technician_hash(cfg, PASSWORD)
        kiosk = KioskProcess(cfg, log=tmp / "kiosk.log").start()
        client = KioskClient(kiosk.url)
        try:
            yield TechCabinet(sim, kiosk, client, kiosk.url.rstrip("/"), cfg)
        finally:
            client.close()
    finally:
        if kiosk is not None:
            kiosk.stop()
        sim.stop()


def login(page: Any, cab: TechCabinet, path: str = "/tech") -> None:
    page.goto(f"{cab.url}{path}")
    page.fill("#password", PASSWORD)
    page.click("#login")
    page.wait_for_url(f"**{path}")


def assert_axe_clean(page: Any, **kwargs: Any) -> None:
    found = axe_violations(page, **kwargs)
    assert not found, f"axe-core on {page.url}:\n" + describe(found)


def wait_idle(cab: TechCabinet) -> None:
    cab.client.wait(lambda s: s["session"] is None and not s["doors"], timeout=15,
                    what="the kiosk idle")
