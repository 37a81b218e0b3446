"""Skipping a live stream's queued frames (kiosk.camera_drain), on a stream with a virtual clock.

What a reader notices: the QR code the kiosk decodes is the phone in front of the camera now,
not one shown seconds ago (an earlier reader's used code, refused as replayed) — also when
the kiosk PC is so loaded that decoding one frame takes longer than 30 ms.
"""

from __future__ import annotations

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from kiosk.camera_drain import FrameDrain


class Stream:
    """A camera delivering frame ``i`` at ``i * interval`` seconds; a read takes the next
    undelivered-to-us frame (waiting for it if it has not arrived) and ``decode`` seconds."""

    def __init__(self, interval: float, decode: float) -> None:
        self.interval = interval
        self.decode = decode
        self.now = 0.0
        self.next_frame = 0

    def clock(self) -> float:
        return self.now

    def arrived(self) -> int:
        """The newest frame the camera has sent so far."""
        return int(self.now / self.interval + 1e-9)

    def read_frame(self) -> int:
        i = self.next_frame
        self.now = max(self.now, i * self.interval) + self.decode
        self.next_frame += 1
        return i

    def idle(self, seconds: float) -> None:
        self.now += seconds


def look(stream: Stream, drain: FrameDrain) -> tuple[int, int]:
    """One look of the watcher: skip, then read the frame it decodes; (frame, newest sent
    when that frame's read began)."""
    drain.skip_queued(stream)
    newest = stream.arrived()
    return stream.read_frame(), newest


@given(interval=st.sampled_from([1 / 30, 1 / 15, 1 / 10]),
       load=st.floats(0.02, 0.8), gap=st.floats(0.0, 3.0))
@settings(max_examples=300, deadline=None)
def test_the_frame_decoded_is_the_newest_whatever_the_decode_time(
        interval: float, load: float, gap: float) -> None:
    decode = load * interval
    # what the drain can tell apart: a waited read is longer than a queued one by more than
    # the margin (the decode leaves time to wait in each interval) ...
    assume(decode + 0.01 < interval * 0.9)
    # ... and what one look can catch up: each read takes a frame and `load` more arrive
    reads = (gap + 1) / interval / (1 - load)
    assume(reads < 180 and reads * decode < 4.5)
    stream = Stream(interval, decode=decode)
    drain = FrameDrain(clock=stream.clock, budget_s=5.0, max_frames=200)
    for _ in range(3):  # the watcher's steady rhythm: a look every 0.3 s
        look(stream, drain)
        stream.idle(0.3)
    stream.idle(gap)  # a session: nobody looked
    frame, newest = look(stream, drain)
    # the decoded frame is at most the one being sent now: nothing older was left queued
    assert frame >= newest - 1, (frame, newest)


def test_a_loaded_pc_still_skips_the_queue() -> None:
    """45 ms per decode at 10 fps: over the fixed 30 ms the drain once used, which stopped
    after one frame and decoded a picture 2.5 s old."""
    stream = Stream(0.1, decode=0.045)
    drain = FrameDrain(clock=stream.clock)
    look(stream, drain)
    stream.idle(3.0)
    frame, newest = look(stream, drain)
    assert newest - frame <= 1
    assert drain.threshold_s == pytest.approx(0.055)


def test_30_fps_with_a_17_ms_decode_stops_at_the_first_waited_read() -> None:
    """Twice the decode would be longer than a frame interval: the margin still tells a
    waited read (a whole interval) from a queued one (a decode)."""
    stream = Stream(1 / 30, decode=0.0177)
    drain = FrameDrain(clock=stream.clock)
    look(stream, drain)
    stream.idle(1.0)
    began = stream.now
    frame, newest = look(stream, drain)
    assert newest - frame <= 1
    assert stream.now - began < 1.5  # not the whole 3 s budget


def test_a_fast_pc_keeps_the_floor_and_an_idle_stream_costs_one_wait() -> None:
    stream = Stream(0.1, decode=0.004)
    drain = FrameDrain(clock=stream.clock)
    for _ in range(5):
        look(stream, drain)
        stream.idle(0.3)
    assert drain.threshold_s == pytest.approx(0.03)
    stream.now = stream.next_frame * stream.interval - 0.05  # nothing queued: the next is 50 ms off
    assert drain.skip_queued(stream) == 1  # one read, which waited: it is the newest


def test_the_budget_bounds_a_look_when_decoding_cannot_keep_up() -> None:
    stream = Stream(0.1, decode=0.095)  # barely real time: every read looks "queued"
    drain = FrameDrain(clock=stream.clock, budget_s=1.0)
    stream.idle(10.0)
    began = stream.now
    drain.skip_queued(stream)
    assert stream.now - began < 1.1


@pytest.mark.parametrize("kwargs", [{"floor_s": 0}, {"margin_s": 0}, {"max_frames": 0},
                                    {"budget_s": -1}, {"window": 0}])
def test_bad_settings_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        FrameDrain(**kwargs)  # type: ignore[arg-type]
