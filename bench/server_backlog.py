"""Backlog after an outage: a whole fleet comes back online at once after days offline —
time until every cabinet is fully reconciled, and the server's peak memory.

    python -m bench.server_backlog [--cabinets 1000] [--days 7] [--db sqlite|postgresql]
                                   [--pushers 8] [--batch 500] [--warmup-days 1] [--seed 0]

A fresh database (``lendbox server init``, an operator), ``lendbox server run`` as a child
process on a free port, and a simulated fleet (``lendbox.fleet``) of ``--cabinets`` cabinets
registered through the staff API (one branch per 50 cabinets, 500 readers, 80 books each):

1. ``--warmup-days`` of normal, online activity, pushed (not timed): the server has the
   fleet's history and loans out when the outage starts;
2. ``--days`` of activity during which every cabinet is offline: 20–40 events per cabinet
   per day (sessions, loans to readers with due dates, returns — 15% of them books lent by
   another cabinet —, an occasional alarm), all ``offline=True``;
3. the network comes back: ``--pushers`` concurrent pushers (as many cabinets syncing at a
   time) send every outbox in signed batches of ``--batch`` until each cabinet's
   ``applied_through`` is its last seq. **Timed**: first request → last cabinet reconciled.

Printed: the backlog's size, the time to reconcile, events/s, progress every 15 s, and the
server process's peak resident memory (``VmHWM`` of /proc/PID/status; its RSS before the
backlog for comparison). Figures only; nothing is asserted.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.server_common import Databases, log_summary, machine_load, push_all, served  # noqa: E402
from lendbox.fleet import Fleet, register  # noqa: E402

PER_DAY = (20, 40)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cabinets", type=int, default=1000)
    ap.add_argument("--days", type=float, default=7.0)
    ap.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    ap.add_argument("--pushers", type=int, default=8)
    ap.add_argument("--batch", type=int, default=500)
    ap.add_argument("--warmup-days", type=float, default=1.0)
    ap.add_argument("--readers", type=int, default=500)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    print(f"machine: {machine_load()}")
    t_start = time.perf_counter()
    with Databases(args.db) as dbs, tempfile.TemporaryDirectory(prefix="lendbox-bench-log-") as tmp:
        print(f"database: {dbs.version}")
        log = Path(tmp) / "server.log"
        fleet = Fleet(args.cabinets, seed=args.seed, items_per_cabinet=80,
                      branches=max(1, args.cabinets // 50))
        with served(dbs.fresh("backlog"), log) as srv:
            t0 = time.perf_counter()
            register(srv.client, fleet, srv.token, readers=args.readers)
            print(f"registered {args.cabinets} cabinets in {len(fleet.branches)} branches "
                  f"and {args.readers} readers through the staff API in "
                  f"{time.perf_counter() - t0:.1f} s", flush=True)
            if args.warmup_days > 0:
                warm = fleet.simulate(args.warmup_days, events_per_day=PER_DAY,
                                      cross_returns=0.1)
                s, _ = push_all(srv.client, fleet.cabinets, pushers=args.pushers,
                                batch_size=args.batch)
                print(f"warm-up: {args.warmup_days:g} online day(s), {warm} events pushed "
                      f"in {s:.1f} s (not timed below)", flush=True)
            base = fleet.total_events
            backlog = fleet.simulate(args.days, events_per_day=PER_DAY, cross_returns=0.15,
                                     outage=(0, args.days))
            offline = sum(e.offline for c in fleet.cabinets for e in c.events[c.acked:])
            per_cab = backlog / args.cabinets
            print(f"outage: {args.days:g} days offline, backlog {backlog} events "
                  f"({per_cab:.0f} per cabinet, {per_cab / args.days:.1f} per cabinet-day; "
                  f"{offline} flagged offline; up to "
                  f"{-(-max(c.last_seq - c.acked for c in fleet.cabinets) // args.batch)} "
                  f"batch(es) of {args.batch} per cabinet)", flush=True)
            rss_before = srv.server.rss_kib() or 0

            def progress(elapsed: float, acked: int, done: int) -> None:
                print(f"  {elapsed:6.0f} s: {acked - base:>8} / {backlog} events applied, "
                      f"{done:>5} / {args.cabinets} cabinets reconciled, server RSS "
                      f"{(srv.server.rss_kib() or 0) / 1024:.0f} MiB", flush=True)

            seconds, results = push_all(srv.client, fleet.cabinets, pushers=args.pushers,
                                        batch_size=args.batch, progress_s=15,
                                        on_progress=progress)
            peak = srv.server.peak_rss_kib() or 0
            retries = sum(r.retries for r in results)
            requests = sum(r.requests for r in results)
        assert all(c.acked == c.last_seq for c in fleet.cabinets)
        print(log_summary(log))
        print(f"reconciled: {args.cabinets} cabinets, {backlog} events in {seconds:.1f} s "
              f"= {backlog / seconds:,.0f} events/s with {args.pushers} pushers "
              f"({requests} requests, {retries} retried 503s)")
        print(f"server memory: RSS {rss_before / 1024:.0f} MiB before the backlog, peak "
              f"(VmHWM) {peak / 1024:.0f} MiB")
    print(f"whole run (set-up, simulation, warm-up included): "
          f"{time.perf_counter() - t_start:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
