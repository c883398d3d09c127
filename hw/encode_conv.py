"""The encoding layer (``encode_conv``): the first convolution, on image pixels.

Bit-plane additions on the event-driven datapath of :mod:`csdformer.hw.accumulate`: no
multiplier (``uses_multipliers = False``). See :class:`EncodeConv`.
"""

from __future__ import annotations

import numpy as np

from .accumulate import _EventAccumulator
from .common import HwParamError, check_int

__all__ = ["EncodeConv", "cycles", "GOLDEN", "SYNTH_PARAMS", "build_for_synth"]

#: The golden op this unit is judged by.
GOLDEN = "csdformer.sim.synaptic.encode_frames"


class EncodeConv(_EventAccumulator):
    """The encoding layer: the first convolution, on image pixels, by bit-plane additions.

    Each non-zero pixel arrives as an event ``{c, y, x, value}``; the unit walks the set bits of
    ``value`` (lowest first) and, for each, adds the kernel weights shifted left by the bit's
    index: ``w · value = Σ_b w << b``. No multiplier (:attr:`uses_multipliers` is ``False``);
    cycles grow with the number of set pixel bits. The whole current, bias included, leaves as
    frame 1 of the window, followed by ``T − 1`` all-zero frames.

    Parameters
    ----------
    weight : int array ``(M, C, k, k)``
    bias : int array ``(M,)``
    in_shape : ``(C, H, W)``
    max_value : int
        Largest pixel value (sets the bit-planes and the current bound).
    T, lanes, stride, padding, width
        As :class:`SpikeAccumulator`.

    Attributes
    ----------
    i_stream, o_stream, latency
        As :class:`SpikeAccumulator` (events carry ``value``).
    uses_multipliers : bool
        ``False``: bit-plane additions.
    """

    uses_multipliers = False

    def __init__(self, weight, bias, in_shape, *, max_value: int, T: int, lanes: int, stride: int = 1,
                 padding: int = 0, width: int | None = None):
        try:
            self.max_value = check_int("max_value", max_value, lo=1)
        except HwParamError:
            self._MustUse__silence = True
            raise
        super().__init__(weight, bias, in_shape, T=T, lanes=lanes, stride=stride, padding=padding,
                         planes=int(max_value).bit_length(), encode=True, width=width, max_value=int(max_value))

    @classmethod
    def for_layer(cls, artifact, name: str, *, lanes: int):
        """The unit of an ``encode_conv`` layer, its width the artifact's stated bound."""
        from ..artifact.schema import bounds

        layer = artifact.layer(name)
        if layer.kind != "encode_conv":
            raise HwParamError(f"name: {name!r} is a {layer.kind} layer, not encode_conv")
        return cls(layer.arrays["weight"], layer.arrays["bias"], artifact.input.shape,
                   max_value=artifact.input.max_value, T=artifact.T, lanes=lanes, stride=layer.attrs["stride"],
                   padding=layer.attrs["padding"], width=bounds(artifact)[name]["frame_bits"])

    def cycles(self, pixel_values) -> int:
        """Cycle model: see :func:`cycles`."""
        return cycles(self, pixel_values)


def cycles(unit: EncodeConv, pixel_values) -> int:
    """Cycles an :class:`EncodeConv` takes for one image, given the values its events carry.

    ``2 + Σ_events (popcount(value) · k² · G, or 1 for a zero value) + T · H'W' · G`` with the
    input always valid and the output always ready (:func:`~csdformer.hw.accumulate.pixel_events`
    sends non-zero pixels only).
    """
    work = sum(bin(int(v)).count("1") * unit.taps if int(v) else 1 for v in np.atleast_1d(pixel_values))
    return 2 + work + unit.T * unit.beats


#: Parameter sets ``bench/hw_synth.py`` synthesizes (ECP5-85F).
SYNTH_PARAMS = {
    "enc-28x28-c1-m16-l8": dict(M=16, C=1, H=28, W=28, stride=1, padding=1, max_value=255, T=4, lanes=8, wbits=8),
    "enc-32x32-c3-m32-l32": dict(M=32, C=3, H=32, W=32, stride=1, padding=1, max_value=255, T=4, lanes=32, wbits=8),
}


def build_for_synth(params: dict) -> EncodeConv:
    """A unit for one :data:`SYNTH_PARAMS` entry, with seeded random full-range weights."""
    p = dict(params)
    rng = np.random.default_rng(0)
    wmax = 2 ** (p["wbits"] - 1) - 1
    w = rng.integers(-wmax, wmax + 1, (p["M"], p["C"], 3, 3))
    return EncodeConv(w, rng.integers(-64 * wmax, 64 * wmax, p["M"]), (p["C"], p["H"], p["W"]),
                      max_value=p["max_value"], T=p["T"], lanes=p["lanes"], stride=p["stride"], padding=p["padding"])
