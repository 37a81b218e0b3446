"""Skipping the frames a live camera stream queued while nobody looked.

The kiosk looks for a QR code every 0.3 s, and not at all during a session; a live stream
(an MJPEG URL, a device) keeps delivering meanwhile, and the frames wait in the socket and
the decoder. Reading "the next frame" then shows what the camera saw seconds ago: an earlier
reader's phone, whose used QR code is refused as replayed.

The only signal a stream gives is how long a read takes: a frame already queued costs its
decode, a read that waited for the camera costs up to one frame interval more. A fixed
threshold between the two breaks on a loaded PC, where the decode alone can exceed it and the
drain stops after one stale frame. So the threshold follows the decode time: the fastest of
the recent reads (a queued frame: pure decode) plus :attr:`FrameDrain.margin_s`, never below
:attr:`FrameDrain.floor_s` (which alone decides on a PC that decodes in under 20 ms, as the
fixed threshold did). A waited read takes the decode plus part of a frame interval; when
decoding takes nearly a whole interval the two cannot be told apart, and a time budget
bounds the look.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import Protocol

__all__ = ["FrameDrain", "FrameSource"]


class FrameSource(Protocol):
    """What the drain needs of a camera: read (and decode) the next frame."""

    def read_frame(self) -> object: ...


class FrameDrain:
    """Reads queued frames until a read had to wait for the camera.

    Args:
        floor_s: the threshold when decoding is fast (a waited read takes longer than this).
        margin_s: a read slower than the fastest recent read by more than this waited for
            the camera (a multiple would not do: at 30 fps and 17 ms a decode, twice the
            decode is longer than a whole frame interval).
        max_frames: frames skipped at most per look.
        budget_s: time spent skipping at most per look.
        window: how many recent reads the fastest one is taken from.
        clock: monotonic seconds (tests pass their own).
    """

    def __init__(self, *, floor_s: float = 0.03, margin_s: float = 0.01, max_frames: int = 100,
                 budget_s: float = 3.0, window: int = 30,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if floor_s <= 0 or margin_s <= 0 or max_frames < 1 or budget_s <= 0 or window < 1:
            raise ValueError("floor_s, margin_s, budget_s > 0; max_frames, window >= 1")
        self.floor_s = floor_s
        self.margin_s = margin_s
        self.max_frames = max_frames
        self.budget_s = budget_s
        self._recent: deque[float] = deque(maxlen=window)
        self._clock = clock

    @property
    def threshold_s(self) -> float:
        """A read longer than this waited for the camera (the queue was empty)."""
        if not self._recent:
            return self.floor_s
        return max(self.floor_s, min(self._recent) + self.margin_s)

    def skip_queued(self, camera: FrameSource) -> int:
        """Read frames until one was waited for (it is then the newest); how many were read."""
        start = self._clock()
        for n in range(1, self.max_frames + 1):
            limit = self.threshold_s
            began = self._clock()
            camera.read_frame()
            took = self._clock() - began
            self._recent.append(took)
            if took > limit or self._clock() - start >= self.budget_s:
                return n
        return self.max_frames
