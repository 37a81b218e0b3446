"""Crash trials at scale: kill -9 the kiosk at random points of random sessions (and cut the
lock board's power in a quarter of them), restart, and count lost and phantom loans.

    python -m bench.crash_trials [--trials 500] [--workers 4] [--seed 0]

Each worker runs its own simulator and kiosk in its own folder; the trials are split
between them. Goal: 0 lost, 0 phantom. Prints progress and one summary line per worker.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lendbox.crashtrial import CrashTrials  # noqa: E402


def _worker(seed: int, n: int) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="lendbox-crash-") as tmp:
        t0 = time.monotonic()
        with CrashTrials(Path(tmp), seed=seed) as trials:
            outcomes = trials.run(n)
        bad = [f"trial {o.trial} ({o.kind}, {o.crash}): lost {o.lost} phantom {o.phantom} "
               f"{o.problems}" for o in outcomes if not o.ok]
        return {"seed": seed, "trials": len(outcomes), "lost": sum(len(o.lost) for o in outcomes),
                "phantom": sum(len(o.phantom) for o in outcomes),
                "recovered": sum(o.recovered for o in outcomes),
                "power_cuts": sum("power" in o.crash for o in outcomes),
                "kinds": {k: sum(o.kind == k for o in outcomes) for k in ("borrow", "return")},
                "failures": bad, "seconds": time.monotonic() - t0}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=500)
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    per = [args.trials // args.workers + (i < args.trials % args.workers)
           for i in range(args.workers)]
    t0 = time.monotonic()
    totals = {"trials": 0, "lost": 0, "phantom": 0, "recovered": 0, "power_cuts": 0}
    failures: list[str] = []
    with ProcessPoolExecutor(args.workers) as pool:
        futures = [pool.submit(_worker, args.seed * 1000 + i, n) for i, n in enumerate(per)]
        for fut in as_completed(futures):
            r = fut.result()
            for k in totals:
                totals[k] += int(r[k])  # type: ignore[call-overload]
            failures += r["failures"]  # type: ignore[arg-type]
            print(f"worker seed {r['seed']}: {r['trials']} trials {r['kinds']} in "
                  f"{r['seconds']:.0f} s — lost {r['lost']}, phantom {r['phantom']}, "
                  f"intents recovered {r['recovered']}, power cuts {r['power_cuts']}",
                  flush=True)
    for f in failures:
        print("FAILED", f)
    print(f"crash trials: {totals['trials']} (power cuts {totals['power_cuts']}, open intents "
          f"recovered {totals['recovered']}) in {time.monotonic() - t0:.0f} s: "
          f"lost loans {totals['lost']}, phantom loans {totals['phantom']} (goal 0, 0)")
    return 0 if not failures else 1


if __name__ == "__main__":
    sys.exit(main())
