"""Polling 31 lock boards on one 9600-baud RS-485 bus: cn485, Kerong CU, and our own protocol.

Why: boards without an event buffer are polled, so the poll round sets both the bus load and
the worst-case delay before the kiosk hears of a door change. This measures, through the real
drivers against their emulators on real sockets (line rate enforced by ``BusServer``):

* one round = one status request per board (every door read once);
* the wire time of a round (the physical limit: request + reply characters at 9600 8N1);
* bus utilisation when polling at ``POLL_HZ`` = wire time per round × rounds per second;
* worst-case door-event latency = one full round (measured) vs the wire-time limit;
* unlock host overhead = measured unlock call − (board reply time + wire time), as a fraction
  of the board's reply time (goal ≤ 0.1, hardware-limits.md §6(c)).

Kerong units are addressed by a 4-bit nibble: at most 15 units share a bus (14 here, config
addresses 1..14). Its figures are measured on 14 units and also scaled to 31 (two buses' worth
of boards on one bus is not possible; the scaled figure only compares protocols).

Prints figures and ratios; asserts nothing. Run: ``.venv/bin/python bench/lockboard_polling.py``.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path
from statistics import mean
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from drivers.board import LendboxBoard
from drivers.families.cn485 import Cn485Board, cn485_transport
from drivers.families.kerong import KerongBoard, kerong_transport
from drivers.transport import BusTransport
from firmware_protocol import cn485
from firmware_protocol.codec import encode
from firmware_protocol.const import DoorFlags, UnlockOutcome
from firmware_protocol.messages import (
    Frame,
    GetStates,
    StatesReply,
    Unlock,
    UnlockReply,
)
from simulator.board import FEEDBACK_SAMPLE_S, BoardEmulator
from simulator.families.cn485 import Cn485Board as Cn485Emulator
from simulator.families.cn485 import Cn485DeviceWire
from simulator.families.kerong import KerongDeviceWire, KerongUnit
from simulator.transport import LENDBOX_DEVICE_WIRE
from tests.lockboard_helpers import cabinet, serve

BAUD = 9600
CHAR_S = 10 / BAUD
BOARDS = 31
LOCKS = 8
ROUNDS = 4
UNLOCKS = 4
POLL_HZ = 1.0
PULSE_S = 0.3


@dataclass
class Figures:
    family: str
    boards: int
    round_s: float  # measured, mean of ROUNDS
    wire_round_s: float  # request + reply characters of one round
    unlock_overhead: float  # mean host overhead / board reply time
    unlock_board_s: float

    def line(self, scale_to: int | None = None) -> str:
        k = (scale_to / self.boards) if scale_to else 1.0
        n = scale_to or self.boards
        util = self.wire_round_s * k * POLL_HZ
        max_hz = 1 / (self.round_s * k)
        return (f"{self.family:<8} {n:>3} boards{' (scaled)' if scale_to else '         '}  "
                f"wire/round {self.wire_round_s * k * 1000:7.1f} ms  measured round "
                f"{self.round_s * k * 1000:7.1f} ms  ratio {self.round_s / self.wire_round_s:5.2f}  "
                f"util@{POLL_HZ:g}Hz {util:6.1%}  max poll {max_hz:5.2f} Hz  "
                f"worst event latency {self.round_s * k * 1000:6.0f} ms (limit "
                f"{self.wire_round_s * k * 1000:5.0f} ms)")


def _measure(boards: list[Any], per_request_bytes: int, unlock_call: Any,
             unlock_wire_bytes: int, board_reply_s: float) -> tuple[float, float, float]:
    for b in boards:  # connect, warm up
        b.states()
    rounds = []
    for _ in range(ROUNDS):
        t0 = time.perf_counter()
        for b in boards:
            b.states()
        rounds.append(time.perf_counter() - t0)
    overheads = []
    for i in range(UNLOCKS):
        t0 = time.perf_counter()
        unlock_call(1 + i % LOCKS)
        took = time.perf_counter() - t0
        limit = board_reply_s + unlock_wire_bytes * CHAR_S
        overheads.append(max(0.0, took - limit) / board_reply_s)
    wire_round = len(boards) * per_request_bytes * CHAR_S
    return mean(rounds), wire_round, mean(overheads)


def bench_cn485() -> Figures:
    with serve(cabinet(boards=BOARDS, locks=LOCKS, baudrate=BAUD),
               lambda b, m: Cn485Emulator(b, m, pulse_s=PULSE_S), Cn485DeviceWire()) as s:
        t = cn485_transport(s.url)
        boards = [Cn485Board(t, a, locks=LOCKS) for a in range(1, BOARDS + 1)]
        req = len(cn485.encode_request(cn485.ReadBoard(board=1)))
        rep = 4 + boards[0].status_bytes
        board_s = PULSE_S + FEEDBACK_SAMPLE_S
        r, w, o = _measure(boards, req + rep, lambda n: boards[0].unlock(n), 10, board_s)
        t.close()
    return Figures("cn485", BOARDS, r, w, o, board_s)


def bench_kerong() -> Figures:
    units = 14
    with serve(cabinet(boards=units, locks=LOCKS, baudrate=BAUD),
               lambda b, m: KerongUnit(b, m, pulse_s=PULSE_S), KerongDeviceWire()) as s:
        t = kerong_transport(s.url, baudrate=BAUD)
        boards = [KerongBoard(t, a, locks=LOCKS, pulse_ms=round(PULSE_S * 1000))
                  for a in range(1, units + 1)]
        board_s = PULSE_S + FEEDBACK_SAMPLE_S
        r, w, o = _measure(boards, 5 + 9, lambda n: boards[0].unlock(n), 14, board_s)
        t.close()
    return Figures("kerong", units, r, w, o, board_s)


def bench_lendbox() -> Figures:
    with serve(cabinet(boards=BOARDS, locks=LOCKS, baudrate=BAUD),
               lambda b, m: BoardEmulator(b, m), LENDBOX_DEVICE_WIRE) as s:
        t = BusTransport(s.url, baudrate=BAUD)
        boards = [LendboxBoard(t, a, pulse_ms=round(PULSE_S * 1000))
                  for a in range(1, BOARDS + 1)]
        req = len(encode(Frame(address=1, seq=0, message=GetStates())))
        rep = len(encode(Frame(address=1, seq=0,
                               message=StatesReply(doors=(DoorFlags.NONE,) * LOCKS))))
        ureq = len(encode(Frame(address=1, seq=0, message=Unlock(lock=1, pulse_ms=300,
                                                                  op_id=1))))
        urep = len(encode(Frame(address=1, seq=0, message=UnlockReply(
            lock=1, op_id=1, outcome=UnlockOutcome.PULSED, door_open=True))))
        board_s = PULSE_S + FEEDBACK_SAMPLE_S
        r, w, o = _measure(boards, req + rep, lambda n: boards[0].unlock(n), ureq + urep,
                           board_s)
        t.close()
    return Figures("lendbox", BOARDS, r, w, o, board_s)


def main() -> None:
    started = time.perf_counter()
    print(f"{BOARDS} boards × {LOCKS} locks on one {BAUD}-baud 8N1 bus; one status request per "
          f"board per round; {ROUNDS} rounds, {UNLOCKS} unlocks each (pulse {PULSE_S * 1000:.0f} ms)")
    results = [bench_lendbox(), bench_cn485(), bench_kerong()]
    for f in results:
        print(f.line())
    print(results[2].line(scale_to=BOARDS))
    ref = results[0]
    for f in results[1:]:
        k = BOARDS / f.boards
        print(f"{f.family}: measured round {f.round_s * k / ref.round_s:.2f}× lendbox's, wire "
              f"time {f.wire_round_s * k / ref.wire_round_s:.2f}× (per {BOARDS} boards)")
    for f in results:
        verdict = "meets" if f.unlock_overhead <= 0.1 else "misses"
        print(f"{f.family:<8} unlock host overhead {f.unlock_overhead:.3f} × board reply time "
              f"({f.unlock_board_s * 1000:.0f} ms) — {verdict} the ≤ 0.1 goal")
    print(f"(older cn485 boards answering a read after ~200 ms, CSDN 50717517, would make a "
          f"{BOARDS}-board round ≈ {BOARDS * 0.2:.1f} s)")
    print(f"run time {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
