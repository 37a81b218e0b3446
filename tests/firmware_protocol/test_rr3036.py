"""RR3036-style module codec: derived frames, round trips, fuzzing, chunking."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_protocol import rr3036
from firmware_protocol.codec import NEED_DATA
from firmware_protocol.errors import FrameError, LocalProtocolError

VECTORS = Path(rr3036.__file__).resolve().parent / "vectors" / "rr3036"


def _events(decoder: object, data: bytes) -> list[object]:
    decoder.feed(data)  # type: ignore[attr-defined]
    out = []
    while (ev := decoder.next_event()) is not NEED_DATA:  # type: ignore[attr-defined]
        out.append(ev)
    return out


def _request(spec: dict) -> object:
    kind = getattr(rr3036, spec["type"])
    kwargs = {k: v for k, v in spec.items() if k != "type"}
    if "uid" in kwargs:
        kwargs["uid"] = bytes.fromhex(kwargs["uid"])
    return kind(**kwargs)


def _reply(spec: dict) -> object:
    if spec["type"] == "InventoryReply":
        return rr3036.InventoryReply(address=spec["address"], status=spec["status"], tags=tuple(
            (d, bytes.fromhex(u)) for d, u in spec["tags"]))
    if spec["type"] == "ReadBlockReply":
        return rr3036.ReadBlockReply(address=spec["address"], status=spec["status"],
                                     security=spec["security"],
                                     block=bytes.fromhex(spec["block"]))
    return rr3036.StatusReply(address=spec["address"], status=spec["status"],
                              data=bytes.fromhex(spec["data"]))


DATA = json.loads((VECTORS / "derived.json").read_text())


def test_vector_file_names_its_source_and_is_marked_derived() -> None:
    assert DATA["derived"] is True and "545ch4/RR3036" in DATA["source"]


@pytest.mark.parametrize("vector", DATA["vectors"], ids=lambda v: v["name"])
def test_vectors(vector: dict) -> None:
    raw = bytes.fromhex(vector["hex"])
    if vector["direction"] == "request":
        msg = _request(vector["expect"])
        assert _events(rr3036.RequestDecoder(), raw) == [msg]
        assert rr3036.encode_request(msg) == raw
        return
    [reply] = _events(rr3036.ReplyDecoder(), raw)
    typed = _reply(vector["expect"])
    assert rr3036.decode_reply(reply, _request(vector["request"])) == typed
    assert rr3036.encode_reply(typed) == raw


uids = st.binary(min_size=8, max_size=8)
adr = st.integers(0, 255)
requests = st.one_of(
    st.builds(rr3036.InitDevice, address=adr), st.builds(rr3036.CloseRf, address=adr),
    st.builds(rr3036.OpenRf, address=adr), st.builds(rr3036.Inventory, address=adr),
    st.builds(rr3036.StayQuiet, address=adr, uid=uids),
    st.builds(rr3036.ReadBlock, address=adr, uid=uids, block=st.integers(0, 255)),
    st.builds(rr3036.WriteAfi, address=adr, uid=uids, afi=st.integers(0, 255)),
)
replies = st.one_of(
    st.tuples(st.builds(rr3036.InventoryReply, address=adr,
                        status=st.sampled_from([0x00, 0x0A, 0x0B]),
                        tags=st.lists(st.tuples(st.integers(0, 255), uids),
                                      max_size=27).map(tuple)),
              st.just(rr3036.Inventory())),
    st.tuples(st.builds(rr3036.ReadBlockReply, address=adr, security=st.integers(0, 255),
                        block=st.binary(min_size=4, max_size=4)),
              st.just(rr3036.ReadBlock(uid=bytes(8), block=0))),
    st.tuples(st.builds(rr3036.InitReply, address=adr, version=st.integers(0, 0xFFFF),
                        reader_type=st.integers(0, 255), protocols=st.integers(0, 0xFFFF),
                        scan_time=st.integers(0, 255)),
              st.just(rr3036.InitDevice())),
    st.tuples(st.builds(rr3036.StatusReply, address=adr,
                        status=st.sampled_from([1, 2, 5, 0x0E, 0x0F, 0x1F]),
                        data=st.binary(max_size=3)),
              st.sampled_from([rr3036.Inventory(), rr3036.WriteAfi(uid=bytes(8), afi=1),
                               rr3036.ReadBlock(uid=bytes(8), block=0)])),
)


@given(requests)
def test_request_round_trip(msg: object) -> None:
    assert _events(rr3036.RequestDecoder(), rr3036.encode_request(msg)) == [msg]


@given(replies)
def test_reply_round_trip(pair: tuple[object, object]) -> None:
    reply, request = pair
    [frame] = _events(rr3036.ReplyDecoder(), rr3036.encode_reply(reply))
    assert rr3036.decode_reply(frame, request) == reply


def test_27_uids_fit_one_reply_and_28_do_not() -> None:
    tags = tuple((0, bytes([i]) * 8) for i in range(27))
    assert len(rr3036.encode_reply(rr3036.InventoryReply(address=0, tags=tags))) == 1 + 4 + 27 * 9
    with pytest.raises(LocalProtocolError):
        rr3036.encode_reply(rr3036.InventoryReply(address=0, tags=(*tags, (0, bytes(8)))))


@settings(max_examples=300)
@given(st.binary(max_size=300))
def test_fuzzed_decoders_raise_only_frame_errors(data: bytes) -> None:
    for decoder in (rr3036.RequestDecoder(), rr3036.ReplyDecoder()):
        decoder.feed(data)
        for _ in range(len(data) + 2):
            try:
                ev = decoder.next_event()
            except FrameError:
                continue
            if ev is NEED_DATA:
                break
            if isinstance(ev, rr3036.Reply):
                for req in (rr3036.Inventory(), rr3036.ReadBlock(uid=bytes(8), block=0),
                            rr3036.InitDevice()):
                    try:
                        rr3036.decode_reply(ev, req)
                    except FrameError:
                        pass
        try:
            decoder.expire()
        except FrameError:
            pass
        assert decoder.buffered == 0


@given(st.lists(requests, min_size=1, max_size=5), st.data())
def test_arbitrary_chunking(msgs: list[object], data: st.DataObject) -> None:
    stream = b"".join(rr3036.encode_request(m) for m in msgs)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=10)))
    decoder = rr3036.RequestDecoder()
    out, last = [], 0
    for cut in [*cuts, len(stream)]:
        decoder.feed(stream[last:cut])
        last = cut
        while (ev := decoder.next_event()) is not NEED_DATA:
            out.append(ev)
    assert out == msgs
