"""Sync ingest throughput: events/s through the real ``POST /v1/sync`` + engine, ÷ a raw bulk
insert of the same rows into the events table.

    python -m bench.server_ingest [--events 20000] [--db sqlite|postgresql|both]
                                  [--cabinets 20] [--pushers 4] [--batch 500] [--seed 0]

Per database kind, in one run:

- **through HTTP**: a fresh database (``lendbox server init``, an operator from
  ``create-admin``), ``lendbox server run`` as a child process on a free port, a simulated
  fleet (``lendbox.fleet``: ``--cabinets`` cabinets registered through the staff API, 50
  readers, about 30 events per cabinet-day of sessions, loans, returns — 10% at another
  cabinet — and alarms, until ``--events``) pushed by ``--pushers`` threads in signed
  batches of ``--batch``: every event stored, applied (item state, the engine's checks,
  holds and routing hooks), replied to with deltas. Timed from the first request to the
  last reply; the fleet's simulation and registration are not in the figure.
- **raw**: a fresh database of the same kind, the same event rows bulk-inserted with
  SQLAlchemy Core ``executemany``, ``--batch`` rows per transaction (the same commit
  granularity), no HTTP, no signature, no engine.

Goal: HTTP ÷ raw ≥ 0.3. PostgreSQL is a throwaway cluster (the tests' ``PgCluster``, with
``fsync=off`` as in the tests), stopped and deleted at the end; SQLite a WAL file in a
temporary folder. Figures only; nothing is asserted.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.server_common import Databases, log_summary, machine_load, push_all, raw_insert, served  # noqa: E402
from lendbox.fleet import Fleet, register  # noqa: E402

GOAL = 0.3
PER_DAY = (20, 40)




def run_kind(kind: str, args: argparse.Namespace) -> dict[str, float]:
    print(f"\n== {kind} ==")
    with Databases(kind) as dbs, tempfile.TemporaryDirectory(prefix="lendbox-bench-log-") as tmp:
        print(f"database: {dbs.version}")
        log = Path(tmp) / "server.log"
        fleet = Fleet(args.cabinets, seed=args.seed, items_per_cabinet=80, branches=4)
        with served(dbs.fresh("ingest"), log) as srv:
            register(srv.client, fleet, srv.token, readers=50)
            days = 0.0
            while fleet.total_events < args.events:
                fleet.simulate(1, events_per_day=PER_DAY, cross_returns=0.1)
                days += 1
            total = fleet.total_events
            print(f"fleet: {args.cabinets} cabinets, {days:.0f} simulated days, {total} "
                  f"events; {args.pushers} pushers, batches of {args.batch}")
            seconds, results = push_all(srv.client, fleet.cabinets, pushers=args.pushers,
                                        batch_size=args.batch)
            requests = sum(r.requests for r in results)
            retries = sum(r.retries for r in results)
            rss = srv.server.peak_rss_kib()
        assert all(c.acked == c.last_seq for c in fleet.cabinets)
        print(log_summary(log))
        http_rate = total / seconds
        print(f"through HTTP: {total} events in {seconds:.2f} s = {http_rate:,.0f} events/s "
              f"({requests} requests, {retries} retried 503s; server peak RSS "
              f"{(rss or 0) / 1024:.0f} MiB)")
        raw_s, rows = raw_insert(dbs.fresh("raw"), fleet, batch_size=args.batch)
        raw_rate = rows / raw_s
        print(f"raw executemany: {rows} rows in {raw_s:.2f} s = {raw_rate:,.0f} rows/s")
        ratio = http_rate / raw_rate
        verdict = "meets" if ratio >= GOAL else "MISSES"
        print(f"ratio HTTP ÷ raw = {ratio:.3f} ({verdict} the goal ≥ {GOAL})")
        return {"http": http_rate, "raw": raw_rate, "ratio": ratio}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=20_000)
    ap.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    ap.add_argument("--cabinets", type=int, default=20)
    ap.add_argument("--pushers", type=int, default=4)
    ap.add_argument("--batch", type=int, default=500)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    print(f"machine: {machine_load()}")
    kinds = ["sqlite", "postgresql"] if args.db == "both" else [args.db]
    figures = {kind: run_kind(kind, args) for kind in kinds}
    print("\nsummary:")
    for kind, f in figures.items():
        print(f"  {kind:10s} HTTP {f['http']:8,.0f} ev/s   raw {f['raw']:9,.0f} rows/s   "
              f"ratio {f['ratio']:.3f} (goal ≥ {GOAL})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
