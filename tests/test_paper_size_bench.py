"""bench/paper_size.py's arithmetic on the shipped digits model (1 block, 32 channels, 2 heads, 16 tokens)."""

import importlib.util
from pathlib import Path

import numpy as np

from csdformer import artifact as A
from csdformer.artifact import resolve_artifact
from csdformer.sim import runner

_spec = importlib.util.spec_from_file_location("paper_size", Path(__file__).parents[1] / "bench" / "paper_size.py")
paper_size = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(paper_size)


def test_layer_macs_by_hand_on_digits():
    art = A.load(resolve_artifact("digits"))
    x = np.zeros((1, *art.input.shape), dtype=np.int64)
    q = runner.run(art, x, mode="qann", trace=tuple(layer.name for layer in art.layers))
    macs = paper_size.layer_macs(art, {k: tuple(v.shape[1:]) for k, v in q.frames.items()})
    # 8×8 image: encode 1→8 @8², conv 8→16 @8², pool to 4², conv 16→32 @4²; 16 tokens of 32 channels,
    # two heads of 16 (scores: 2 heads × 16×16, each contracting 16; values: 16 tokens × 32 channels, each
    # contracting the 16 tokens), MLP ×2 (hidden 64), 10 classes
    expect = {"stages.0": 8 * 1 * 9 * 64, "stages.1": 16 * 8 * 9 * 64, "stages.2": 32 * 16 * 9 * 16,
              "rpe": 32 * 32 * 9 * 16,
              "blocks.0.attn.q": 32 * 32 * 16, "blocks.0.attn.k": 32 * 32 * 16, "blocks.0.attn.v": 32 * 32 * 16,
              "blocks.0.attn.scores": 2 * 16 * 16 * 16, "blocks.0.attn.values": 16 * 32 * 16,
              "blocks.0.attn.proj": 32 * 32 * 16, "blocks.0.mlp.fc1": 64 * 32 * 16, "blocks.0.mlp.fc2": 32 * 64 * 16,
              "head": 10 * 32}
    assert macs == expect


def test_energy_and_memory_split():
    assert paper_size.energy_pj(10, 100) == 4.6 * 10 + 0.9 * 100
    s = paper_size.memory_split({"weight": 2048, "cur": 1024, "spk": 512})
    assert s == {"total": 3.5, "weights": 2.0, "rest": 1.5}
    assert paper_size.ECP5_KBIT == {"ECP5-25F": 1008, "ECP5-45F": 1944, "ECP5-85F": 3744}
