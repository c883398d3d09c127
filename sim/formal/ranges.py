"""The value ranges that :func:`csdformer.hw.program.compile_program` derives the accumulator and
membrane widths from (:func:`csdformer.artifact.schema.bounds`), for the proofs to assume.

- ACC (:func:`acc_range`): per scatter op, the range of what ACC holds while its frame is summed:
  the head's whole-window total, a TDEC layer's frame ``>> shift`` (ACC holds it unshifted), any
  other synaptic layer's frame (bias included). Every partial sum of a frame lies inside it, since
  the bounds add each channel's negative and positive weights apart.
- MEM (:func:`dif_ranges`): per DIF layer, its input current's frame range, θ, ``v0`` and the
  potential range (``potential_bits``).

The width checks (:func:`check`) hold these to ``program.widths``, so that a change in program.py's
derivation shows here as a failure rather than as a proof of the wrong range.
"""

from __future__ import annotations

from dataclasses import dataclass

from ...artifact.schema import bounds, signed_bits
from ...hw.program import SCATTER_SRC

__all__ = ["acc_range", "DifRanges", "dif_ranges", "widest_dif", "check"]


def acc_range(program) -> tuple[int, int]:
    """``(lo, hi)``: every value ACC holds during any scatter op of ``program`` (their union)."""
    b, a = bounds(program.artifact), program.artifact
    lo, hi = 0, 0
    for op in program.ops:
        if op.src not in SCATTER_SRC:
            continue
        layer = a.layer(op.layers[0])
        lb = b[layer.name]
        if layer.kind == "head":
            r = lb["total"]
        elif layer.kind == "tdec_matmul":
            sh = layer.attrs["shift"]
            r = [lb["frame"][0] >> sh, lb["frame"][1] >> sh]
        else:
            r = lb["frame"]
        lo, hi = min(lo, r[0]), max(hi, r[1])
    return lo, hi


@dataclass(frozen=True)
class DifRanges:
    """A DIF layer's operand ranges (inclusive) and its potential's, from the artifact's bounds."""

    layer: str
    current: tuple[int, int]  # any single input frame
    threshold: tuple[int, int]
    v0: tuple[int, int]
    potential: tuple[int, int]


def dif_ranges(program, layer: str) -> DifRanges:
    a = program.artifact
    b, lay = bounds(a), a.layer(layer)
    if lay.kind != "dif":
        raise ValueError(f"{layer}: not a dif layer ({lay.kind})")
    info = b[layer]
    return DifRanges(layer, tuple(b[lay.inputs[0]]["frame"]), tuple(info["threshold"]), tuple(info["v0"]),
                     tuple(info["potential"]))


def widest_dif(program) -> str:
    """The DIF layer whose potential needs the most bits: the one MEM's width is derived from."""
    a, b = program.artifact, bounds(program.artifact)
    difs = [n for n in program.spike_layers if a.layer(n).kind == "dif"]
    return max(difs, key=lambda n: b[n]["potential_bits"])


def check(program) -> None:
    """Raise ``AssertionError`` unless ACC's and MEM's widths are the bits of these ranges."""
    lo, hi = acc_range(program)
    assert signed_bits(lo, hi) == program.widths["acc"], (lo, hi, program.widths["acc"])
    p = dif_ranges(program, widest_dif(program)).potential
    assert signed_bits(*p) == program.widths["mem"], (p, program.widths["mem"])
