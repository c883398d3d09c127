"""cocotb bench of the encoding layer (sim/benches/encode_conv.py) against
``sim/synaptic.encode_frames``, under Verilator: 3 parameter sets × 2,000 random images (each
one window of ``T`` output frames), cycles within 5 % of the model, and a corrupted RTL that
must fail."""

from __future__ import annotations

import numpy as np
import pytest

from csdformer.hw.accumulate import pixel_events
from csdformer.hw.encode_conv import EncodeConv, cycles
from csdformer.sim.benchlib import runner
from csdformer.sim.synaptic import encode_frames
from test_hw_accumulate_cocotb import frames_case, run_corrupted, random_weights

IMAGES = 2000
TIMED = 300
DENSITY = (0.0, 0.1, 0.3, 0.6, 1.0)  # probability of a non-zero pixel, drawn per image

PARAMS = {
    "enc-s1p1-l4-T2-max3": dict(M=3, C=1, H=3, W=3, stride=1, padding=1, max_value=3, T=2, lanes=4, wbits=8),
    "enc-s2p1-l4-T4-max15": dict(M=3, C=1, H=3, W=3, stride=2, padding=1, max_value=15, T=4, lanes=4, wbits=6),
    "enc-s1p0-l8-T1-max255": dict(M=6, C=1, H=3, W=3, stride=1, padding=0, max_value=255, T=1, lanes=8, wbits=8),
}


def case(p, seed: int = 0, images: int = IMAGES):
    rng = np.random.default_rng(seed)
    w = random_weights(rng, (p["M"], p["C"], 3, 3), p["wbits"])
    b = rng.integers(-1000, 1001, p["M"])
    unit = EncodeConv(w, b, (p["C"], p["H"], p["W"]), max_value=p["max_value"], T=p["T"], lanes=p["lanes"],
                      stride=p["stride"], padding=p["padding"])
    shape = (images, p["C"], p["H"], p["W"])
    dens = rng.choice(DENSITY, size=images).reshape(-1, 1, 1, 1)
    img = np.where(rng.random(shape) < dens, rng.integers(1, p["max_value"] + 1, shape), 0)
    img[0] = 0
    img[1] = p["max_value"]  # edge cases: all-zero and all-max images
    cur = encode_frames(img, w, b, p["T"], p["stride"], p["padding"]).swapaxes(0, 1)  # (images, T, M, H', W')
    events = [pixel_events(im) for im in img]
    data, meta = frames_case({"i_stream": [unit.frame_words(e) for e in events]},
                             [unit.output_beats(c) for c in cur],
                             [cycles(unit, [v for *_, v in e]) for e in events],
                             lanes=unit.lanes, width=unit.width, signed=True, timed=TIMED)
    return unit, data, meta


@pytest.mark.parametrize("label", list(PARAMS))
def test_encode_conv_bench(label):
    unit, data, meta = case(PARAMS[label], seed=len(label))
    res = runner.run_bench(unit, "encode_conv", "csdformer.sim.benches.encode_conv", data=data, meta=meta)
    assert res.passed, res.summary()
    assert res.result["mismatches"] == 0 and res.result["compared"] >= IMAGES * unit.T * unit.M * unit.positions
    assert res.result["cycles_ok"]


def test_encode_conv_bench_catches_flipped_bit():
    unit, data, meta = case(PARAMS["enc-s1p1-l4-T2-max3"], seed=3, images=40)
    passed, result = run_corrupted(unit, "encode_conv", data, meta, {"bit": unit.width - 1, "beat": 20})
    assert not passed
    assert result.get("mismatches", 0) > 0, result
