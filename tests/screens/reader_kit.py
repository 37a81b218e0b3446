"""Helpers of the reader-journey browser tests (H1): a kiosk of our own with a short policy,
a staff card and a small catalogue seeded in its ledger, and waiting/axe helpers."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kiosk.ledger import Ledger
from lendbox.kiosk_kit import KioskClient, KioskProcess, write_kiosk_config
from simulator import Simulator
from syncproto import ItemInfo
from syncproto.grants import card_hash

from .conftest import SMALL, axe_violations, describe

STAFF_CARD = "20260001"
#: 中图法 classes given to the seeded books, in turn
CLASSES = ("I", "K", "TP", "O")


@dataclass
class OwnKiosk:
    sim: Any
    kiosk: KioskProcess
    client: KioskClient
    url: str


@contextmanager
def own_kiosk(tmp: Path, policy: dict[str, Any]) -> Iterator[OwnKiosk]:
    """The small simulated cabinet, stand-alone, with ``policy``; its ledger knows the
    titles, authors and classes of its books and one staff card (``STAFF_CARD``), so a
    session can start without a server."""
    sim = Simulator.from_file(SMALL, control_port=None).start()
    kiosk = None
    client = None
    try:
        cfg = write_kiosk_config(tmp / "kiosk.toml", sim, data_dir=tmp / "data", policy=policy)
        (tmp / "data").mkdir(parents=True, exist_ok=True)
        ledger = Ledger(tmp / "data" / "ledger.db", str(sim.config.id))
        try:
            infos = [ItemInfo(item_id=str(it.item_id), title=f"书名{i:02d}", author=f"作者{i % 7}",
                              category=CLASSES[i % len(CLASSES)])
                     for i, it in enumerate(sorted(sim.items.values(), key=lambda x: x.item_id))]
            ledger.put_items(infos, 1)
            ledger.put_reader(card_hash(STAFF_CARD), "staff-7", "staff", 0)
        finally:
            ledger.close()
        kiosk = KioskProcess(cfg, log=tmp / "kiosk.log").start()
        client = KioskClient(kiosk.url)
        yield OwnKiosk(sim, kiosk, client, kiosk.url.rstrip("/"))
    finally:
        if client is not None:
            client.close()
        if kiosk is not None:
            kiosk.stop()
        sim.stop()


def assert_axe_clean(page: Any, **kwargs: Any) -> None:
    found = axe_violations(page, **kwargs)
    assert not found, f"axe-core on {page.url}:\n" + describe(found)


def until(check: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def door_is_open(sim: Any, door: int) -> bool:
    with sim.lock:
        return bool(sim.model.door(door).open)


def big_targets(page: Any, minimum: int = 64) -> list[Any]:
    """Visible links/buttons/inputs of <main> smaller than ``minimum`` px (none expected)."""
    small = []
    for el in page.query_selector_all("main a, main button, main input:not([type=hidden])"):
        box = el.bounding_box()
        if box is None:  # hidden
            continue
        if box["height"] < minimum or box["width"] < minimum:
            small.append((el.inner_text() or el.get_attribute("id"), box))
    return small


def decode_qr(png: bytes) -> list[str]:
    """The texts of every QR code in a screenshot (zxing-cpp)."""
    import io

    import zxingcpp
    from PIL import Image

    image = Image.open(io.BytesIO(png)).convert("L")
    return [r.text for r in zxingcpp.read_barcodes(image)]
