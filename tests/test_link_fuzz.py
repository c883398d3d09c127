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
