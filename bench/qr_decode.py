"""Compare QR (and EAN-13) decoders on the same degraded 640×480 frames; print figures, assert nothing.

    python -m bench.qr_decode [--per-kind 12] [--seed 2024]

For each installed decoder backend of ``drivers.camera`` and each degradation of
``bench.qr_images``: the share of frames decoded *correctly* (exactly the expected text; for
"none" frames, nothing) and the median / mean milliseconds per frame. Then each decoder's
median over all frames as a ratio to the fastest decoder's, measured in the same run, and a
short EAN-13 comparison (zxing-cpp, pyzbar, cv2.barcode), where "false accepts" counts
symbols with a wrong check digit that the library itself returned.

Decoders run interleaved frame by frame, after a warm-up, on the same greyscale array; the
greyscale conversion is outside the timing, since every decoder needs it.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from collections import defaultdict
from collections.abc import Callable, Iterable

import cv2
import numpy as np

from bench.qr_images import EAN_KINDS, QR_KINDS, Sample, ean_samples, qr_samples
from drivers.camera import available_backends, get_backend, is_valid_ean13, to_gray

Reader = Callable[[np.ndarray], list[str]]


def _measure(
    samples: Iterable[Sample], readers: dict[str, Reader]
) -> dict[str, dict[str, list[tuple[float, bool, list[str]]]]]:
    """reader → kind → [(ms, correct, texts)] for every sample."""
    results: dict[str, dict[str, list[tuple[float, bool, list[str]]]]] = {
        name: defaultdict(list) for name in readers
    }
    samples = list(samples)
    for read in readers.values():  # warm-up: first calls allocate and load tables
        for sample in samples[:2]:
            read(to_gray(sample.frame))
    for sample in samples:
        gray = to_gray(sample.frame)
        expected = [] if sample.expected is None else [sample.expected]
        for name, read in readers.items():
            start = time.perf_counter_ns()
            texts = read(gray)
            ms = (time.perf_counter_ns() - start) / 1e6
            results[name][sample.kind].append((ms, list(dict.fromkeys(texts)) == expected, texts))
    return results


def _cell(rows: list[tuple[float, bool, list[str]]]) -> str:
    rate = 100 * sum(ok for _, ok, _ in rows) / len(rows)
    ms = [m for m, _, _ in rows]
    return f"{rate:5.0f}% {statistics.median(ms):6.1f} {statistics.fmean(ms):6.1f}"


def _print_table(
    title: str, kinds: Iterable[str], results: dict[str, dict[str, list]], per_kind: int
) -> dict[str, float]:
    names = list(results)
    width = 22
    print(f"\n{title} — per cell: correct %, median ms, mean ms ({per_kind} frames per row)")
    print(f"{'degradation':<12}" + "".join(f"{n:>{width}}" for n in names))
    for kind in kinds:
        print(f"{kind:<12}" + "".join(f"{_cell(results[n][kind]):>{width}}" for n in names))
    overall = {n: [r for rows in results[n].values() for r in rows] for n in names}
    print(f"{'overall':<12}" + "".join(f"{_cell(overall[n]):>{width}}" for n in names))
    wrong = {n: sum(bool(t) and not ok for _, ok, t in overall[n]) for n in names}
    print(f"{'wrong text':<12}" + "".join(f"{wrong[n]:>{width}}" for n in names)
          + "   (frames where a decoder returned a text that is not the one shown)")
    return {n: statistics.median(m for m, _, _ in overall[n]) for n in names}


def _print_ratios(medians: dict[str, float]) -> None:
    fastest = min(medians, key=medians.__getitem__)
    print(f"median time / fastest ({fastest}, {medians[fastest]:.2f} ms):")
    for name, med in sorted(medians.items(), key=lambda kv: kv[1]):
        print(f"  {name:<14} {med:8.2f} ms   {med / medians[fastest]:6.2f}×")


def _ean_readers() -> dict[str, Reader]:
    readers: dict[str, Reader] = {}
    names = available_backends()
    if "zxing-cpp" in names:
        readers["zxing-cpp"] = get_backend("zxing-cpp").ean13
    if "pyzbar" in names:
        readers["pyzbar"] = get_backend("pyzbar").ean13
    readers["cv2.barcode"] = get_backend("opencv").ean13
    return readers


def main(argv: list[str] | None = None) -> None:
    """Run the comparison and print it."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-kind", type=int, default=12, help="QR frames per degradation")
    parser.add_argument("--ean-per-kind", type=int, default=8, help="EAN frames per kind")
    parser.add_argument("--seed", type=int, default=2024)
    args = parser.parse_args(argv)

    cv2.setNumThreads(1)  # decoders compared single-threaded, as the kiosk runs them
    print(f"python {platform.python_version()}, OpenCV {cv2.__version__}, "
          f"{platform.machine()}, {platform.processor() or 'cpu n/a'}; seed {args.seed}")
    qr_readers = {name: get_backend(name).qr for name in available_backends()}
    results = _measure(qr_samples(args.per_kind, args.seed), qr_readers)
    medians = _print_table("QR reader cards", QR_KINDS, results, args.per_kind)
    _print_ratios(medians)

    ean_readers = _ean_readers()
    ean_list = list(ean_samples(args.ean_per_kind, args.seed))
    ean_results = _measure(ean_list, ean_readers)
    ean_medians = _print_table("EAN-13 / ISBN", EAN_KINDS, ean_results, args.ean_per_kind)
    _print_ratios(ean_medians)
    for name in ean_readers:
        wrong = ean_results[name]["wrong_check"]
        false_accepts = sum(any(not is_valid_ean13(t) for t in texts) for _, _, texts in wrong)
        print(f"  {name:<14} false accepts of wrong check digits by the library: "
              f"{false_accepts}/{len(wrong)} (the driver re-validates anyway)")


if __name__ == "__main__":
    main()
