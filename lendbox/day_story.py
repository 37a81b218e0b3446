"""`lendbox demo --story`: a day of traffic on the demo network, so every screen has
something to show.

It runs on the network :class:`lendbox.network_story.NetworkStory` builds (a real server,
``lendbox ils-sim``, cabinets A and B on simulators, B behind a cable that can be cut) and
goes through the same doors a person would: the kiosk's HTTP API (what the touchscreen
calls), the simulators (hands, doors, a jammed lock), the server's reader API (the phone)
and its staff API (the librarian) — never the server's internals. One line per step.

Why it leaves things behind on purpose: the jammed lock stays jammed, the exception stays
open and the 荐购 stays in review, so the technician's self-test, the console's alarms, its
exceptions queue and its 荐购 workflow show them when the user opens the pages.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import httpx

from .kiosk_kit import KioskClient, KioskRefused
from .network_story import LIBRARY, Cabinet, NetworkStory, demo_id_number

__all__ = ["JAMMED_DOOR", "STEPS", "DayStory", "Reader"]

#: The door of cabinet A whose lock jams (it holds books, so a reader asks for it).
JAMMED_DOOR = 3
#: A real ISBN-13 (《平凡的世界》) for the 荐购.
RECOMMENDED_ISBN = "9787530212004"
#: The step headings, in order (the demo's test checks each is played).
STEPS = ("borrows", "returns", "holds pickup", "offline window", "jammed lock", "ratings",
         "荐购", "exceptions queue")


@dataclass
class Reader:
    """A reader with an electronic card (秒办证) and her phone (the reader API)."""

    name: str
    reader_id: str
    phone: httpx.Client

    def qr(self) -> str:
        r = self.phone.get("/api/readers/me/qr")
        r.raise_for_status()
        return str(r.json()["qr"])


class DayStory:
    """The day, played on a built network (after ``NetworkStory.start`` and
    ``build_network``)."""

    def __init__(self, net: NetworkStory) -> None:
        assert net.server is not None and net.api is not None and net.relay is not None
        self.net = net
        self.api = net.api
        self.a, self.b = net.cabinets
        self.readers: list[Reader] = []
        self.loans: dict[str, list[str]] = {}  # reader name → books, in borrowing order

    def say(self, text: str) -> None:
        self.net.say(text)

    def step(self, n: int, text: str) -> None:
        self.say(f"\n== day {n}. {STEPS[n - 1]}: {text}")

    # ------------------------------------------------------------ the day
    def play(self) -> bool:
        """The whole day; False (with the reason printed) if a step failed."""
        ca, cb = self.a.client(), self.b.client()
        try:
            chen, lin, huang, wu = (self._register(name, seed) for name, seed in (
                ("陈一", 21), ("林二", 22), ("黄三", 23), ("吴四", 24)))
            self._borrows(ca, cb, chen, lin, huang)
            self._returns(ca, cb)
            self._holds_pickup(ca, huang)
            self._offline_window(cb, chen, wu)
            self._jammed_lock(ca, lin)
            self._ratings(ca, cb)
            self._recommend(chen)
            self._exceptions()
            return True
        except (KioskRefused, TimeoutError, RuntimeError, httpx.HTTPError) as exc:
            self.say(f"   the story stopped: {exc}")
            return False
        finally:
            ca.close()
            cb.close()

    def close(self) -> None:
        for reader in self.readers:
            reader.phone.close()

    # ------------------------------------------------------------ steps
    def _borrows(self, ca: KioskClient, cb: KioskClient, chen: Reader, lin: Reader,
                 huang: Reader) -> None:
        self.step(1, "three readers show the QR code of their e-card and borrow")
        for reader, cab, client, door, n in ((chen, self.a, ca, 2, 2), (lin, self.a, ca, 1, 1),
                                             (huang, self.b, cb, 1, 1)):
            books = self.net._borrow(cab, client, reader.qr(), door=door, n=n)
            self.loans[reader.name] = books
            self.say(f"   {reader.name} at cabinet {cab.name}, door {door}: "
                     f"{', '.join(self._titled(b) for b in books)}")
        for cab in (self.a, self.b):
            self.net._synced(cab)
        due = self._item(self.loans["陈一"][0])["due"]
        self.say(f"   the server has the loans (due {due})")

    def _returns(self, ca: KioskClient, cb: KioskClient) -> None:
        self.step(2, "returns without login, one of them at the other branch (通借通还)")
        book = self.loans["林二"][0]
        door = self._return(self.a, ca, self.a, book)
        self.say(f"   林二 returns {self._titled(book)} at cabinet A (door {door})")
        # a book of the city branch (not one of the few another library lent the city)
        book = next((b for b in self.loans["陈一"]
                     if self.a.sim.items[b].owner_library == LIBRARY), self.loans["陈一"][-1])
        door = self._return(self.b, cb, self.a, book)
        self._synced_all()
        transit = [t for t in self.net._ok(self.api.get("/api/transits")).get("transits", [])
                   if t.get("item_id") == book]
        where = (f"transit #{transit[0].get('id')} to "
                 f"{transit[0].get('to_branch_id') or transit[0].get('to_library')}, "
                 f"{transit[0].get('status')}") if transit else "no transit recorded"
        self.say(f"   陈一 returns {self._titled(book)} (borrowed at cabinet A) at the county "
                 f"cabinet B (door {door}): {where}")

    def _holds_pickup(self, ca: KioskClient, huang: Reader) -> None:
        self.step(3, "a hold waits in cabinet A; the reader's QR code opens its door")
        door, book = next((d["door"], it["item_id"]) for d in ca.doors() if d["door"] == 1
                          for it in d["items"] if it["item_id"] and not it["on_hold"])
        r = huang.phone.post("/api/readers/me/holds",
                             json={"item_id": book, "pickup_cabinet_id": self.a.id})
        hold = self.net._ok(r)
        self.say(f"   黄三 places a hold on her phone for {self._titled(book)} at cabinet A: "
                 f"hold #{hold['id']} {hold['status']}")
        self.net._wait("cabinet A to know the hold", lambda: any(
            it["item_id"] == book and it["on_hold"] for d in ca.doors() for it in d["items"]))
        st = ca.start_session("qr", huang.qr())
        self.net._wait_open(self.a.sim, door)
        self.say(f"   she shows her QR code: session {st.get('phase', 'started')}, door {door} "
                 f"opens by itself (the door of her hold)")
        self.a.sim.take_item(book)
        self.a.sim.close_door(door)
        ca.wait(lambda s: not s["doors"], 20, "door counted")
        ca.finish()
        self.net._synced(self.a)
        mine = self.net._ok(huang.phone.get("/api/readers/me/holds"))["holds"]
        status = next((h["status"] for h in mine if h["id"] == hold["id"]), "?")
        self.say(f"   she takes it and shuts the door: hold #{hold['id']} {status}, "
                 f"the book {self._item(book)['status']}")

    def _offline_window(self, cb: KioskClient, chen: Reader, wu: Reader) -> None:
        assert self.net.relay is not None
        self.step(4, "cabinet B's network cable is cut; two readers borrow offline")
        qrs = {r.name: r.qr() for r in (chen, wu)}  # fetched on their phones' 4G
        self.net.relay.cut()
        for reader, door in ((chen, 2), (wu, 2)):
            book = self.net._borrow_one(self.b, cb, qrs[reader.name], door=door)
            self.loans.setdefault(reader.name, []).append(book)
            self.say(f"   {reader.name} borrows {self._titled(book)} offline, on her credit")
        health = cb.health()
        self.say(f"   cabinet B online: {cb.state()['online']}, pending events "
                 f"{health['pending_events']}")
        self.net._ok(self.api.post(f"/api/readers/{wu.reader_id}/block",
                                   json={"reason": "phone reported lost"}))
        self.say("   meanwhile 吴四 reports her phone lost: the library blocks her card")
        self.net.relay.mend()
        self.net._synced(self.b)
        book = self.loans["陈一"][-1]
        self.say(f"   the cable is mended; B's outbox reconciles: {book} "
                 f"{self._item(book)['status']}")

    def _jammed_lock(self, ca: KioskClient, lin: Reader) -> None:
        self.step(5, f"door {JAMMED_DOOR} of cabinet A jams; a reader asks for it")
        self.a.sim.jam_lock(JAMMED_DOOR)
        ca.start_session("qr", lin.qr())
        ca.open_door(JAMMED_DOOR)
        zh, en = self._screen_says(self.a, "door.unlock_failed")
        self.say(f"   林二 asks for door {JAMMED_DOOR}: the lock does not move")
        self.say(f"     屏幕 screen │ {zh}  ({en})")
        ca.wait(lambda s: not s["doors"], 10, "the failed door settled")
        door = 1  # she does what the screen says: another door
        ca.open_door(door)
        self.net._wait_open(self.a.sim, door)
        book = str(self.a.sim.door_items(door)[0].item_id)
        self.a.sim.take_item(book)
        self.a.sim.close_door(door)
        ca.wait(lambda s: not s["doors"], 20, "door counted")
        ca.finish()
        self.say(f"   she opens door {door} instead and borrows {self._titled(book)}")
        self.say(f"   the cabinet raised an unlock_failed alarm; door {JAMMED_DOOR} stays jammed "
                 f"for the technician's self-test and the console")

    def _ratings(self, ca: KioskClient, cb: KioskClient) -> None:
        self.step(6, "readers rate their visit (满意度)")
        chen, lin, huang, wu = self.readers
        for reader, cab, client, score in ((lin, self.a, ca, 2), (wu, self.b, cb, 4)):
            self.say(f"   {reader.name} gives cabinet {cab.name} {score}/5 "
                     f"{self._rate_at_screen(client, score)}")
        self.net._ok(huang.phone.post("/api/readers/me/ratings", json={
            "score": 5, "cabinet_id": self.a.id, "comment": "预约的书一开门就拿到了"}))
        self.say(f"   {huang.name} gives cabinet A 5/5 on her phone (for this morning's hold)")
        self._synced_all()
        stats = self.net._ok(self.api.get("/api/reports/stats"))["tables"]
        for row in stats.get("satisfaction", []):
            self.say(f"   满意率 at {row['cabinet_id']}: {row['satisfied']} of {row['ratings']} "
                     f"rating(s) 4 or 5")

    def _recommend(self, chen: Reader) -> None:
        self.step(7, "a reader asks the library to buy a book")
        rec = self.net._ok(chen.phone.post("/api/readers/me/recommendations", json={
            "isbn": RECOMMENDED_ISBN, "note": "孩子的暑假读物"}))
        self.say(f"   陈一 recommends ISBN {rec['isbn']}: 荐购 #{rec['id']} {rec['status']}")
        rec = self.net._ok(self.api.post(f"/api/recommendations/{rec['id']}/status", json={
            "status": "review", "note": "在选书委员会的清单上"}))
        self.say(f"   a librarian takes it up: {rec['status']}")

    def _exceptions(self) -> None:
        self.step(8, "what staff must look at")
        queue = self.net._ok(self.api.get("/api/exceptions"))["exceptions"]
        for e in queue:
            self.say(f"   exception #{e['id']}: {e['kind']} — item {e['item_id']}, actions "
                     f"{e['actions']}")
        if not queue:
            self.say("   (the exceptions queue is empty: see the server log)")

    # ------------------------------------------------------------ helpers
    def _register(self, name: str, seed: int) -> Reader:
        assert self.net.server is not None
        reg = self.net._ok(httpx.post(self.net.server.url + "/api/readers/register", json={
            "display_name": name, "id_number": demo_id_number(seed),
            "phone": f"138001380{seed:02d}"}, timeout=10))
        self.net._ils("/readers", {"patron_id": reg["reader_id"], "name": name})
        phone = httpx.Client(base_url=self.net.server.url, timeout=10,
                             headers={"Authorization": f"Bearer {reg['token']}"})
        reader = Reader(name, reg["reader_id"], phone)
        self.readers.append(reader)
        return reader

    def _return(self, cab: Cabinet, client: KioskClient, home: Cabinet, book: str) -> int:
        """A passer-by returns ``book`` (in her hands since she borrowed it at ``home``)."""
        st = client.start_return()
        door = int(next(iter(st["doors"])))
        self.net._wait_open(cab.sim, door)
        if cab is not home:
            self.net._carry(book, home.sim, cab.sim)
        cab.sim.put_item(book, door)
        cab.sim.close_door(door)
        client.wait_idle(20)
        return door

    @staticmethod
    def _rate_at_screen(client: KioskClient, score: int) -> str:
        """One tap on the cabinet's rating buttons (``POST /screen/rate``: a ``rating``
        event of the transaction that just ended there)."""
        r = client.http.post("/screen/rate", data={"score": str(score)})
        if r.status_code < 400:
            return "on the cabinet's screen"
        return f"— the screen refused it (HTTP {r.status_code})"

    def _screen_says(self, cab: Cabinet, key: str, timeout: float = 5.0) -> tuple[str, str]:
        """The (zh, en) text the screen showed for ``key``, from the kiosk's event stream
        replayed from the start (``Last-Event-ID: 0``)."""
        assert cab.kiosk is not None
        deadline = time.monotonic() + timeout
        with httpx.stream("GET", cab.kiosk.url + "/api/events", timeout=timeout,
                          headers={"Last-Event-ID": "0"}) as r:
            for line in r.iter_lines():
                if line.startswith("data: "):
                    item = json.loads(line[6:])
                    if item.get("key") == key:
                        return str(item["text"]["zh"]), str(item["text"]["en"])
                if time.monotonic() > deadline:
                    break
        raise TimeoutError(f"the screen of cabinet {cab.name} never said {key}")

    def _item(self, book: str) -> dict[str, Any]:
        return dict(self.net._ok(self.api.get(f"/api/items/{book}")))

    def _titled(self, book: str) -> str:
        for cab in (self.a, self.b):
            item = cab.sim.items.get(book)
            if item is not None and item.title:
                return f"{book}《{item.title}》"
        return book

    def _synced_all(self) -> None:
        for cab in (self.a, self.b):
            self.net._synced(cab)
