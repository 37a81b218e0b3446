"""Encode and decode throughput of the lendbox board codec against the wire it serves.

A host at 115200 baud 8N1 receives at most 11,520 bytes/s; the codec should cost well under
1 % of a core at that rate, i.e. run at ≥ 100× the wire. Prints figures, asserts nothing.

    .venv/bin/python bench/codec_throughput.py [--seconds 2] [--seed 1]
"""

from __future__ import annotations

import argparse
import random
import time

from firmware_protocol import (
    NEED_DATA,
    BoardEvent,
    DoorFlags,
    EventsReply,
    EventType,
    Frame,
    FrameDecoder,
    GetStates,
    Inventory,
    InventoryReply,
    ReadEvents,
    StatesReply,
    TagReport,
    Unlock,
    UnlockOutcome,
    UnlockReply,
    encode,
)

WIRE_RATE = 115200 / 10  # bytes/s: 8N1 is 10 bits a byte
GOAL = 100.0


def realistic_mix(rng: random.Random, n: int) -> list[Frame]:
    """Polling traffic of a 24-door cabinet: states and events polls with their replies,
    an unlock now and then, and inventory rounds returning full 24-tag pages."""
    frames: list[Frame] = []
    for i in range(n):
        seq, addr = i & 0xFF, rng.randint(1, 4)
        kind = i % 8
        if kind == 0:
            frames.append(Frame(address=addr, seq=seq, message=GetStates()))
            frames.append(Frame(address=addr, seq=seq, message=StatesReply(
                doors=tuple(DoorFlags(rng.choice((0, 1, 3))) for _ in range(24)))))
        elif kind == 1:
            frames.append(Frame(address=addr, seq=seq, message=ReadEvents(cursor=i)))
            frames.append(Frame(address=addr, seq=seq, message=EventsReply(
                oldest_seq=i, next_seq=i + 6, events=tuple(
                    BoardEvent(seq=i + k, kind=rng.choice(list(EventType)), lock=k + 1,
                               uptime_ms=rng.getrandbits(32)) for k in range(6)))))
        elif kind == 2:
            frames.append(Frame(address=addr, seq=seq,
                                message=Unlock(lock=rng.randint(1, 24), pulse_ms=500, op_id=i)))
            frames.append(Frame(address=addr, seq=seq, message=UnlockReply(
                lock=1, op_id=i, outcome=UnlockOutcome.PULSED, door_open=True)))
        else:
            frames.append(Frame(address=addr, seq=seq, message=Inventory(antenna=1, page=0)))
            frames.append(Frame(address=addr, seq=seq, message=InventoryReply(
                antenna=1, page=0, pages=1, total_tags=24, tags=tuple(
                    TagReport(uid=rng.randbytes(8), dsfid=0, rssi=-rng.randint(30, 80))
                    for _ in range(24)))))
    return frames


def measure_encode(frames: list[Frame], seconds: float) -> float:
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for frame in frames:
            done += len(encode(frame))
    return done / (time.perf_counter() - start)


def measure_decode(stream: bytes, chunks: list[int], seconds: float) -> tuple[float, int]:
    done = frames = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        decoder = FrameDecoder()
        pos = 0
        for size in chunks:
            decoder.feed(stream[pos:pos + size])
            pos += size
            while decoder.next_event() is not NEED_DATA:
                pass
        done += len(stream)
        frames += decoder.frames
    return done / (time.perf_counter() - start), frames


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    frames = realistic_mix(rng, 400)
    stream = b"".join(encode(f) for f in frames)
    chunks: list[int] = []
    while sum(chunks) < len(stream):
        chunks.append(rng.randint(1, 512))
    print(f"mix: {len(frames)} frames, {len(stream)} bytes, mean frame "
          f"{len(stream) / len(frames):.0f} bytes, decoded in {len(chunks)} random chunks "
          f"(1..512 bytes)")
    print(f"wire: 115200 baud 8N1 = {WIRE_RATE:,.0f} bytes/s; goal ≥ {GOAL:.0f}× the wire")
    for label, rate in (("encode", measure_encode(frames, args.seconds)),
                        ("decode", measure_decode(stream, chunks, args.seconds)[0])):
        ratio = rate / WIRE_RATE
        verdict = "meets goal" if ratio >= GOAL else "BELOW GOAL"
        print(f"{label}: {rate:,.0f} bytes/s = {ratio:,.0f}× the wire — {verdict}")


if __name__ == "__main__":
    main()
