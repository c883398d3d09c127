"""Units built from the shipped artifact: widths from its bounds, every layer accepted."""

import numpy as np
import pytest
from amaranth.hdl import Fragment

from csdformer import artifact as A
from csdformer.cli import resolve_artifact, shipped_models
from csdformer.hw import HwParamError
from csdformer.hw.dif import DIF
from csdformer.hw.residual_add import ResidualAdd
from csdformer.hw.tdec_maxpool import TDECMaxPool

pytestmark = pytest.mark.skipif(not shipped_models(), reason="no shipped model artifact")


@pytest.fixture(scope="module")
def art():
    return A.load(resolve_artifact(shipped_models()[0]))


def test_every_layer_builds_with_the_stated_widths(art):
    b = A.bounds(art)
    built = 0
    for layer in art.layers:
        if layer.kind == "dif":
            unit = DIF.from_artifact(art, layer.name, lanes=8)
            assert unit.potential_bounds[0] == b[layer.name]["potential"][0]
            assert unit.potential_width >= b[layer.name]["potential_bits"]
            assert unit.in_width == b[layer.inputs[0]]["frame_bits"]
        elif layer.kind == "add":
            unit = ResidualAdd.from_artifact(art, layer.name, lanes=8)
            assert unit.width == b[layer.name]["frame_bits"]
        elif layer.kind == "maxpool":
            unit = TDECMaxPool.from_artifact(art, layer.name, lanes=8)
            assert unit.out_shape == tuple(layer.shape)
        else:
            continue
        unit._MustUse__silence = True  # built to check widths only
        built += 1
    assert built


def test_from_artifact_refuses_other_layers(art):
    with pytest.raises(HwParamError, match="not a dif layer"):
        DIF.from_artifact(art, art.layers[0].name, lanes=4)


def test_artifact_thresholds_in_the_dif_bench_order(art):
    layer = next(x for x in art.layers if x.kind == "dif" and len(x.shape) == 3)
    unit = DIF.from_artifact(art, layer.name, lanes=4, D=0)
    C, H, W = layer.shape
    theta = np.broadcast_to(layer.arrays["threshold"], layer.shape)
    assert unit.threshold[0] == theta[0, 0, 0] and unit.threshold[C] == theta[0, 0, 1]
    Fragment.get(unit, None)
