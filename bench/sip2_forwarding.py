"""SIP2 forwarding speed: outbox transactions/s to the emulated ILS over loopback, one
connection and the pool, ÷ raw request/answer round trips of the same messages, same run.

    .venv/bin/python -m bench.sip2_forwarding [--transactions 2000] [--pool 4] [--profile generic]

The emulator is :class:`simulator.ils_sim.IlsSim` **in this process** (its own threads, on a
free port of 127.0.0.1): the demo library (``demo_library()``: its six readers, the blocked
one and the hold included) with copies added in the same id scheme until every checkout has a
copy of its own. So the emulator's threads share this process's GIL with the client — on a
small machine the figures are the client's *and* the emulator's Python time.

The transactions are what a cabinet back from an outage forwards: ``N/2`` offline checkouts
(no-block = Y, the original transaction date, the cabinet's due date) of distinct copies to
the emulator's readers in turn, then the ``N/2`` checkins of those copies (offline, with their
return date). Each measurement gets a fresh emulator and, for the outbox runs, a fresh SQLite
outbox (``server.migrate.upgrade`` + ``server.db.make_engine``, a WAL file in a temporary
folder); queueing the rows is not timed.

- **(a) one connection**: ``SIP2Client(size=1)`` → ``SIP2IlsPort`` → one ``Forwarder.drain()``.
- **(b) the pool**: ``SIP2Client(size=P)`` shared by ``P`` forwarder threads. ``Forwarder``
  itself must not run twice on one outbox (two would pick the same due rows and both send
  them), so each thread drives a forwarder restricted to its own disjoint share of the copies
  (the rows are queued with ``cabinet_id`` = the share; ``_ShareForwarder`` reads only that
  share's due rows and then takes the real ``Forwarder._step``, the durable steps
  unchanged). They share the one SQLite file, whose writes ``write_tx`` serialises.
- **(c) raw**: the same checkouts and checkins through ``SIP2Client.checkout`` / ``checkin``
  (``client.request``) on one connection: no outbox, no database.
- **(d) the outbox alone**, to show where (a)'s time goes: one ``Forwarder.drain()`` on a
  fresh outbox into ``_NoIls``, a port that answers ok at once (no SIP2, no socket).

At the end of each run the emulator's journal must hold exactly the N applications (one
checkout and one checkin per copy) and the outbox N confirmed rows; a mismatch is printed
and makes the exit status 1. Figures only; no timing is asserted.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import sip2proto  # noqa: E402
from server import ils_outbox  # noqa: E402
from server.db import make_engine, write_tx  # noqa: E402
from server.ils_outbox import Entry, Forwarder, IlsAnswer, IlsItemView, IlsUnreachable, _entry  # noqa: E402
from server.ils_port import SIP2IlsPort  # noqa: E402
from server.migrate import upgrade  # noqa: E402
from server.schema import ils_outbox as outbox_table  # noqa: E402
from server.sip2_client import ClientConfig, SIP2Client  # noqa: E402
from simulator.ils_library import Copy, Library, demo_library  # noqa: E402
from simulator.ils_sim import IlsSim  # noqa: E402
from sqlalchemy import Engine, select  # noqa: E402

#: the cabinet lent these while offline, three days ago; the reader's due date 30 days later
T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(days=3)


@dataclass(frozen=True, slots=True)
class Tx:
    kind: str  # checkout | checkin
    item_id: str
    reader_id: str | None
    at: datetime
    due: str | None
    share: int


def library_for(copies: int) -> Library:
    """The demo library, with copies added (``39010000NNNNN``) up to ``copies``."""
    lib = demo_library()
    titles = [c.title for c in list(lib.copies.values())[:8]]
    for n in range(len(lib.copies), copies):
        item_id = f"39010000{n:05d}"
        lib.copies[item_id] = Copy(item_id, titles[n % len(titles)],
                                   "sz-city" if n % 2 else "sz-county")
    return lib


def plan(transactions: int, shares: int) -> list[Tx]:
    """``transactions // 2`` offline checkouts of distinct copies, then their checkins."""
    readers = sorted(demo_library().readers)
    n_items = transactions // 2
    items = [f"39010000{n:05d}" for n in range(n_items)]
    out = [Tx("checkout", item, readers[k % len(readers)], T0 + timedelta(seconds=k),
              (T0 + timedelta(days=30)).date().isoformat(), k % shares)
           for k, item in enumerate(items)]
    back = T0 + timedelta(days=1)
    out += [Tx("checkin", item, None, back + timedelta(seconds=k), None, k % shares)
            for k, item in enumerate(items)]
    return out


def fresh_outbox(folder: Path, name: str, txs: list[Tx]) -> Engine:
    url = f"sqlite:///{folder / name}"
    upgrade(url)
    engine = make_engine(url)
    now = datetime.now(UTC)
    with write_tx(engine) as conn:
        for tx in txs:
            ils_outbox.enqueue(conn, kind=tx.kind, source=str(uuid.uuid4()), item_id=tx.item_id,
                               reader_id=tx.reader_id, cabinet_id=f"share-{tx.share}",
                               transaction_at=tx.at, due=tx.due, offline=True, now=now)
    return engine


def config(sim: IlsSim, profile: str) -> ClientConfig:
    return ClientConfig(host=sim.host, port=sim.port, user="lendbox", password="lendbox",
                        location="sz-city", institution_id="LENDBOX",
                        profile=sip2proto.PROFILES[profile], timeout_s=10.0, heartbeat_s=None)


class _ShareForwarder(Forwarder):
    """A Forwarder that only sees the rows of one share (``cabinet_id``): the same rule as
    ``due_entries`` (each item's earliest unfinished row, oldest first) on that share."""

    share: str = ""

    def due(self) -> list[Entry]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(outbox_table).where(outbox_table.c.status.in_(("pending", "sent")),
                                           outbox_table.c.cabinet_id == self.share)
                .order_by(outbox_table.c.transaction_at, outbox_table.c.id)
                .limit(self.batch * 4)).all()
        seen: set[str] = set()
        out: list[Entry] = []
        for row in rows:
            if row.item_id not in seen:
                seen.add(row.item_id)
                out.append(_entry(row))
        return out[:self.batch]

    def drain_share(self) -> dict[str, int]:
        total: Counter[str] = Counter()
        while todo := self.due():
            for entry in todo:
                try:
                    self._step(entry, total)  # type: ignore[arg-type]
                except IlsUnreachable:
                    total["unreachable"] += 1
                    return dict(total)
        return dict(total)


class _NoIls:
    """An IlsPort that confirms everything at once: the outbox's own cost, no wire."""

    def send(self, entry: Entry) -> IlsAnswer:
        return IlsAnswer(ok=True)

    def lookup(self, entry: Entry) -> IlsItemView:
        raise AssertionError("nothing is uncertain without a wire")


def run_outbox_alone(folder: Path, txs: list[Tx]) -> Result:
    """(d) the durable steps of (a) without the ILS."""
    engine = fresh_outbox(folder, "outbox-alone.db", txs)
    try:
        t0 = time.perf_counter()
        Forwarder(engine, _NoIls()).drain(max_passes=10 * len(txs))
        seconds = time.perf_counter() - t0
        with engine.connect() as conn:
            counts = ils_outbox.counts(conn)
    finally:
        engine.dispose()
    problems = [] if counts == {"confirmed": len(txs)} else [f"outbox {counts}"]
    return Result("outbox alone", seconds, len(txs), problems)


@dataclass
class Result:
    label: str
    seconds: float
    transactions: int
    problems: list[str]

    @property
    def rate(self) -> float:
        return self.transactions / self.seconds


def check(sim: IlsSim, txs: list[Tx], engine: Engine | None) -> list[str]:
    """The emulator applied exactly ``txs`` (and the outbox confirmed them all)."""
    problems: list[str] = []
    journal = sim.journal()
    want = Counter((tx.kind, tx.item_id) for tx in txs)
    got = Counter((j["op"], j["item_id"]) for j in journal)
    if len(journal) != len(txs) or got != want:
        problems.append(f"journal holds {len(journal)} applications, expected {len(txs)} "
                        f"({sum((got - want).values())} unexpected, "
                        f"{sum((want - got).values())} missing)")
    if engine is not None:
        with engine.connect() as conn:
            counts = ils_outbox.counts(conn)
        if counts != {"confirmed": len(txs)}:
            problems.append(f"outbox {counts}, expected {{'confirmed': {len(txs)}}}")
    return problems


def run_outbox(folder: Path, txs: list[Tx], copies: int, profile: str, pool: int) -> Result:
    """(a) with ``pool == 1`` (one forwarder), (b) with ``pool`` forwarder threads."""
    engine = fresh_outbox(folder, f"outbox-{pool}.db", txs)
    try:
        with IlsSim(library_for(copies), profile=profile) as sim:
            with SIP2Client(config(sim, profile), size=pool) as client:
                port = SIP2IlsPort(client)
                if pool == 1:
                    t0 = time.perf_counter()
                    Forwarder(engine, port).drain(max_passes=10 * len(txs))
                    seconds = time.perf_counter() - t0
                else:
                    forwarders = []
                    for k in range(pool):
                        fw = _ShareForwarder(engine, port)
                        fw.share = f"share-{k}"
                        forwarders.append(fw)
                    errors: list[BaseException] = []

                    def work(fw: _ShareForwarder) -> None:
                        try:
                            fw.drain_share()
                        except BaseException as exc:  # reported below, not lost in a thread
                            errors.append(exc)

                    threads = [threading.Thread(target=work, args=(fw,), name=fw.share)
                               for fw in forwarders]
                    t0 = time.perf_counter()
                    for t in threads:
                        t.start()
                    for t in threads:
                        t.join()
                    seconds = time.perf_counter() - t0
                    if errors:
                        raise errors[0]
            problems = check(sim, txs, engine)
    finally:
        engine.dispose()
    label = "one connection" if pool == 1 else f"pool of {pool}"
    return Result(label, seconds, len(txs), problems)


def run_raw(txs: list[Tx], copies: int, profile: str) -> Result:
    """(c) the same checkouts and checkins as plain requests on one connection."""
    with IlsSim(library_for(copies), profile=profile) as sim:
        with SIP2Client(config(sim, profile), size=1) as client:
            client.item_information(txs[0].item_id)  # log in before the clock starts
            refused = 0
            t0 = time.perf_counter()
            for tx in txs:
                if tx.kind == "checkout":
                    answer = client.checkout(
                        tx.reader_id or "", tx.item_id, transaction_date=tx.at, no_block=True,
                        nb_due_date=datetime.fromisoformat(f"{tx.due}T23:59:59"))
                else:
                    answer = client.checkin(tx.item_id, transaction_date=datetime.now(UTC),
                                            return_date=tx.at, no_block=True)
                refused += answer.get_fixed("ok") != "1"
            seconds = time.perf_counter() - t0
        problems = check(sim, txs, None)
        if refused:
            problems.append(f"{refused} requests refused by the emulator")
    return Result("raw round trips", seconds, len(txs), problems)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--transactions", type=int, default=2000,
                        help="N: N/2 checkouts + N/2 checkins (default 2000)")
    parser.add_argument("--pool", type=int, default=4,
                        help="connections and forwarder threads of run (b) (default 4)")
    parser.add_argument("--profile", default="generic", choices=sorted(sip2proto.PROFILES))
    args = parser.parse_args(argv)
    if args.transactions < 2 or args.pool < 2:
        parser.error("--transactions must be ≥ 2 and --pool ≥ 2")
    n = args.transactions - args.transactions % 2
    copies = max(n // 2, len(demo_library().copies))
    load = os.getloadavg()
    print(f"machine: {os.cpu_count()} CPUs, load average {load[0]:.2f} (1 min)")
    print(f"{n:,} transactions ({n // 2:,} offline checkouts with no-block and due date, "
          f"{n // 2:,} checkins), profile {args.profile}, emulator IlsSim in-process on "
          f"127.0.0.1, outbox SQLite (WAL) in a temporary folder")
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="lendbox-sip2-fwd-") as tmp:
        folder = Path(tmp)
        results.append(run_outbox(folder, plan(n, 1), copies, args.profile, 1))
        results.append(run_outbox(folder, plan(n, args.pool), copies, args.profile, args.pool))
        results.append(run_outbox_alone(folder, plan(n, 1)))
    results.append(run_raw(plan(n, 1), copies, args.profile))
    raw = results[-1].rate
    for r in results:
        print(f"{r.label:>16}: {r.rate:8,.0f} transactions/s ({r.seconds:.2f} s, "
              f"{1000 * r.seconds / r.transactions:.2f} ms each) — ÷ raw {r.rate / raw:.2f}")
    one, pooled = results[0].rate, results[1].rate
    print(f"pool of {args.pool} ÷ one connection = {pooled / one:.2f}")
    bad = [(r.label, p) for r in results for p in r.problems]
    for label, p in bad:
        print(f"MISMATCH in {label}: {p}")
    if not bad:
        print(f"emulator journals: exactly {n:,} applications in each run; outboxes: "
              f"{n:,} confirmed")
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
