"""Crash trials: kill -9 the kiosk at random moments of random sessions, restart it, and
compare its ledger with the simulator's ground truth.

Why: "write ahead, then act" and "the door's contents are the truth" are promises about
every instant of a session; the only honest check is to crash at random instants, many
times, with the real process, the real SQLite file and the real bytes on the bus. A trial:

1. a kiosk process runs on a simulated cabinet (offline: its server is unreachable, so it
   lends on signed QR grants, as a cabinet whose network is down);
2. a person starts a borrow (QR) or a return session and takes / puts books;
3. at a random instant the kiosk is killed with SIGKILL (sometimes the lock board loses
   power at the same moment); the person, unaware, finishes what they were doing and
   usually closes the door (sometimes not);
4. the kiosk restarts and recovers; a door still open is then closed;
5. the ledger is checked: every book physically in a door is "in" for the ledger (no
   *phantom* loan) and every book that left has a loan or an alarm (none *lost*), and each
   door's recorded contents equal its physical contents.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

__all__ = ["CrashTrials", "TrialOutcome", "ground_truth_problems"]

SMALL = Path(__file__).resolve().parent.parent / "simulator" / "cabinets" / "small.toml"


@dataclass(slots=True)
class TrialOutcome:
    trial: int
    kind: str
    crash: str
    lost: list[str] = field(default_factory=list)
    phantom: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    recovered: int = 0

    @property
    def ok(self) -> bool:
        return not (self.lost or self.phantom or self.problems)


def ground_truth_problems(sim: Any, ledger: Any) -> tuple[list[str], list[str], list[str]]:
    """(lost, phantom, other problems) of a ledger against the simulator's cabinet."""
    with sim.lock:
        physical = {n: sorted(i.item_id for i in sim.door_items(n))
                    for n in (d.number for d in sim.config.doors)}
        outside = sorted(i.item_id for i in sim.items.values() if i.door is None)
    recorded = ledger.all_contents()
    in_ledger = {c.item_id for door in recorded.values() for c in door.values()}
    last: dict[str, str] = {}  # item → kind of its last circulation event
    for ev in ledger.events_after(0, limit=10**9):
        item = ev.payload.get("item_id")
        if ev.kind in ("loan", "return", "alarm") and item:
            last[item] = ev.kind
        elif ev.kind == "restock":
            for item in ev.payload.get("manifest", {}).get("removed", []):
                last[item] = "restock-removed"
            for item in ev.payload.get("manifest", {}).get("loaded", []):
                last[item] = "restock-loaded"
    inside = {i for items in physical.values() for i in items}
    # gone: its last event must say how (a loan, an alarm, a staff removal)
    lost = [i for i in outside
            if i in in_ledger or last.get(i) not in ("loan", "alarm", "restock-removed")]
    # in a door: no loan may stand as its last word
    phantom = [i for i in sorted(inside) if last.get(i) == "loan"]
    problems = list(ledger.integrity_check())
    for door, items in physical.items():
        ids = sorted(c.item_id or c.uid for c in recorded.get(door, {}).values())
        if ids != items:
            problems.append(f"door {door}: ledger {ids} ≠ physical {items}")
    return lost, phantom, problems


class CrashTrials:
    """A simulator, keys and a kiosk config in ``workdir``; :meth:`run` plays trials."""

    def __init__(self, workdir: Path, *, seed: int = 0, power_cuts: bool = True,
                 cabinet: Path = SMALL, kill_window_s: float = 1.6) -> None:
        self.workdir = workdir
        self.rng = random.Random(seed)
        self.power_cuts = power_cuts
        self.cabinet = cabinet
        self.kill_window_s = kill_window_s
        self.sim: Any = None
        self.hands: list[str] = []
        self._keys: tuple[str, str] = ("", "")
        self.config: Path | None = None

    def __enter__(self) -> CrashTrials:
        import socket

        from simulator import Simulator
        from syncproto.grants import generate_keypair

        from .kiosk_kit import write_kiosk_config

        self.sim = Simulator.from_file(self.cabinet, control_port=None).start()
        self._keys = generate_keypair()
        with socket.socket() as s:  # a port nobody listens on: the network is down
            s.bind(("127.0.0.1", 0))
            dead = s.getsockname()[1]
        self.config = write_kiosk_config(
            self.workdir / "kiosk.toml", self.sim, data_dir=self.workdir / "data",
            server_url=f"http://127.0.0.1:{dead}", trusted_keys={"k1": self._keys[1]},
            policy={"max_loans": 100, "offline_allowance": 100,
                    "offline_exposure_cap": 100000, "door_prompt_s": [30, 60],
                    "door_alarm_s": 120}, timeout_s=0.3)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.sim is not None:
            self.sim.stop()

    # ------------------------------------------------------------ a reader's QR
    def qr(self, reader: str) -> str:
        from syncproto.grants import sign_grant
        from syncproto.qrtoken import issue_token

        now = datetime.now(UTC)
        grant = sign_grant(grant_id=f"g-{reader}", reader_id=reader, tier="standard",
                           max_loans=100, offline_allowance=100, issued_at=now,
                           expires_at=now + timedelta(days=30), key_id="k1",
                           private_key=self._keys[0])
        return issue_token(reader_id=reader, grant_id=grant.grant_id, issued_at=now, ttl_s=60,
                           key_id="k1", private_key=self._keys[0], grant=grant)

    # ------------------------------------------------------------ the person
    def _door_open(self, door: int) -> bool:
        with self.sim.lock:
            return bool(self.sim.model.door(door).open)

    def _open_doors(self) -> list[int]:
        return [d.number for d in self.sim.config.doors if self._door_open(d.number)]

    def _fiddle(self, door: int, *, take: bool) -> None:
        """Take (borrow) or put back (return) a few books while the door is open."""
        from simulator.errors import Conflict, NotFound

        try:
            if take:
                items = [i.item_id for i in self.sim.door_items(door)]
                for item in self.rng.sample(items, min(len(items), self.rng.randint(0, 3))):
                    self.sim.take_item(item)
                    self.hands.append(item)
            else:
                for item in list(self.hands[: self.rng.randint(1, 2)]):
                    self.sim.put_item(item, door)
                    self.hands.remove(item)
        except (Conflict, NotFound):
            pass  # the door closed under the person's hands, or it is full

    def _wait_open(self, door: int, timeout: float = 2.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._door_open(door):
                return True
            time.sleep(0.01)
        return False

    # ------------------------------------------------------------ one trial
    def run(self, n: int, progress: Callable[[TrialOutcome], None] | None = None
            ) -> list[TrialOutcome]:
        from kiosk.ledger import Ledger

        from .kiosk_kit import KioskClient, KioskProcess

        assert self.config is not None
        outcomes: list[TrialOutcome] = []
        kiosk = KioskProcess(self.config, log=self.workdir / "kiosk.log").start()
        try:
            for trial in range(n):
                outcome = self._trial(trial, kiosk)
                # restart and recover
                kiosk = KioskProcess(self.config, log=self.workdir / "kiosk.log").start()
                client = KioskClient(kiosk.url)
                try:
                    for door in self._open_doors():
                        self.sim.close_door(door)
                    client.wait_idle(timeout=20)
                    outcome.recovered = len(client.health().get("recovered", []))
                finally:
                    client.close()
                ledger = Ledger(self.workdir / "data" / "ledger.db",
                                self.sim.config.id)
                try:
                    outcome.lost, outcome.phantom, outcome.problems = \
                        ground_truth_problems(self.sim, ledger)
                finally:
                    ledger.close()
                outcomes.append(outcome)
                if progress is not None:
                    progress(outcome)
        finally:
            kiosk.stop()
        return outcomes

    def _trial(self, trial: int, kiosk: Any) -> TrialOutcome:
        from .kiosk_kit import KioskClient

        rng = self.rng
        kind = "return" if self.hands and rng.random() < 0.35 else "borrow"
        delay = rng.uniform(0.0, self.kill_window_s)
        cut = self.power_cuts and rng.random() < 0.25
        outcome = TrialOutcome(trial, kind, f"kill at {delay:.2f}s" + (" + power cut" if cut
                                                                       else ""))
        killed = threading.Event()

        def crash() -> None:
            if cut:
                self.sim.power_cut(1)
            kiosk.kill()
            killed.set()

        timer = threading.Timer(delay, crash)
        client = KioskClient(kiosk.url, timeout=5)
        timer.start()
        door: int | None = None
        try:
            if kind == "borrow":
                client.start_session("qr", self.qr(f"R{trial % 7:04d}"))
                doors = [d.number for d in self.sim.config.doors]
                door = rng.choice(doors)
                client.open_door(door)
            else:
                st = client.start_return()
                door = int(next(iter(st["doors"])))
        except Exception:  # noqa: BLE001 - the kiosk died under the request: expected
            pass
        if door is not None and self._wait_open(door, 1.0):
            time.sleep(rng.uniform(0, 0.3))
            self._fiddle(door, take=(kind == "borrow"))
            time.sleep(rng.uniform(0, 0.3))
            if rng.random() < 0.85 or not killed.is_set():
                self.sim.close_door(door)
        try:
            if not killed.is_set():
                client.wait(lambda s: not s["doors"], 5, "doors counted")
                if kind == "borrow":
                    client.finish()
        except Exception:  # noqa: BLE001
            pass
        finally:
            client.close()
        killed.wait(self.kill_window_s + 5)
        timer.join()
        if cut:
            self.sim.power_restore(1)
        # the person, unaware of the crash, finishes with the door
        for d in self._open_doors():
            if rng.random() < 0.5:
                self._fiddle(d, take=(kind == "borrow"))
            if rng.random() < 0.8:
                self.sim.close_door(d)
        return outcome
