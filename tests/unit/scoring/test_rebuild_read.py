"""The rebuild reads the stream sequence off the reply subject (cheaper than `msg.metadata`)."""

from __future__ import annotations

from nats.aio.msg import Msg

from portevoix_scoring.rebuild import stream_seq


def test_stream_sequence_of_both_reply_subject_formats_matches_nats_py() -> None:
    for reply in (
        "$JS.ACK.PV_EVENTS.cons.1.4217.12.1763700000000000000.3",
        "$JS.ACK.hub.ACCHASH.PV_EVENTS.cons.1.4217.12.1763700000000000000.3.r4nd0m",
    ):
        msg = Msg(_client=None, subject="pv.evt.x", reply=reply)  # type: ignore[arg-type]
        assert stream_seq(msg) == 4217 == Msg.Metadata._from_reply(reply).sequence.stream
