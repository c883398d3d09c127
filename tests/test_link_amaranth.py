"""Quick Amaranth-simulator tests of the protocol engine (hw/link.py) at the byte-stream level.

The link and the fixture core are driven with bytes (no UART) and the answers compared with the
Python device model (firmware/device_model.py) fed the same bytes at the same times.
"""

import random

import pytest
from amaranth.back import rtlil
from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In
from amaranth.sim import Simulator

from csdformer.firmware import protocol as P
from csdformer.firmware.device_model import DeviceModel
from csdformer.hw import HwParamError
from csdformer.hw.link import Link, LinkSoC, check_core
from csdformer.sim.benches.link_fixture import FixtureCore

TIMEOUT = 60  # cycles; bytes arrive every GAP cycles
GAP = 3


def _run(core, schedule, cycles, *, tx_every=4):
    """Bytes ``schedule`` = [(cycle, byte)]; tx ready one cycle in ``tx_every``. Returns tx bytes."""
    link = Link.for_core(core, timeout=TIMEOUT)
    m = Module()
    m.submodules.link, m.submodules.core = link, core
    for name in ("image", "logits", "prediction"):
        wiring.connect(m, getattr(link, name), getattr(core, name))
    m.d.comb += [core.delay.eq(link.delay), link.cycles.eq(core.cycles)]
    if "model_id" in link.signature.members:
        m.d.comb += link.model_id.eq(core.model_id)
    at = dict(schedule)
    out = []

    async def bench(ctx):
        for cyc in range(cycles):
            ctx.set(link.rx.valid, cyc in at)
            ctx.set(link.rx.payload, at.get(cyc, 0))
            ctx.set(link.tx.ready, cyc % tx_every == 0)
            if ctx.get(link.tx.valid) and cyc % tx_every == 0:
                out.append(ctx.get(link.tx.payload))
            await ctx.tick()

    sim = Simulator(m)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return bytes(out)


def _model(core):
    info = P.Info(core.n_pixels, core.num_classes, core.T, core.lanes, core.model_id_value)
    return DeviceModel(info, core.reference, timeout=TIMEOUT)


def _schedule(chunks):
    """[(idle cycles before, bytes)] → byte arrival schedule, GAP cycles apart."""
    sched, t = [], 0
    for idle, data in chunks:
        t += idle
        for b in data:
            sched.append((t, b))
            t += GAP
    return sched, t


def _expected(model, sched):
    out = []
    for t, b in sched:
        out += model.feed(bytes([b]), now=t)
    return out


@pytest.mark.parametrize("kw", [dict(n_pixels=12, num_classes=3, T=4, pixel_bits=5),
                                dict(n_pixels=7, num_classes=1, T=1, pixel_bits=8, stall_every=0, latency=0),
                                dict(n_pixels=20, num_classes=4, T=3, pixel_bits=6, stall_every=1, latency=9)])
def test_link_answers_like_the_model(kw):
    core = FixtureCore(**kw)
    rng = random.Random(3)
    n = core.n_pixels
    img = lambda: bytes(rng.randrange(1 << core.pixel_bits) for _ in range(n))  # noqa: E731
    seqs = iter(range(0, 256, 19))  # every request its own sequence number (echoed)
    sq = lambda: next(seqs)  # noqa: E731
    good = P.infer_request(core.T - 1, img(), sq())
    bad_crc = bytearray(P.infer_request(0, img(), sq()))
    bad_crc[-1] ^= 0x40
    chunks = [
        (0, P.info_request(sq())),
        (400, good),
        (800, b"\x00\x13\x37" + P.infer_request(0, img(), sq())),  # garbage, then a frame
        (800, bytes(bad_crc) + P.infer_request(0, img(), sq())),  # dropped, then answered at once
        (800, good[:9]),  # truncated ...
        (200, P.infer_request(0, img(), sq())),  # ... answered after the timeout
        (800, bytes([P.SYNC, P.MsgType.INFER, 0, 0xFF, 0x7F]) + good),  # oversized false sync
        (800, P.encode(P.MsgType.INFER, bytes([core.T]) + img(), sq())),  # bad delay
        (400, P.encode(P.MsgType.INFER, bytes([0]), sq())),  # bad length
        (400, P.encode(P.MsgType.INFO, b"\x00", sq())),  # bad length
        (400, P.encode(0x33, b"xy", sq())),  # unknown type
        (400, P.infer_request(0, bytes(n), sq())),  # all-zero image: negative logits
    ]
    sched, end = _schedule(chunks)
    want = _expected(_model(core), sched)
    got = _run(core, sched, end + 800)
    dec = P.Decoder()
    frames = dec.feed(got) + dec.flush()
    assert [P.encode(*f) for f in frames] == want
    assert got == b"".join(want)
    kinds = [f.type for f in frames]
    assert kinds.count(P.MsgType.RESULT) == 6 and kinds.count(P.MsgType.ERROR) == 4
    assert len({f.seq for f in frames}) == len(frames) - 1  # each echoes its request's ("good" is sent twice)


def test_link_answers_to_an_always_ready_transmitter():
    """A byte every :data:`~csdformer.hw.link_tx.HOLD` + 1 cycles (the sender's fastest): the logit
    read and the CRC still reach each byte in time."""
    core = FixtureCore(n_pixels=5, num_classes=3, T=2, pixel_bits=8)
    rng = random.Random(5)
    img = bytes(rng.randrange(256) for _ in range(core.n_pixels))
    sched, end = _schedule([(0, P.info_request(7)), (200, P.infer_request(1, img, 8)),
                            (300, P.encode(P.MsgType.INFER, bytes([0]), 9))])
    got = _run(core, sched, end + 300, tx_every=1)
    assert got == b"".join(_expected(_model(core), sched))


def test_link_frame_cut_before_its_last_byte():
    """docs/protocol.md device rule 8 on the whole link. A request cut just before its last byte and
    the next request right behind it: the next one's sync byte completes the cut one. Last byte not
    0xA5: the cut request fails its CRC and the next one is answered (as the device model does).
    Last byte 0xA5: the cut request is the one sent and is answered; the next one's later bytes
    arrive while that answer is sent and are discarded (rule 6; the model, which answers at once,
    would answer it too); a request after the answer is answered."""
    core = FixtureCore(n_pixels=5, num_classes=2, T=2, pixel_bits=8)
    img = bytes([1, 2, 3, 4, 5])
    cut = P.info_request(3)
    assert cut[-1] != P.SYNC
    sched, end = _schedule([(0, cut[:-1] + P.infer_request(1, img, 4)), (400, P.info_request(5))])
    got = _run(core, sched, end + 400)
    assert got == b"".join(_expected(_model(core), sched))
    assert [f.seq for f in P.Decoder().feed(got)] == [4, 5]
    seq = next(s for s in range(256) if P.infer_request(1, img, s)[-1] == P.SYNC)
    cut = P.infer_request(1, img, seq)
    sched, end = _schedule([(0, cut[:-1] + P.info_request(6)), (400, P.info_request(7))])
    frames = P.Decoder().feed(_run(core, sched, end + 400))
    assert [(f.type, f.seq) for f in frames] == [(P.MsgType.RESULT, seq), (P.MsgType.INFO_REPLY, 7)]


def test_link_model_id_from_a_port():
    """A core whose model id is an Out(32) port (read from flash at run time): INFO answers what the
    port holds when INFO is answered: 0 before the core has "loaded" it, the id after."""
    core = FixtureCore(n_pixels=6, num_classes=2, T=2, model_id=0xC0FFEE42, model_id_load=300)
    params = check_core(core)
    link = Link.for_core(core, timeout=TIMEOUT)
    link._MustUse__silence = True  # only its signature is looked at
    assert params["model_id"] is None and link.signature.members["model_id"] == In(32)
    sched, end = _schedule([(0, P.info_request(1)), (400, P.info_request(2))])
    dec = P.Decoder()
    frames = dec.feed(_run(core, sched, end + 400)) + dec.flush()
    assert [(f.seq, P.Info.unpack(f.payload).model_id) for f in frames] == [(1, 0), (2, 0xC0FFEE42)]
    soc = LinkSoC(core, divisor=4, timeout=100)  # the SoC wires the port too
    assert soc.params["model_id"] is None
    rtlil.convert(soc)


def test_link_params_checked():
    with pytest.raises(HwParamError, match="timeout"):
        Link(pixel_bits=5, n_pixels=4, num_classes=2, logit_width=8, T=2, lanes=1, model_id=0, timeout=100, divisor=8)
    with pytest.raises(HwParamError, match="pixel_bits"):
        Link(pixel_bits=9, n_pixels=4, num_classes=2, logit_width=8, T=2, lanes=1, model_id=0, timeout=1000)
    with pytest.raises(HwParamError, match="num_classes"):
        Link(pixel_bits=8, n_pixels=4, num_classes=256, logit_width=8, T=2, lanes=1, model_id=0, timeout=1000)
    core = FixtureCore(n_pixels=4, num_classes=2)
    with pytest.raises(HwParamError, match="divisor"):
        LinkSoC(core, divisor=2, timeout=1000)
    core.logit_width += 1  # the attribute no longer matches the logits port
    with pytest.raises(HwParamError, match="'logits'"):
        check_core(core)
    del core.model_id
    with pytest.raises(HwParamError, match="model_id"):
        check_core(core)
    core._MustUse__silence = True
