"""pysip2 0.1.0's own SIP2 codec: messages/s encode + decode of a fixed, realistic mix.

The baseline for issue 7's codec benchmark (goal: our ``sip2proto`` codec ≥ 1.0× this, on
the same messages, in the same run). One "message" is one ``pysip2.encode_message`` (model →
checksummed UTF-8 frame) plus one ``pysip2.decode_message`` of that frame (frame → validated
model). The mix, in this order, as a store-and-forward server sees it:

    11 checkout (no-block Y, past transaction date, cabinet due date)   12 its answer
    09 checkin with a return date                                       10 its answer
    63 patron information request                                       64 answer, 欧阳娜娜
    18 item information answer (Chinese title, due date)

``mix_frames()`` returns the same seven messages as wire bytes (what pysip2 encodes them to),
so a comparison can feed exactly these bytes to another codec. Prints figures, asserts
nothing:

    .venv/bin/python -m bench.sip2_peer_codec [--messages 70000]
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Any

ENCODING = "utf-8"
TD = "20261120    101500"
DUE = "20261204    235959"


def mix() -> list[Any]:
    """The seven pysip2 models of the mix (see the module docstring)."""
    import pysip2 as p

    return [
        p.CheckoutRequest(sc_renewal_policy="Y", no_block="Y", transaction_date=TD,
                          nb_due_date=DUE, institution_id="LENDBOX", patron_identifier="R0003",
                          item_identifier="B0003", terminal_password="", fee_acknowledged="N"),
        p.CheckoutResponse(ok="1", renewal_ok="N", magnetic_media="N", desensitize="Y",
                           transaction_date=TD, institution_id="LENDBOX",
                           patron_identifier="R0003", item_identifier="B0003",
                           title_identifier="三国演义", due_date=DUE, media_type="001",
                           transaction_id="T000001"),
        p.CheckinRequest(no_block="Y", transaction_date=TD, return_date="20261119    180000",
                         current_location="EAST", institution_id="LENDBOX",
                         item_identifier="B0005", terminal_password=""),
        p.CheckinResponse(ok="1", resensitize="Y", magnetic_media="N", alert="Y",
                          transaction_date=TD, institution_id="LENDBOX", item_identifier="B0005",
                          permanent_location="MAIN", title_identifier="围城", sort_bin="MAIN",
                          patron_identifier="R0002", media_type="001",
                          screen_message=("RETURN TO MAIN",)),
        p.PatronInformationRequest(language="001", transaction_date=TD, summary="  Y       ",
                                   institution_id="LENDBOX", patron_identifier="R0003",
                                   terminal_password="", patron_password="1234"),
        p.PatronInformationResponse(
            patron_status=" " * 14, language="001", transaction_date=TD,
            hold_items_count="0001", overdue_items_count="0000", charged_items_count="0002",
            fine_items_count="0000", recall_items_count="0000", unavailable_holds_count="0000",
            institution_id="LENDBOX", patron_identifier="R0003", personal_name="欧阳娜娜",
            charged_items_limit="0010", valid_patron="Y", valid_patron_password="Y",
            currency_type="CNY", fee_amount="0.00", charged_items=("B0003", "B0007"),
            email_address="ouyang@example.cn"),
        p.ItemInformationResponse(
            circulation_status="04", security_marker="02", fee_type="01", transaction_date=TD,
            hold_queue_length="0", due_date=DUE, item_identifier="B0003",
            title_identifier="三国演义", owner="LENDBOX", media_type="001",
            permanent_location="EAST", current_location="EAST"),
    ]


def mix_frames() -> list[bytes]:
    """The mix as pysip2 puts it on the wire (UTF-8, ``AY<n>AZ<checksum>``, CR)."""
    import pysip2

    return [pysip2.encode_message(m, sequence_number=i % 10, checksum=True, encoding=ENCODING)
            for i, m in enumerate(mix())]


def peer_codec_rate(messages: int) -> float:
    """Messages/s of pysip2's encode + decode over ``messages`` messages of the mix (rounded
    up to whole passes of the seven), after one untimed warm-up pass."""
    from pysip2 import decode_message, encode_message

    models = mix()
    seqs = [i % 10 for i in range(len(models))]
    passes = max(1, -(-messages // len(models)))

    def one_pass() -> None:
        for model, seq in zip(models, seqs, strict=True):
            frame = encode_message(model, sequence_number=seq, checksum=True, encoding=ENCODING)
            decode_message(frame, encoding=ENCODING)

    one_pass()
    t0 = time.perf_counter()
    for _ in range(passes):
        one_pass()
    elapsed = time.perf_counter() - t0
    return passes * len(models) / elapsed


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--messages", type=int, default=70_000)
    args = ap.parse_args(argv)
    import pysip2

    frames = mix_frames()
    print(f"pysip2 {pysip2.__version__}, {len(frames)} message types, "
          f"{sum(map(len, frames)) / len(frames):.0f} bytes/frame on average, {ENCODING}")
    print(f"host: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")
    rate = peer_codec_rate(args.messages)
    print(f"pysip2 codec: {rate:,.0f} messages/s encode+decode ({args.messages:,} messages)")


if __name__ == "__main__":
    main()
