"""Hypothesis fuzz of the host's answer decoder and of the device's request parser RTL (issue 16,
done-when 2; the properties: :mod:`csdformer.sim.benches.link_fuzz`). 1000 streams each here;
``bench/link_fuzz.py`` runs 10⁴ and more."""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from csdformer.sim.benches import link_fuzz as F

FUZZ = settings(max_examples=1000, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))


@FUZZ
@given(events=F.answer_streams(), cuts=st.lists(st.integers(1, 40), max_size=8))
def test_host_decoder_fuzz(events, cuts):
    F.check_host_decoder(events, cuts)


@pytest.fixture(scope="module")
def receiver():
    return F.ReceiverFuzz()


def test_receiver_rtl_fuzz(receiver):
    @FUZZ
    @given(events=F.request_streams(receiver.n_pixels, receiver.T))
    def run(events):
        receiver.check(events)

    run()


def _ends_in_sync(frame):
    f = F.ending_in_sync(frame)
    assert f[-1] == F.P.SYNC
    return f


def _model_verdicts(receiver, stream: bytes):
    info = F.P.Info(receiver.n_pixels, 1, receiver.T, 1, 0)
    model = F.DeviceModel(info, receiver._model_compute, timeout=receiver.pause - 2)
    return [F._verdict_of_answer(a, receiver.pixel_bits) for a in model.feed(stream, now=0)]


def test_frame_cut_before_a_last_byte_sync(receiver):
    """Issue 16: a frame cut just before its last byte 0xA5, the next frame right behind it. The next
    frame's sync byte completes the cut frame (its missing byte: the frame sent, answered) and
    still starts the next frame, which is answered too — RTL and device model alike. Before the
    fix both answered only the cut frame: the stream of INFO seq 216 cut + INFO seq 7,
    ``a502d800009d|a50207000038ec``, gave the one verdict ``('info', 216)``."""
    P = F.P
    info = P.info_request(216)
    assert info.hex() == "a502d800009da5"
    nxt = P.info_request(7)
    want = [("info", 216), ("info", 7)]
    assert _model_verdicts(receiver, info[:-1] + nxt) == want
    assert receiver.check([F.Event("frame", info, info[:-1]), F.Event("frame", nxt, nxt)]) == want
    n = receiver.n_pixels
    cut = _ends_in_sync(P.infer_request(1, bytes(range(1, n + 1)), 0))
    nxt = P.infer_request(2, bytes(n), 9)
    want = [("infer", cut[2], 1, tuple(range(1, n + 1))), ("infer", 9, 2, (0,) * n)]
    assert _model_verdicts(receiver, cut[:-1] + nxt) == want
    assert receiver.check([F.Event("frame", cut, cut[:-1]), F.Event("frame", nxt, nxt)]) == want
    # an ERROR answer (bad delay) cut the same way, then two frames
    bad = _ends_in_sync(P.infer_request(receiver.T, bytes(n), 0))
    events = [F.Event("frame", bad, bad[:-1]), F.Event("frame", info, info[:-1]), F.Event("frame", nxt, nxt)]
    want = [("error", bad[2], P.ErrorCode.BAD_DELAY), ("info", 216), ("infer", 9, 2, (0,) * n)]
    assert _model_verdicts(receiver, bad[:-1] + info[:-1] + nxt) == want
    assert receiver.check(events) == want


def test_resync_on_other_sync_bytes(receiver):
    """The other cases of docs/protocol.md device rule 8, RTL and model: a frame cut before a last
    byte that is not 0xA5 (the next sync byte completes it, its CRC fails: dropped, and that byte
    starts the next frame); type bytes 0xA5 (sync bytes: the frame restarts); a length high byte
    0xA5 (too long: dropped, and that byte starts the next frame); a whole frame ending in 0xA5
    (answered; the next frame's sync byte, taken as a type byte, restarts the frame)."""
    P = F.P
    info = P.info_request(3)
    assert info[-1] != P.SYNC
    nxt = P.info_request(4)
    cases = [
        ([F.Event("frame", info, info[:-1]), F.Event("frame", nxt, nxt)], [("info", 4)]),
        ([F.Event("garbage", sent=bytes([P.SYNC, P.SYNC, P.SYNC])), F.Event("frame", nxt, nxt)], [("info", 4)]),
        ([F.Event("garbage", sent=bytes([P.SYNC, P.MsgType.INFO, 0, 0])), F.Event("frame", nxt, nxt)], [("info", 4)]),
    ]
    full = _ends_in_sync(P.info_request(0))
    cases.append(([F.Event("frame", full, full), F.Event("frame", nxt, nxt)], [("info", full[2]), ("info", 4)]))
    for events, want in cases:
        stream = b"".join(e.sent for e in events)
        assert _model_verdicts(receiver, stream) == want, stream.hex()
        assert receiver.check(events) == want, stream.hex()


def test_lone_sync_times_out_silently(receiver):
    """A sync byte followed by silence is no frame: neither the RTL (``dropped``, which lights the
    link's ``error``) nor the device model counts a drop — so the candidate a frame ending in 0xA5
    leaves does not either; a sync and a type byte followed by silence are a frame dropped."""
    P = F.P
    full = _ends_in_sync(P.info_request(0))
    for event, drops in ((F.Event("garbage", sent=bytes([P.SYNC])), 0), (F.Event("frame", full, full), 0),
                         (F.Event("garbage", sent=bytes([P.SYNC, P.MsgType.INFO])), 1)):
        before = receiver.drops
        receiver.check([event, F.Event("pause")])
        assert receiver.drops - before == drops, event
    m = F.DeviceModel(P.Info(5, 1, 3, 1, 0), lambda px, d: P.Result(0, d, tuple(px)), timeout=10)
    m.feed(bytes([P.SYNC]), now=0)
    assert m.feed(P.info_request(1), now=100) and m.dropped == 0
    m.feed(bytes([P.SYNC, P.MsgType.INFO]), now=200)
    m.feed(P.info_request(1), now=300)
    assert m.dropped == 1


def test_fuzz_checks_can_fail(receiver, monkeypatch):
    """The checks see a corrupted frame accepted, a frame not decoded (a decoder that ignores ERROR
    answers), and an RTL verdict that differs from the model's."""
    from csdformer.firmware import protocol as P

    frame = P.encode(P.MsgType.ERROR, b"\x01", 3)
    altered = P.encode(P.MsgType.ERROR, b"\x02", 3)
    with pytest.raises(AssertionError, match="not sent"):  # a frame put on the line but "sent" as another
        F.check_host_decoder([F.Event("frame", frame, altered)], [])
    with monkeypatch.context() as mp:
        mp.setattr(P, "host_decoder", lambda timeout: P.Decoder(types={P.MsgType.RESULT}, timeout=timeout))
        with pytest.raises(AssertionError, match="not decoded"):
            F.check_host_decoder([F.Event("frame", frame, frame)], [])
    req = P.info_request(5)
    model = receiver._model_compute
    receiver._model_compute = lambda px, d: P.Result(0, d, tuple(b ^ 1 for b in px))
    try:
        with pytest.raises(AssertionError, match="differ from the device model"):
            receiver.check([F.Event("frame", P.infer_request(0, bytes(5), 1), P.infer_request(0, bytes(5), 1))])
    finally:
        receiver._model_compute = model
    receiver.check([F.Event("frame", req, req)])
