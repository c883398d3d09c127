"""The spike accumulator, encoding layer and TDEC matmul unit built from the layers of a shipped
artifact (``csdformer/models/*``: real weights, biases, strides, heads, shifts), widths checked
against ``artifact.bounds()``, one window of random input streamed through the Amaranth simulator
and compared with the golden ops. Skipped when no artifact is shipped."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from csdformer.artifact.io import load
from csdformer.artifact.schema import bounds
from csdformer.hw.accumulate import SpikeAccumulator, pixel_events
from csdformer.hw.encode_conv import EncodeConv
from csdformer.hw.tdec_matmul import TdecMatmul, operand_views
from csdformer.sim import golden
from csdformer.sim.benchlib import unpack_lanes
from csdformer.sim.synaptic import conv_frames, encode_frames, linear_frames
from test_hw_accumulate_amaranth import run_frames as run_spike_frames
from csdformer.sim.benchlib.amaranth_sim import run_streams

MODELS = Path(__import__("csdformer").__file__).resolve().parent / "models"
SHIPPED = sorted(p for p in MODELS.glob("*") if (p / "manifest.json").exists())


@pytest.fixture(scope="module")
def artifact():
    if not SHIPPED:
        pytest.skip("no shipped artifact under csdformer/models")
    return load(SHIPPED[0])


def _first(a, kind, pred=lambda layer: True):
    for layer in a.layers:
        if layer.kind == kind and pred(layer):
            return layer
    pytest.skip(f"artifact has no {kind} layer")


def _shape(a, name):
    return tuple(a.layer(name).shape) if name != "image" else a.input.shape


def test_conv_layer(artifact):
    a, rng = artifact, np.random.default_rng(0)
    grid = [x for x in a.layers if x.kind == "conv" and x.attrs["layout"] == "grid"]
    if not grid:
        pytest.skip("artifact has no grid conv layer")
    layer = min(grid, key=lambda x: np.prod(_shape(a, x.inputs[0])))  # the smallest, for speed
    w, b = layer.arrays["weight"], layer.arrays["bias"]
    unit = SpikeAccumulator.for_layer(a, layer.name, lanes=w.shape[0])
    plain = SpikeAccumulator(w, b, _shape(a, layer.inputs[0]), T=a.T, lanes=1, stride=layer.attrs["stride"],
                             padding=layer.attrs["padding"])
    plain._MustUse__silence = True  # built only to read its derived width
    assert unit.width == bounds(a)[layer.name]["frame_bits"] == plain.width  # from the weights alone
    s = (rng.random((a.T,) + _shape(a, layer.inputs[0])) < 0.02).astype(np.uint8)
    got, _ = run_spike_frames(unit, s)
    assert np.array_equal(got, conv_frames(s, w, b, layer.attrs["stride"], layer.attrs["padding"]))


def test_linear_layer(artifact):
    a, rng = artifact, np.random.default_rng(1)
    layer = _first(a, "linear")
    w, b = layer.arrays["weight"], layer.arrays["bias"]
    rows = 3  # a few tokens of the layer's input
    unit = SpikeAccumulator.linear(w, b, rows=rows, T=a.T, lanes=w.shape[0] // 2)
    assert unit.width == bounds(a)[layer.name]["frame_bits"]
    s = (rng.random((a.T, rows, w.shape[1])) < 0.2).astype(np.uint8)
    got, _ = run_spike_frames(unit, s.transpose(0, 2, 1)[..., None])
    assert np.array_equal(got[..., 0].transpose(0, 2, 1), linear_frames(s, w, b))


def test_encode_layer(artifact):
    a, rng = artifact, np.random.default_rng(2)
    layer = _first(a, "encode_conv")
    w, b = layer.arrays["weight"], layer.arrays["bias"]
    unit = EncodeConv.for_layer(a, layer.name, lanes=w.shape[0])
    assert unit.width == bounds(a)[layer.name]["frame_bits"]
    img = np.where(rng.random(a.input.shape) < 0.1, rng.integers(0, a.input.max_value + 1, a.input.shape), 0)
    beats, _ = run_streams(unit, {"i_stream": unit.frame_words(pixel_events(img))}, unit.T * unit.beats)
    lanes = np.array([unpack_lanes(x, unit.width, unit.lanes, signed=True) for x in beats])
    want = encode_frames(img, w, b, a.T, layer.attrs["stride"], layer.attrs["padding"])
    assert np.array_equal(unit.currents(lanes), want)


@pytest.mark.parametrize("operands", ["q_kT", "attn_v"])
def test_tdec_layer(artifact, operands):
    a, rng = artifact, np.random.default_rng(3)
    layer = _first(a, "tdec_matmul", lambda x: x.attrs["operands"] == operands)
    heads, shift = layer.attrs["heads"], layer.attrs["shift"]
    c = _shape(a, layer.inputs[1])[1]
    n = 7  # the layer's heads, channels and shift; fewer tokens, for speed
    unit = TdecMatmul.for_layer(operands, heads=heads, tokens=n, channels=c, T=a.T, lanes=c // heads,
                                shift=shift)
    if operands == "q_kT":  # same summed dimension as the layer: the layer's bound holds
        assert unit.width < bounds(a)[layer.name]["frame_bits"]  # unsigned: no sign bit needed
    sa = (n, c) if operands == "q_kT" else (heads, n, n)
    x = (rng.random((a.T,) + sa) < 0.3).astype(np.uint8)
    y = (rng.random((a.T, n, c)) < 0.3).astype(np.uint8)
    av, bv = operand_views(operands, x, y, heads)
    ins = {"a_stream": unit.a_words(av), "b_stream": unit.b_words(bv)}
    beats, _ = run_streams(unit, ins, a.T * unit.o_beats)
    got = np.array([unpack_lanes(v, unit.width, unit.lanes) for v in beats]).reshape(a.T, heads, unit.rows, -1)
    assert np.array_equal(got[..., : unit.cols], golden.tdec_matmul(av, bv) << shift)


def test_head_layer_sums_tokens(artifact):
    a, rng = artifact, np.random.default_rng(4)
    layer = _first(a, "head")
    w, b = layer.arrays["weight"], layer.arrays["bias"]
    unit = SpikeAccumulator.for_layer(a, layer.name, lanes=w.shape[0])
    n, k = _shape(a, layer.inputs[0])
    s = (rng.random((a.T, n, k)) < 0.05).astype(np.uint8)
    s[0] = 1  # the bound's worst case: every token spikes
    words = [x for f in s for x in unit.frame_words([(kk, 0, 0) for _, kk in np.argwhere(f)])]
    beats, _ = run_streams(unit, {"i_stream": words}, a.T * unit.beats)
    lanes = np.array([unpack_lanes(x, unit.width, unit.lanes, signed=True) for x in beats])
    logits = unit.currents(lanes)[:, :, 0, 0].sum(0)
    assert np.array_equal(logits, golden.int_matmul(s.sum((0, 1)), w.T) + b)


def test_tdec_from_artifact(artifact):
    layer = _first(artifact, "tdec_matmul")
    unit = TdecMatmul.from_artifact(artifact, layer.name, lanes=16)
    assert unit.width < bounds(artifact)[layer.name]["frame_bits"]
    unit._MustUse__silence = True
