"""Output tiles (issue 12): a synaptic op whose weight block is larger than the weight buffer runs
as tiles of whole output lane groups (hw/program.Tile), each an op of its own over all frames.

The tiles' blocks are the layer's block cut by columns, each within the buffer, balanced; their
biases, thresholds, output words and stored inputs are the tile's groups of the layer's; ACC and
MEM are compact. The cycle model counts the same SOPs and spikes as without tiles. The sink's
tile addressing is checked against the golden model in tests/test_sink.py and whole networks with
tiles in tests/test_fabric.py (Verilator, the QSPI flash model); the ULX3S build of the shipped
Fashion-MNIST model uses them (boards/targets.py).
"""

from __future__ import annotations

import numpy as np
import pytest

from csdformer import artifact as A
from csdformer.artifact import resolve_artifact
from csdformer.hw.common import HwParamError
from csdformer.hw.program import Sink, Tile, compile_program
from csdformer.sim.verify import golden_reference, select_images


@pytest.fixture(scope="module")
def art():
    return A.load(resolve_artifact("digits"))


@pytest.fixture(scope="module")
def pair(art):
    return compile_program(art, 4), compile_program(art, 4, weight_depth=300)


def test_tiles_cut_the_block_by_output_groups_within_the_buffer(pair):
    whole, tiled = pair
    by_name = {op.name: op for op in whole.ops}
    seen = {}
    for op in tiled.ops:
        if op.tile is None:
            assert len(op.weights if op.weights is not None else []) <= 300
            continue
        seen.setdefault(op.name, []).append(op)
    # (stores fused with the DIF reading them, Program.store_dif: rpe_add → quant_in, mlp_add → head_quant,
    # stages.2 → rpe_quant)
    assert sorted(seen) == ["blocks.0.attn.quant_in", "blocks.0.mlp.quant2", "head_quant", "rpe_quant"]
    P = tiled.lanes
    for name, tiles in seen.items():
        full = by_name[name]
        G = full.f["acc_groups"]
        assert [t.tile for t in tiles] == [Tile(i, len(tiles), sum(x.tile.groups for x in tiles[:i]), x.tile.groups)
                                           for i, x in enumerate(tiles)]
        sizes = [t.tile.groups for t in tiles]
        assert sum(sizes) == G and max(sizes) - min(sizes) <= 1  # balanced
        per_group = len(full.weights) // G
        assert max(sizes) * per_group <= 300 and len(tiles) == -(-G // (300 // per_group))  # as few as fit
        # The blocks side by side are the layer's block: rows (ci, ky, kx, group) → (…, tile groups).
        blocks = [t.weights.reshape(-1, t.tile.groups * P) for t in tiles]
        assert np.array_equal(np.concatenate(blocks, axis=1), full.weights.reshape(-1, G * P))
        for t in tiles:
            f, g0, n = t.f, t.tile.first, t.tile.groups
            assert f["bias_base"] == full.f["bias_base"] + g0
            assert f["out_base"] == full.f["out_base"] + g0 and f["skip"] == G - n
            assert f["sink_words"] == full.f["sink_words"] // G * n == f["acc_words"]
            assert f["fanout"] == full.f["fanout"] // G * n
            if full.sink is Sink.DIF and not full.f["prm_scalar"]:
                assert f["prm_base"] == full.f["prm_base"] + g0
            if full.f["use_cur"] or "sto_base" in full.f:
                assert f["cur_base"] == full.f["cur_base"] + g0
            if "sto_base" in full.f:
                assert f["sto_base"] == full.f["sto_base"] + g0
    labels = [op.label for op in tiled.ops]
    assert len(set(labels)) == len(labels) and "blocks.0.attn.quant_in[3/8]" in labels
    assert tiled.depths["weight"] <= 300 < whole.depths["weight"]
    assert tiled.depths["mem"] <= whole.depths["mem"] and tiled.depths["acc"] <= whole.depths["acc"]
    assert np.array_equal(tiled.biases, whole.biases) and np.array_equal(tiled.thresholds, whole.thresholds)


def test_the_cycle_model_counts_the_same_sops_and_spikes(pair, art):
    whole, tiled = pair
    _, x = select_images(art, 2, seed=0)
    gw, gt = golden_reference(whole, x, art.delay), golden_reference(tiled, x, art.delay)
    for mw, mt in zip(gw["models"], gt["models"]):
        assert (mt.sops, mt.spikes) == (mw.sops, mw.spikes)
        assert sum(v for k, v in mt.sops_per_op.items() if k.startswith("blocks.0.attn.quant_in[")) \
            == mw.sops_per_op["blocks.0.attn.quant_in"]
        assert mt.cycles > mw.cycles  # each tile scans the input again


def test_a_block_no_tiling_fits_is_refused_naming_it(art):
    with pytest.raises(HwParamError) as e:
        compile_program(art, 8, weight_depth=200)
    assert str(e.value) == ("layer 'rpe' (conv): weights of 1152 words do not fit the weight buffer of 200 words, "
                            "and one lane group's block (288 words) cannot be split")
    with pytest.raises(HwParamError, match=r"^layer 'head' \(head\): weights of 320 words do not fit the weight "
                                           r"buffer of 300 words, and the head's block cannot be split$"):
        compile_program(art, 1, weight_depth=300)  # the head sums all its classes at once
    with pytest.raises(HwParamError, match=r"^weight_depth: must be a positive number of words, got 0$"):
        compile_program(art, 8, weight_depth=0)


def test_the_paper_size_model_on_the_ulx3s_is_refused_naming_memory_and_buffer():
    """fashion_mnist-4-384 with the ULX3S's limits: its activations exceed the chip and its RPE
    conv's lane group (384 inputs × 3 × 3 = 3,456 words) the weight buffer; one line names both."""
    from csdformer.hw.common import FitError

    big = A.load(resolve_artifact("fashion_mnist-4-384"))
    with pytest.raises(FitError) as e:
        compile_program(big, 16, keep_spikes=False, target="ecp5-85f", weight_depth=2304, acc_depth=1024)
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith("memory: ") and "target ecp5-85f has 3744 kbit" in msg
    assert msg.endswith("; and layer 'rpe' (conv): weights of 82944 words do not fit the weight buffer of 2304 "
                        "words, and one lane group's block (3456 words) cannot be split")
