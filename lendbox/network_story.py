"""The demo's network part: the real central server, two branches, two cabinets syncing.

Everything is the real thing: ``lendbox server`` (init, create-admin, run) on an SQLite file,
two simulated cabinets each driven by its own ``lendbox kiosk run`` process, the staff API
for the network, the catalogue and the reports, the reader API for 秒办证 and the QR code.
Cabinet B reaches the server through a cable the story can cut (a TCP relay), so its
offline window is a real one: its sync requests fail while cabinet A's go through.

1. 市馆 (city branch) and 县馆 (county branch) of one library; cabinet A serves the city
   branch, cabinet B the county one; the catalogue gives each book its home branch;
2. a reader registers an electronic card online (秒办证) and borrows at cabinet A with the
   QR code on her phone;
3. she returns the book at cabinet B (通借通还): the server routes it home — in transit, on
   the county branch's restock list;
4. cabinet B loses its network; she borrows there offline on her credit while the library
   blocks her card (a lost phone reported); the cable comes back, B's outbox reconciles and
   the loan to a blocked reader lands in the staff exceptions queue.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import httpx

from .child import ReadyChild
from .fleet import ServerRun, create_admin, init_db
from .kiosk_kit import KioskClient, KioskProcess, KioskRefused, write_kiosk_config

__all__ = ["CableRelay", "NetworkStory"]

ROOT = Path(__file__).resolve().parent.parent
SMALL = ROOT / "simulator" / "cabinets" / "small.toml"
LIBRARY = "CN-440300"
OTHER_LIBRARIES = ("CN-440305",)
CITY, COUNTY = "sz-city", "sz-county"
ADMIN, ADMIN_PASSWORD = "demo-admin", "demo password 2026"
ILS_PROFILE = "cn-utf8"
POLICY = {"offline_allowance": 2, "offline_exposure_cap": 5, "session_idle_s": 120,
          "door_prompt_s": [30, 60], "door_alarm_s": 120}


def demo_id_number(seed: int) -> str:
    """A well-formed (check digit ISO 7064 MOD 11-2) but fictitious resident id number."""
    body = f"4403041990{seed % 10}101{seed:04d}"[:17]
    weights = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
    total = sum(int(d) * w for d, w in zip(body, weights, strict=True))
    return body + "10X98765432"[total % 11]


class CableRelay:
    """A TCP relay standing for a cabinet's network cable: ``cut()`` drops every connection
    and refuses new ones until ``mend()``. The cabinet sees exactly what a dead uplink gives
    it: connections that fail."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._cut = threading.Event()
        self._stop = threading.Event()
        self._conns: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._accept, name="cable-relay", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def cut(self) -> None:
        self._cut.set()
        with self._lock:
            for conn in self._conns:
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)

    def mend(self) -> None:
        self._cut.clear()

    def close(self) -> None:
        self._stop.set()
        self.cut()
        self._listener.close()
        self._thread.join(2)

    def _accept(self) -> None:
        self._listener.settimeout(0.2)
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if self._cut.is_set():
                client.close()
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=2)
            except OSError:
                client.close()
                continue
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket) -> None:
        with self._lock:
            self._conns.update((src, dst))
        try:
            while not self._cut.is_set():
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()
            with self._lock:
                self._conns.difference_update((src, dst))


@dataclass
class Cabinet:
    """One simulated cabinet of the network and its kiosk process."""

    name: str
    sim: Any
    branch: str
    config: Path
    kiosk: KioskProcess | None = None

    @property
    def id(self) -> str:
        return str(self.sim.config.id)

    def client(self) -> KioskClient:
        assert self.kiosk is not None
        return KioskClient(self.kiosk.url)


@dataclass
class NetworkStory:
    workdir: Path
    out: TextIO
    server: ServerRun | None = None
    relay: CableRelay | None = None
    cabinets: list[Cabinet] = field(default_factory=list)
    api: httpx.Client | None = None
    ils: ReadyChild | None = None
    ils_control: str = ""
    ils_port: int = 0

    def say(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    # ------------------------------------------------------------ set-up
    def _sim_config(self, name: str, cabinet_id: str, seed: int, prefix: str) -> Path:
        text = SMALL.read_text(encoding="utf-8")
        text = text.replace('id = "small-0001"', f'id = "{cabinet_id}"')
        text = text.replace("seed = 11", f'seed = {seed}\nid_prefix = "{prefix}"\n'
                            'titles = ["红楼梦", "三体", "活着", "围城", "边城", "百年孤独"]')
        text = text.replace("hold_open_limit_s = 0.3", "hold_open_limit_s = 120")
        path = self.workdir / f"{name}-cabinet.toml"
        path.write_text(text, encoding="utf-8")
        return path

    def start(self) -> None:
        from kiosk.runtime import _b64, load_or_create_key
        from simulator import Simulator

        db_url = f"sqlite:///{self.workdir / 'server.db'}"
        init_db(db_url)
        create_admin(db_url, ADMIN, ADMIN_PASSWORD)
        self.say(f"   lendbox server init + create-admin {ADMIN}: schema, signing key, operator")
        self._start_ils()
        self.say(f"   the library's ILS: lendbox ils-sim on 127.0.0.1:{self.ils_port} "
                 f"(SIP2, profile {ILS_PROFILE}, pid {self.ils.pid if self.ils else '?'})")
        self.server = ServerRun(db_url, log=self.workdir / "server.log", log_level="info", env={
            "LENDBOX_ILS_HOST": "127.0.0.1", "LENDBOX_ILS_PORT": str(self.ils_port),
            "LENDBOX_ILS_USER": "lendbox", "LENDBOX_ILS_PASSWORD": "lendbox",
            "LENDBOX_ILS_PROFILE": ILS_PROFILE, "LENDBOX_ILS_INSTITUTION": LIBRARY,
            "LENDBOX_ILS_INTERVAL_S": "0.5"})
        self.server.start()
        self.say(f"   central server {self.server.url} (pid {self.server.pid}, SQLite "
                 f"{self.workdir / 'server.db'})")
        self.api = httpx.Client(base_url=self.server.url, timeout=10)
        token = self._ok(self.api.post("/api/auth/login", json={
            "username": ADMIN, "password": ADMIN_PASSWORD}))["token"]
        self.api.headers["Authorization"] = f"Bearer {token}"

        host, port = self.server.url.removeprefix("http://").split(":")
        self.relay = CableRelay((host, int(port)))
        trusted = self._trusted_keys(db_url)
        for name, branch, cab_id, seed, prefix in (
                ("A", CITY, "sz-city-0001", 101, "390201"),
                ("B", COUNTY, "sz-county-0001", 202, "390302")):
            sim = Simulator.from_file(self._sim_config(name, cab_id, seed, prefix),
                                      control_port=0)
            sim.start()
            data = self.workdir / f"kiosk-{name}"
            url = self.server.url if name == "A" else self.relay.url
            config = write_kiosk_config(self.workdir / f"kiosk-{name}.toml", sim, data_dir=data,
                                        server_url=url, trusted_keys=trusted, policy=POLICY,
                                        network=[LIBRARY, *OTHER_LIBRARIES],
                                        sync_interval_s=1.0)
            key = load_or_create_key(data / "cabinet.key")
            self.cabinets.append(Cabinet(name, sim, branch, config))
            self._cabinet_public = getattr(self, "_cabinet_public", {})
            self._cabinet_public[cab_id] = _b64(key.public_key().public_bytes_raw())

    def _start_ils(self) -> None:
        """``lendbox ils-sim`` with a state file: on a free port the first time, on the same
        port after a crash (the server's SIP2 client reconnects to where it was)."""
        self.ils = ReadyChild(["ils-sim", "--port", str(self.ils_port), "--profile", ILS_PROFILE,
                               "--institution", LIBRARY, "--state",
                               str(self.workdir / "ils-state.json")],
                              "ils-sim ready ", log=self.workdir / "ils.log")
        self.ils.start(timeout=30)
        words = next(x for x in self.ils.lines if x.startswith("ils-sim ready ")).split()
        self.ils_port = int(words[2].rsplit(":", 1)[1])
        self.ils_control = words[4]

    def _ils(self, path: str, body: dict[str, Any] | None = None) -> Any:
        url = self.ils_control + path
        r = httpx.get(url, timeout=10) if body is None else httpx.post(url, json=body, timeout=10)
        return self._ok(r)

    def _outbox(self) -> dict[str, Any]:
        assert self.api is not None
        return dict(self._ok(self.api.get("/api/ils/outbox", params={"limit": 1000})))

    def _forwarded(self, timeout: float = 30.0) -> dict[str, Any]:
        """The outbox once nothing is pending or uncertain any more."""
        return dict(self._wait("the ILS forwarding", lambda: (
            (o := self._outbox()) and not o["counts"].get("pending")
            and not o["counts"].get("sent") and o), timeout))

    @staticmethod
    def _trusted_keys(db_url: str) -> dict[str, str]:
        from server.db import make_engine
        from server.keys import trusted

        engine = make_engine(db_url)
        try:
            with engine.connect() as conn:
                return dict(trusted(conn))
        finally:
            engine.dispose()

    def stop(self) -> None:
        for cab in self.cabinets:
            if cab.kiosk is not None:
                cab.kiosk.stop()
            cab.sim.stop()
        if self.relay is not None:
            self.relay.close()
        if self.api is not None:
            self.api.close()
        if self.server is not None:
            self.server.stop()
        if self.ils is not None:
            self.ils.stop()

    # ------------------------------------------------------------ helpers
    def _ok(self, r: httpx.Response) -> Any:
        if r.status_code >= 400:
            raise RuntimeError(f"{r.request.method} {r.request.url.path} → {r.status_code}: "
                               f"{r.text[:300]}")
        return r.json()

    def _wait(self, what: str, check: Any, timeout: float = 20.0) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = check()
            if got:
                return got
            time.sleep(0.2)
        raise TimeoutError(f"timed out waiting for {what}")

    def _wait_open(self, sim: Any, door: int) -> None:
        self._wait(f"door {door} to open", lambda: sim.model.door(door).open, 15)

    @staticmethod
    def _carry(item_id: str, src: Any, dst: Any) -> None:
        """The reader walks a book from one simulated cabinet to the other: the second
        simulation gets the same tag (uid, memory), in her hands."""
        import dataclasses

        with src.lock:
            item = src.model.item(item_id)
        with dst.lock:
            dst.model.items[item_id] = dataclasses.replace(item, door=None)

    def _borrow_one(self, cab: Cabinet, client: KioskClient, qr: str, *, door: int) -> str:
        """The reader shows her QR code, opens ``door``, takes its first book and shuts it."""
        return self._borrow(cab, client, qr, door=door, n=1)[0]

    def _borrow(self, cab: Cabinet, client: KioskClient, qr: str, *, door: int,
                n: int) -> list[str]:
        client.start_session("qr", qr)
        client.open_door(door)
        self._wait_open(cab.sim, door)
        books = [str(i.item_id) for i in cab.sim.door_items(door)[:n]]
        for book in books:
            cab.sim.take_item(book)
        cab.sim.close_door(door)
        client.wait(lambda s: not s["doors"], 20, "door counted")
        client.finish()
        return books

    def _synced(self, cab: Cabinet) -> None:
        c = cab.client()
        try:
            # after an outage the agent may be in its backoff, capped at 60 s
            self._wait(f"cabinet {cab.name} to sync", lambda: not c.health()["pending_events"],
                       70)
        finally:
            c.close()

    # ------------------------------------------------------------ the story
    def build_network(self) -> None:
        """Step 5a: the library, its two branches, both cabinets registered with their keys,
        the catalogue (also the ILS's), both kiosks started, their first counts adopted as
        stock. After :meth:`start`; tests and the screens' demo build on it."""
        assert self.api is not None
        api = self.api
        a, b = self.cabinets
        self._ok(api.post("/api/libraries", json={"isil": LIBRARY, "name": "深圳图书馆"}))
        for isil in OTHER_LIBRARIES:
            self._ok(api.post("/api/libraries", json={"isil": isil, "name": f"区馆 {isil}"}))
        self._ok(api.post("/api/branches", json={"id": CITY, "name": "市馆 city branch",
                                                 "library_isil": LIBRARY}))
        self._ok(api.post("/api/branches", json={"id": COUNTY, "name": "县馆 county branch",
                                                 "library_isil": LIBRARY, "parent_id": CITY}))
        records = []
        for cab in self.cabinets:
            self._ok(api.post("/api/cabinets", json={
                "id": cab.id, "branch_id": cab.branch, "name": f"cabinet {cab.name}",
                "location": "深圳北站" if cab.name == "A" else "宝安机场",
                "public_key": self._cabinet_public[cab.id],
                "offline_exposure_cap": POLICY["offline_exposure_cap"]}))
            for item in cab.sim.items.values():
                own = item.owner_library == LIBRARY
                records.append({"item_id": item.item_id, "title": item.title or "",
                                "owner_library": item.owner_library or LIBRARY,
                                "home_branch_id": cab.branch if own else None})
        got = self._ok(api.post("/api/items", json={"items": records}))
        for record in records:  # the same catalogue is the ILS's own
            self._ils("/items", {"item_id": record["item_id"], "title": record["title"],
                                 "branch": record["home_branch_id"] or ""})
        self.say(f"   branches {CITY} (city) and {COUNTY} (county, under the city branch); "
                 f"cabinets {a.id} → {CITY}, {b.id} → {COUNTY}; catalogue: "
                 f"{got['created']} books imported")
        for cab in self.cabinets:
            cab.kiosk = KioskProcess(cab.config, log=self.workdir / f"kiosk-{cab.name}.log").start()
            self.say(f"   cabinet {cab.name}: kiosk {cab.kiosk.url} started in "
                     f"{cab.kiosk.startup_s:.1f} s")
        for cab in self.cabinets:
            # the kiosk counted its doors at start-up; its first sync carries the counts
            summary = self._wait(f"cabinet {cab.name}'s first count", lambda cab=cab: next(
                (c for c in self._ok(api.get("/api/reports/discrepancies",
                                             params={"cabinet_id": cab.id}))["cabinets"]
                 if c["status"] == "ok"), None))
            adopted = self._ok(api.post(f"/api/cabinets/{cab.id}/inventory/adopt"))
            self.say(f"   cabinet {cab.name} counted {summary['items_seen']} books in doors "
                     f"{summary['doors_reported']}; staff adopt the count as its stock "
                     f"({adopted['adopted']} books)")

    def play(self) -> None:
        assert self.api is not None and self.server is not None and self.relay is not None
        api = self.api
        a, b = self.cabinets
        self.say("\n== 5a. The network: one library, a city and a county branch, two cabinets")
        self.build_network()
        self.say("\n== 5b. 孙八 registers an electronic card online (秒办证) and borrows at "
                 "cabinet A")
        reg = self._ok(httpx.post(self.server.url + "/api/readers/register", json={
            "display_name": "孙八", "id_number": demo_id_number(8), "phone": "13800138008"}))
        reader = httpx.Client(base_url=self.server.url, timeout=10,
                              headers={"Authorization": f"Bearer {reg['token']}"})
        self.say(f"   reader {reg['reader_id']}, credit tier {reg['tier']}: no deposit")
        self._ils("/readers", {"patron_id": reg["reader_id"], "name": "孙八"})
        ca, cb = a.client(), b.client()
        try:
            qr = self._ok(reader.get("/api/readers/me/qr"))["qr"]
            book = self._borrow_one(a, ca, qr, door=2)
            self._synced(a)
            item = self._ok(api.get(f"/api/items/{book}"))
            self.say(f"   she takes {book}《{item['title']}》; the server: {item['status']}, "
                     f"due {item['due']}")

            self.say("\n== 5c. She returns it at cabinet B, the county branch's (通借通还)")
            st = cb.start_return()
            door = int(next(iter(st["doors"])))
            self._wait_open(b.sim, door)
            self._carry(book, a.sim, b.sim)
            b.sim.put_item(book, door)
            b.sim.close_door(door)
            cb.wait_idle(20)
            self._synced(b)
            transits = self._ok(api.get("/api/transits"))
            mine = [t for t in transits.get("transits", []) if t.get("item_id") == book]
            for t in mine:
                self.say(f"   transit #{t.get('id')}: {book} from {t.get('from_cabinet_id')} "
                         f"to {t.get('to_branch_id') or t.get('to_library')}, {t.get('status')}")
            restock = self._ok(api.get("/api/restock", params={"branch_id": COUNTY}))
            tasks = [t for t in restock.get("tasks", []) if t.get("item_id") == book]
            for t in tasks:
                self.say(f"   county staff's restock list: {t.get('action')} {book} at "
                         f"{t.get('cabinet_id')} ({t.get('reason')})")
            if not mine:
                self.say("   (no transit recorded: see the server log)")

            self.say("\n== 5d. Cabinet B's network cable is cut; she borrows there offline")
            qr = self._ok(reader.get("/api/readers/me/qr"))["qr"]  # fetched on her phone's 4G
            self.relay.cut()
            offline_book = self._borrow_one(b, cb, qr, door=2)
            self.say(f"   she takes {offline_book}; cabinet B online: {cb.state()['online']}, "
                     f"pending events {cb.health()['pending_events']}")
            self._ok(api.post(f"/api/readers/{reg['reader_id']}/block",
                              json={"reason": "phone reported lost"}))
            self.say("   meanwhile she reports her phone lost: the library blocks her card")
            self.relay.mend()
            self.say("   the cable is mended")
            self._synced(b)
            item = self._ok(api.get(f"/api/items/{offline_book}"))
            self.say(f"   the offline loan reconciled: {offline_book} {item['status']} "
                     f"(a loan that happened is a fact)")
            queue = self._ok(api.get("/api/exceptions"))["exceptions"]
            for e in queue:
                self.say(f"   exceptions queue #{e['id']}: {e['kind']} — item {e['item_id']}"
                         f", actions {e['actions']}")

            self._ils_part(api, a, ca, b, cb, offline_book)

            self.say("\n== 5g. The reports the city asks for (GET /api/reports/…)")
            for c in self._ok(api.get("/api/reports/discrepancies"))["cabinets"]:
                kinds = {k.removesuffix("_count"): v for k, v in c.items()
                         if k.endswith("_count") and v}
                self.say(f"   inventory {c['cabinet_id']}: {c['items_seen']} books seen, "
                         f"discrepancies {kinds or 'none'}")
            stats = self._ok(api.get("/api/reports/stats"))["tables"]
            for row in stats["utilisation"]:
                self.say(f"   {row['cabinet_id']}: {row['loans']} loans, {row['returns']} "
                         f"returns, 利用率 {row['utilisation']:.3f} loans per stocked book")
            for row in stats["flows"]:
                self.say(f"   通借通还 flow: {row['returns']} return(s) of {row['from_branch_id']}"
                         f" books at {row['to_branch_id']}")
            for row in stats["offline"]:
                self.say(f"   offline share at {row['cabinet_id']}: "
                         f"{row['offline_share']:.0%} of {row['events']} events")
        except (KioskRefused, TimeoutError, RuntimeError, httpx.HTTPError) as exc:
            self.say(f"   the story stopped: {exc}")
        finally:
            ca.close()
            cb.close()
            reader.close()


    # ------------------------------------------------------------ the ILS
    def _ils_part(self, api: httpx.Client, a: Cabinet, ca: KioskClient, b: Cabinet,
                  cb: KioskClient, offline_book: str) -> None:
        assert self.ils is not None and self.server is not None
        self.say("\n== 5e. The library's ILS (SIP2): every loan and return forwarded exactly once")
        done = self._forwarded()
        self.say(f"   ILS outbox: {done['counts']}; the ILS applied "
                 f"{len(self._ils('/journal'))} transactions")
        for row in done["rows"]:
            self.say(f"   {row['kind']:<8} {row['item_id']} → {row['status']}"
                     f"{' (no-block, offline)' if row.get('offline') else ''}")

        self.say("\n== 5f. The ILS crashes mid-stream (SIGKILL) with an answer lost on the wire")
        reg = self._ok(httpx.post(self.server.url + "/api/readers/register", json={
            "display_name": "周九", "id_number": demo_id_number(9), "phone": "13800138009"}))
        self._ils("/readers", {"patron_id": reg["reader_id"], "name": "周九"})
        qr = self._ok(httpx.get(self.server.url + "/api/readers/me/qr", timeout=10, headers={
            "Authorization": f"Bearer {reg['token']}"}))["qr"]
        # the next checkout is applied by the ILS, then the connection drops before the
        # answer; the ILS then refuses logins until it is restarted (a hung ILS process)
        self._ils("/faults", {"drop_after": 1, "codes": ["11"], "refuse_login": True})
        books = self._borrow(a, ca, qr, door=1, n=3)
        self.say(f"   周九 borrows {', '.join(books)} at cabinet A")
        # both sides of the lost answer: the ILS applied a checkout (its journal says so) and
        # the outbox has it as sent, unanswered. Killing the ILS on "sent" alone could land
        # before the request reached it, which is another story (nothing applied).
        self._wait("an answer lost", lambda: self._outbox()["counts"].get("sent") and any(
            e["op"] == "checkout" and e["item_id"] in books for e in self._ils("/journal")), 20)
        self.ils.kill()
        self.say(f"   the ILS applied the first checkout, its answer was lost, the ILS hung and "
                 f"was killed (SIGKILL); the outbox holds {self._outbox()['counts']}")
        self._start_ils()
        self.say(f"   the ILS restarts on the same port from its own records (pid {self.ils.pid})")
        done = self._forwarded()
        journal = self._ils("/journal")
        applied: dict[tuple[str, str], int] = {}
        for entry in journal:
            key = (entry["op"], entry["item_id"])
            applied[key] = applied.get(key, 0) + 1
        for row in done["rows"]:
            if row["item_id"] in books:
                how = row.get("resolved_by") or ""
                self.say(f"   {row['kind']} {row['item_id']}: {row['status']}, resolved by "
                         f"{how}, applied by the ILS {applied.get(('checkout', row['item_id']), 0)}×")
        confirmed = sum(1 for r in done["rows"] if r["status"] == "confirmed")
        twice = [k for k, n in applied.items() if n > 1]
        self.say(f"   reconciliation: outbox {done['counts']}; ILS journal {len(journal)} "
                 f"transactions; applied twice: {twice or 'none'}; lost: "
                 f"{'none' if confirmed == len(journal) else confirmed - len(journal)}")
