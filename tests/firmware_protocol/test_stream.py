"""Every family's decoder keeps a bounded buffer and turns a gap into TruncatedFrame."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from firmware_protocol import cn485, feig, kerong, modbus_rtu, rr3036
from firmware_protocol.codec import NEED_DATA
from firmware_protocol.errors import FrameError, TruncatedFrame

DECODERS = [cn485.RequestDecoder, kerong.RequestDecoder, kerong.ReplyDecoder,
            modbus_rtu.RequestDecoder, modbus_rtu.ReplyDecoder, rr3036.RequestDecoder,
            rr3036.ReplyDecoder, feig.RequestDecoder, feig.ResponseDecoder]


@pytest.mark.parametrize("make", DECODERS)
@given(chunks=st.lists(st.binary(min_size=1, max_size=2048), min_size=1, max_size=8))
def test_buffer_stays_bounded_and_gap_empties_it(make, chunks: list[bytes]) -> None:  # type: ignore[no-untyped-def]
    decoder = make()
    for chunk in chunks:
        decoder.feed(chunk)
        assert decoder.buffered <= decoder.max_buffer
        while True:  # drain: only the family's typed errors may come out
            try:
                if decoder.next_event() is NEED_DATA:
                    break
            except FrameError:
                pass
    try:
        decoder.expire()
    except TruncatedFrame:
        pass
    assert decoder.buffered == 0
