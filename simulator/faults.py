"""Link faults of one bus: garbled bytes, dropped frames, late answers, unplugged cable.

Why seeded: a failing test must be repeatable, so every random choice comes from one
``random.Random`` per bus whose seed is part of the fault settings.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field

__all__ = ["LinkFaults"]


@dataclass(slots=True)
class LinkFaults:
    """Fault settings of one bus and the random source that applies them.

    Attributes:
        garble_rate: probability that any one byte, in either direction, gets one bit flipped.
        drop_rate: probability that a request is not heard or (same probability) that the
            board's reply vanishes after the board acted on the request.
        delay_ms: extra time before every reply starts (a slow or overloaded board).
        unplugged: the cable is out: TCP connections are closed and refused, pty input ignored.
        seed: seed of the random source (None: 0).
    """

    garble_rate: float = 0.0
    drop_rate: float = 0.0
    delay_ms: float = 0.0
    unplugged: bool = False
    seed: int | None = None
    _rng: random.Random = field(default_factory=random.Random, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        self.configure(self.garble_rate, self.drop_rate, self.delay_ms, self.seed)

    def configure(
        self, garble_rate: float = 0.0, drop_rate: float = 0.0, delay_ms: float = 0.0,
        seed: int | None = None,
    ) -> None:
        """Replace the settings (validated) and reseed the random source."""
        for name, rate in (("garble_rate", garble_rate), ("drop_rate", drop_rate)):
            if not isinstance(rate, (int, float)) or not 0.0 <= rate <= 1.0:
                raise ValueError(f"{name} must be a number in 0..1, got {rate!r}")
        if not isinstance(delay_ms, (int, float)) or not 0 <= delay_ms <= 60_000:
            raise ValueError(f"delay_ms must be a number in 0..60000, got {delay_ms!r}")
        if seed is not None and not isinstance(seed, int):
            raise ValueError(f"seed must be an integer, got {seed!r}")
        with self._lock:
            self.garble_rate = float(garble_rate)
            self.drop_rate = float(drop_rate)
            self.delay_ms = float(delay_ms)
            self.seed = seed
            self._rng.seed(0 if seed is None else seed)

    def garble(self, data: bytes) -> tuple[bytes, int]:
        """Flip one random bit in each byte with probability ``garble_rate``.

        Returns:
            the (possibly) altered bytes and how many bytes were altered.
        """
        if self.garble_rate <= 0.0 or not data:
            return data, 0
        out = bytearray(data)
        hit = 0
        with self._lock:
            for i in range(len(out)):
                if self._rng.random() < self.garble_rate:
                    out[i] ^= 1 << self._rng.randrange(8)
                    hit += 1
        return bytes(out), hit

    def drop(self) -> bool:
        """Whether the next frame (request or reply) is lost."""
        if self.drop_rate <= 0.0:
            return False
        with self._lock:
            return self._rng.random() < self.drop_rate

    def as_dict(self) -> dict[str, object]:
        """The settings, JSON-ready."""
        return {
            "garble_rate": self.garble_rate,
            "drop_rate": self.drop_rate,
            "delay_ms": self.delay_ms,
            "unplugged": self.unplugged,
            "seed": self.seed,
        }
