"""The demo's story of a cabinet day, played through the kiosk's HTTP API.

A real kiosk process runs the simulated cabinet; a stand-in central server (the real one
comes with issue [4/6]) issues QR codes and credit grants and receives the cabinet's events.
Every line the screen would show is printed as it arrives on the kiosk's SSE stream.

1. 张三 shows the QR code of her electronic reader card (to the cabinet's camera when it
   has one) and borrows two books;
2. 李四 taps his library card: the card reader goes through pcscd, the kiosk resolves it;
3. a passer-by returns a book of another branch (通借通还), no login needed;
4. the network drops; 王五 borrows one book offline, within his credit;
5. 赵六 takes two books offline: the cabinet's offline cap allows only one, the door
   re-opens and the screen says why; he puts it back;
6. power is cut while 钱七's door is open (kiosk process killed, lock board unpowered); she
   takes a book and shuts the door; power returns, the kiosk restarts, recovers the door by
   counting it and records her loan;
7. the network returns and the cabinet's outbox reaches the server, offline loans flagged.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import httpx

from .kiosk_kit import KioskClient, KioskProcess, KioskRefused, write_kiosk_config
from .standin_server import StandinServer

__all__ = ["KioskStory", "STORY_POLICY"]

#: Small offline limits, so the story reaches them with a handful of books.
STORY_POLICY = {"offline_allowance": 2, "offline_exposure_cap": 2, "door_prompt_s": [30, 60],
                "door_alarm_s": 120, "session_idle_s": 120}
CARD_UID = "04A1B2C3D4E5F6"


@dataclass
class KioskStory:
    sim: Any
    workdir: Path
    out: TextIO
    server: StandinServer | None = None
    kiosk: KioskProcess | None = None
    config: Path | None = None
    visitor_book: str = ""
    _listener: threading.Thread | None = None
    _stop: threading.Event = field(default_factory=threading.Event)

    # ------------------------------------------------------------ set-up
    def start(self) -> None:
        from kiosk.runtime import _b64, load_or_create_key
        from syncproto import ItemInfo

        self.server = StandinServer().start()
        for item in self.sim.items.values():
            self.server.add_item(ItemInfo(item_id=item.item_id, title=item.title or "",
                                          owner_library=item.owner_library or ""))
        self.server.add_reader(card=None, reader_id="R0012345", display_name="张三")
        self.server.add_reader(card=CARD_UID, reader_id="R0023456", display_name="李四")
        self.server.add_reader(card=None, reader_id="R0034567", display_name="王五")
        self.server.add_reader(card=None, reader_id="R0045678", display_name="赵六")
        self.server.add_reader(card=None, reader_id="R0056789", display_name="钱七")
        data = self.workdir / "kiosk-data"
        self.config = write_kiosk_config(
            self.workdir / "kiosk.toml", self.sim, data_dir=data, server_url=self.server.url,
            trusted_keys=self.server.public_keys, policy=STORY_POLICY, sync_interval_s=1.0)
        key = load_or_create_key(data / "cabinet.key")
        self.server.register_cabinet(self.sim.config.id,
                                     _b64(key.public_key().public_bytes_raw()))
        # a book of another branch, borrowed elsewhere: in a passer-by's hands before the
        # cabinet first counts its doors
        other = next(i for i in self.sim.items.values() if i.door is not None
                     and i.owner_library and i.owner_library != "CN-440300")
        self._hand_out(other.item_id)
        self.visitor_book = other.item_id
        self._start_kiosk()

    def _start_kiosk(self) -> None:
        assert self.config is not None
        self.kiosk = KioskProcess(self.config, log=self.workdir / "kiosk.log").start()
        self._stop.clear()
        self._listener = threading.Thread(target=self._listen, daemon=True)
        self._listener.start()
        time.sleep(0.2)

    def stop(self) -> None:
        self._stop.set()
        if self.kiosk is not None:
            self.kiosk.stop()
        if self.server is not None:
            self.server.stop()

    def say(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def _listen(self) -> None:
        """Print what the screen shows, in both languages, as it happens."""
        assert self.kiosk is not None
        try:
            with httpx.stream("GET", self.kiosk.url + "/api/events", timeout=None) as r:
                for line in r.iter_lines():
                    if self._stop.is_set():
                        return
                    if not line.startswith("data: "):
                        continue
                    item = json.loads(line[6:])
                    zh, en = item["text"]["zh"], item["text"]["en"]
                    if zh:
                        self.say(f"     屏幕 screen │ {zh}  ({en})")
        except httpx.HTTPError:
            return  # the kiosk stopped (or was killed, in step 6)

    # ------------------------------------------------------------ helpers
    def client(self) -> KioskClient:
        assert self.kiosk is not None
        return KioskClient(self.kiosk.url)

    def _wait_open(self, door: int, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.sim.lock:
                if self.sim.model.door(door).open:
                    return
            time.sleep(0.02)
        raise RuntimeError(f"door {door} did not open")

    def _title(self, item_id: str) -> str:
        item = self.sim.items.get(item_id)
        return f"{item_id}《{item.title}》" if item is not None and item.title else item_id

    def _take(self, door: int, n: int) -> list[str]:
        items = [i.item_id for i in self.sim.door_items(door)][:n]
        time.sleep(0.1)  # let the screen's "door open" line print first
        for item in items:
            self.sim.take_item(item)
            self.say(f"   the reader takes {self._title(item)}")
        return items

    def _borrow(self, c: KioskClient, token: str, door: int, n: int) -> list[str]:
        c.start_session("qr", token)
        c.open_door(door)
        self._wait_open(door)
        taken = self._take(door, n)
        self.sim.close_door(door)
        return taken

    def _counted(self, c: KioskClient) -> dict[str, Any]:
        st = c.wait(lambda s: not s["doors"], 20, "doors counted")
        time.sleep(0.2)  # let the screen lines arrive before the next step prints
        return st

    def _ledger_tail(self, kinds: tuple[str, ...] = ("loan", "return", "alarm")) -> None:
        from kiosk.ledger import Ledger

        assert self.config is not None
        with Ledger(self.workdir / "kiosk-data" / "ledger.db", self.sim.config.id) as led:
            events = led.events_after(0, limit=100000)
        for e in events[-8:]:
            if e.kind in kinds:
                p = e.payload
                what = p.get("item_id") or ""
                extra = p.get("reader_id") or p.get("owner_library") or p.get("reason") or ""
                self.say(f"   ledger #{e.seq} {e.kind:<6} {what} {extra}"
                         f"{'  (offline)' if e.offline else ''}")

    # ------------------------------------------------------------ the story
    def play(self) -> None:
        assert self.server is not None and self.kiosk is not None
        srv, sim = self.server, self.sim
        self.say(f"   kiosk API {self.kiosk.url}  (docs {self.kiosk.url}/docs, screen stream "
                 f"{self.kiosk.url}/api/events); started in {self.kiosk.startup_s:.1f} s")
        c = self.client()
        try:
            self.say("\n== 4a. 张三 shows her e-reader card QR and borrows two books from door 3")
            token = srv.issue_qr("R0012345")
            self.say(f"   her phone shows a {len(token)}-character signed QR token "
                     f"({token[:16]}…), valid 60 s")
            if sim.camera_url:
                sim.show_qr(token)  # the kiosk's camera decodes it and starts the session
                c.wait(lambda s: s["session"] is not None, 10, "QR read by the camera")
                sim.clear_camera()
                self.say("   the cabinet's camera read the QR code")
            else:
                c.start_session("qr", token)
            c.open_door(3)
            self._wait_open(3)
            self._take(3, 2)
            sim.close_door(3)
            self._counted(c)
            c.finish()
            self._ledger_tail(("loan",))

            self.say("\n== 4b. 李四 taps his library card (contactless, through pcscd)")
            if sim.pcsc_socket:
                sim.present_card(bytes.fromhex(CARD_UID))
                try:
                    st = c.wait(lambda s: s["session"] is not None
                                and s["session"]["phase"] == "active", 10, "card read")
                    self.say(f"   session started by the card reader: role "
                             f"{st['session']['role']}, online {st['online']}")
                    c.finish()
                except TimeoutError:
                    self.say("   the card was not read within 10 s")
                finally:
                    sim.remove_card()
            else:
                st = c.start_session("card", CARD_UID)
                self.say("   (no card reader in this run: the card UID goes through the API)")
                c.finish()

            self.say("\n== 4c. A passer-by returns a book of another branch (通借通还), no login")
            other = next(i for i in sim.items.values() if i.door is not None
                         and i.owner_library and i.owner_library != "CN-440300")
            self._hand_out(other.item_id)
            st = c.start_return()
            door = int(next(iter(st["doors"])))
            self._wait_open(door)
            sim.put_item(other.item_id, door)
            self.say(f"   puts {self._title(other.item_id)} (owner {other.owner_library}) "
                     f"into door {door}")
            sim.close_door(door)
            c.wait_idle(20)
            time.sleep(0.2)
            self._ledger_tail(("return",))

            self.say("\n== 4d. The network drops; 王五 borrows one book offline, within credit")
            tokens = {r: srv.issue_qr(r) for r in ("R0034567", "R0045678", "R0056789")}
            srv.pause()
            self._borrow(c, tokens["R0034567"], 5, 1)
            self._counted(c)
            c.finish()
            self.say(f"   cabinet online: {c.state()['online']}; offline exposure "
                     f"{c.health()['offline_exposure']} of "
                     f"{c.health()['offline_exposure_cap']}")

            self.say("\n== 4e. 赵六 takes two books offline: the cabinet's offline cap "
                     "allows one")
            taken = self._borrow(c, tokens["R0045678"], 6, 2)
            st = c.wait(lambda s: s["doors"].get("6", {}).get("purpose") == "reopen"
                        and any(r["key"] == "borrow.put_back" for r in s["recent"]), 20,
                        "door 6 re-opened")
            refused = [r for r in st["recent"] if r["key"] == "borrow.put_back"][-1]
            back = refused["params"]["items"][0]["item_id"]
            self._wait_open(6)
            sim.put_item(back, 6)
            self.say(f"   he puts back {self._title(back)}")
            sim.close_door(6)
            self._counted(c)
            c.finish()
            assert back in taken
            self._ledger_tail(("loan",))

            self.say("\n== 4f. The network returns: the outbox reaches the central server")
            srv.resume()
            # the agent may be in its backoff (capped at 60 s) when the network returns
            deadline = time.monotonic() + 70
            while time.monotonic() < deadline and c.health()["pending_events"]:
                time.sleep(0.2)
            got = srv.events(sim.config.id)
            loans = [e for e in got if e.kind == "loan"]
            self.say(f"   server has {len(got)} events of this cabinet: {len(loans)} loans "
                     f"({sum(e.offline for e in loans)} made offline, flagged for "
                     "reconciliation)")
            self.say("\n== 4g. Power cut (network back) while 钱七's door 7 is open")
            c.start_session("qr", srv.issue_qr("R0056789"))
            c.open_door(7)
            self._wait_open(7)
            self.say("   power fails: the kiosk PC stops dead (SIGKILL), the lock board too")
            sim.power_cut(self._board_of(7))
            self.kiosk.kill()
            self._stop.set()
            self._take(7, 1)
            sim.close_door(7)
            self.say("   she shuts the door and leaves; power returns")
            sim.power_restore(self._board_of(7))
            c.close()
            self._start_kiosk()
            c = self.client()
            c.wait_idle(30)
            time.sleep(0.2)
            rec = c.health()["recovered"]
            for r in rec:
                self.say(f"   recovery: intent {r['intent']} ({r['kind']}) of door {r['door']}"
                         f" → door counted, the difference recorded")
            self._ledger_tail(("loan", "alarm"))

        except (KioskRefused, TimeoutError, RuntimeError) as exc:
            self.say(f"   the story stopped: {exc}")
        finally:
            c.close()

    def _board_of(self, door: int) -> int:
        return self.sim.config.door(door).board

    def _hand_out(self, item_id: str) -> None:
        """Put a book in the passer-by's hands, as if borrowed at another cabinet earlier
        (before this cabinet's first count, so it was never in its ledger)."""
        with self.sim.lock:
            door = self.sim.model.door(self.sim.items[item_id].door)
            was = door.latched
            door.latched = False
            door.open = True
            self.sim.model.take_item(item_id)
            door.open = False
            door.latched = was
