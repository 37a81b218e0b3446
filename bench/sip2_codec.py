"""SIP2 codec speed: our encode+decode against pysip2's, on the same messages, same run.

    .venv/bin/python -m bench.sip2_codec [--messages 70000]

The mix is ``bench.sip2_peer_codec.mix_frames()``: seven realistic UTF-8 frames as pysip2
encodes them (checkout with no-block, its answer, checkin, its answer, patron information
with 欧阳娜娜, item information answer). Ours decodes each frame and encodes the message
again (profile ``pysip2``: UTF-8, CR, checksums); pysip2 does the same with its own models.
Goal (issue [5/6]): ours ÷ pysip2's ≥ 1.0.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.sip2_peer_codec import mix_frames, peer_codec_rate  # noqa: E402
from sip2proto import PROFILES, decode, encode  # noqa: E402


def our_codec_rate(messages: int) -> float:
    """Messages/s of decode + encode over the mix (whole passes, after a warm-up pass)."""
    profile = PROFILES["pysip2"]
    frames = mix_frames()
    for frame in frames:  # warm-up, and proof the frames round-trip byte for byte
        again = encode(decode(frame, profile), profile)
        if again != frame:
            raise SystemExit(f"our codec changed a frame:\n  {frame!r}\n  {again!r}")
    passes = max(1, messages // len(frames))
    t0 = time.perf_counter()
    for _ in range(passes):
        for frame in frames:
            encode(decode(frame, profile), profile)
    return passes * len(frames) / (time.perf_counter() - t0)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=70_000)
    args = parser.parse_args(argv)
    load = os.getloadavg()
    print(f"machine: {os.cpu_count()} CPUs, load average {load[0]:.2f} (1 min)")
    ours = our_codec_rate(args.messages)
    theirs = peer_codec_rate(args.messages)
    print(f"lendbox sip2proto: {ours:,.0f} messages/s (decode + encode)")
    print(f"pysip2 0.1.0:      {theirs:,.0f} messages/s (decode + encode)")
    ratio = ours / theirs
    print(f"ratio ours ÷ pysip2 = {ratio:.2f} ({'meets' if ratio >= 1.0 else 'MISSES'} the goal ≥ 1.0)")


if __name__ == "__main__":
    main()
