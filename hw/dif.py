"""DIF neuron array: delayed integrate-and-fire, reset by subtraction (SPEC §5, ``dif`` layers).

Judged by :func:`csdformer.sim.golden.dif` (:data:`GOLDEN`), window by window.

``lanes`` (P) neurons are updated per cycle; the ``neurons`` (N) of a layer are walked in
``G = ceil(N / P)`` lane groups. Each neuron's threshold ``θ`` and initial potential ``v0`` sit in
ROMs (``amaranth.lib.memory``, initialised from the arrays); membrane potentials sit in a RAM,
one word of P potentials per group. Per local step ``t = 0 .. T + D − 1`` and group, one beat
goes through the three stages of the golden op:

* **charge**: ``v = (t == 0 ? v0 : v) + I(t)`` (``I = 0`` in the D fire-only steps ``t >= T``);
* **fire**: if ``t >= D``: ``fire = v >= θ`` — computed as the sign of ``v_old + (I − θ)``, formed
  side by side with ``v_old + I`` (``I − θ`` is formed one stage earlier, θ read from a
  combinational ROM at issue), so one adder sits on each path;
* **reset**: ``v -= fire ? θ : 0``, written back.

Widths: the input currents hold the stated per-frame bounds ``(lo, hi)``; the membrane holds
``min(v0, 0) + T · min(lo, 0) .. max(v0) + T · max(hi, 0)`` (and θ), exactly what
``artifact.bounds()`` states as ``potential``. Anything smaller raises
:class:`~csdformer.hw.HwParamError`: the membrane never wraps.

Stream formats
--------------
``i_stream``: current frames, one beat per group of P neurons (lane ``l`` = neuron ``g·P + l``,
``in_width``-bit two's complement; lanes past N are ignored), group-major within a frame, T frames
per window, window after window. ``o_stream``: spike frames, one beat per group (bit ``l`` =
neuron ``g·P + l``; bits past N read 0), frame ``t − D`` emitted at local step ``t``; T frames per
window. The unit takes no input during the D fire-only steps.

Pipeline: issue (counters, memory read addresses) → compute (charge/fire/reset, write-back,
output beat). One beat per cycle; the RAM read port is transparent to the write port, so
back-to-back beats of one group (G = 1) see the fresh potential. ``latency`` = 1.
"""

from __future__ import annotations

import numpy as np
from amaranth.hdl import Module, Mux, Signal, signed, unsigned
from amaranth.lib import memory, stream, wiring
from amaranth.lib.wiring import In, Out

from .common import HwParamError, validated, check_int, check_width, check_window, int_array

__all__ = ["DIF", "cycles", "reference", "GOLDEN", "SYNTH_PARAMS", "build_for_synth"]

GOLDEN = "csdformer.sim.golden.dif"


def reference(currents, threshold, delay: int, v0=None) -> np.ndarray:
    """Golden output of a stream of windows: ``currents (windows, T, N)`` → uint8 ``(windows, T, N)``."""
    from ..sim import golden

    currents = np.asarray(currents)
    return np.stack([golden.dif(w, threshold, delay, v0) for w in currents]) if len(currents) else \
        np.zeros(currents.shape, dtype=np.uint8)


def _pack(values, width: int) -> int:
    word, mask = 0, (1 << width) - 1
    for i, v in enumerate(values):
        word |= (int(v) & mask) << (i * width)
    return word


class DIF(wiring.Component):
    """Array of DIF neurons, ``lanes`` updated per cycle.

    Parameters
    ----------
    neurons : int
        Neurons of the layer (N >= 1).
    lanes : int
        Neurons per beat (P >= 1).
    T : int
        Time window (>= 1).
    D : int
        Delay, ``0 <= D <= T − 1`` (0: plain IF neuron).
    threshold : int or int array (N,)
        Firing thresholds ``θ >= 1``.
    v0 : int or int array (N,), optional
        Initial potentials; default ``θ // 2`` (as the golden op).
    current_bounds : (int, int)
        Range ``(lo, hi)`` of any input current (``artifact.bounds()[input]["frame"]``).
    in_width, potential_width : int, optional
        Widths of an input lane and of the membrane; default the minimum for the bounds.

    Attributes
    ----------
    i_stream : In(stream.Signature(P × in_width))
    o_stream : Out(stream.Signature(P))
    """

    @validated
    def __init__(self, *, neurons: int, lanes: int, T: int, D: int, threshold, v0=None,
                 current_bounds, in_width=None, potential_width=None):
        self._N = check_int("neurons", neurons, lo=1)
        self._P = check_int("lanes", lanes, lo=1)
        self._T, self._D = check_window(T, D)
        self._G = -(-self._N // self._P)
        self._theta = int_array("threshold", threshold, (self._N,), lo=1)
        self._v0 = self._theta // 2 if v0 is None else int_array("v0", v0, (self._N,))
        lo, hi = (int(v) for v in current_bounds)
        if lo > hi:
            raise HwParamError(f"current_bounds: lo must be <= hi, got {current_bounds!r}")
        self._in_width = check_width("in_width", in_width, lo, hi, what="currents")
        p_lo = min(int(self._v0.min()), 0) + self._T * min(lo, 0)
        p_hi = max(int(self._v0.max()), 0) + self._T * max(hi, 0)
        self._potential_bounds = (p_lo, max(p_hi, int(self._theta.max())))
        self._pw = check_width("potential_width", potential_width, *self._potential_bounds,
                               what="membrane potentials")
        super().__init__({
            "i_stream": In(stream.Signature(unsigned(self._P * self._in_width))),
            "o_stream": Out(stream.Signature(unsigned(self._P))),
        })

    @classmethod
    def from_artifact(cls, artifact, layer: str, *, lanes: int, D: int | None = None) -> "DIF":
        """The DIF unit of ``dif`` layer ``layer``: θ, v0, T (and D, unless given) from the artifact,
        input widths from ``artifact.bounds()`` of the layer's input.

        Neuron order: a ``(C, H, W)`` layer is walked pixel-major, channels minor (``(y, x, c)``,
        the order the spike accumulator emits); a ``(rows, M)`` layer row-major.
        """
        from ..artifact import bounds

        lay = next((x for x in artifact.layers if x.name == layer), None)
        if lay is None or lay.kind != "dif":
            raise HwParamError(f"layer: {layer!r} is not a dif layer of {artifact.name!r}")
        shape = tuple(lay.shape)

        def order(a):
            a = np.broadcast_to(np.asarray(a, dtype=np.int64), shape)
            return (a.transpose(1, 2, 0) if len(shape) == 3 else a).reshape(-1)

        frame = bounds(artifact)[lay.inputs[0]]["frame"]
        return cls(neurons=int(np.prod(shape)), lanes=lanes, T=artifact.T,
                   D=artifact.delay if D is None else D, threshold=order(lay.arrays["threshold"]),
                   v0=order(lay.arrays["v0"]), current_bounds=tuple(frame))

    neurons = property(lambda self: self._N, doc="Neurons N.")
    lanes = property(lambda self: self._P, doc="Neurons per beat P.")
    groups = property(lambda self: self._G, doc="Beats per frame, ``ceil(N / P)``.")
    T = property(lambda self: self._T, doc="Time window.")
    D = property(lambda self: self._D, doc="Delay.")
    in_width = property(lambda self: self._in_width, doc="Bits of one input lane.")
    potential_width = property(lambda self: self._pw, doc="Bits of the membrane potential.")
    potential_bounds = property(lambda self: self._potential_bounds, doc="Range the membrane holds.")
    threshold = property(lambda self: self._theta.copy(), doc="Thresholds (N,).")
    v0 = property(lambda self: self._v0.copy(), doc="Initial potentials (N,).")

    @property
    def latency(self) -> int:
        """Cycles from an input beat accepted to its output beat (steps ``t >= D``)."""
        return 1

    def cycles(self, windows: int = 1) -> int:
        """Cycle model, see :func:`cycles`."""
        return cycles(self._G, self._T, self._D, windows)

    def _words(self, values, width: int) -> list[int]:
        P, N = self._P, self._N
        return [_pack([values[n] if n < N else 0 for n in range(g * P, g * P + P)], width)
                for g in range(self._G)]

    def elaborate(self, platform):
        m = Module()
        P, G, T, D, pw, iw = self._P, self._G, self._T, self._D, self._pw, self._in_width
        tw = check_width("threshold width", None, 0, int(self._theta.max()))
        vw = check_width("v0 width", None, int(self._v0.min()), int(self._v0.max()))

        m.submodules.vmem = vmem = memory.Memory(shape=unsigned(P * pw), depth=G, init=[])
        m.submodules.tmem = tmem = memory.Memory(shape=unsigned(P * tw), depth=G,
                                                 init=self._words(self._theta, tw))
        m.submodules.v0mem = v0mem = memory.Memory(shape=unsigned(P * vw), depth=G,
                                                   init=self._words(self._v0, vw))
        v_wr = vmem.write_port()
        v_rd = vmem.read_port(transparent_for=(v_wr,))
        t_rd = tmem.read_port(domain="comb")  # θ is needed at issue, to form I − θ early
        v0_rd = v0mem.read_port()

        i, o = self.i_stream, self.o_stream

        # issue stage: position (t, g) of the next beat
        t_a = Signal(range(T + D))
        g_a = Signal(range(G))
        charging = Signal()  # t_a < T: the beat comes from i_stream, else it is fire-only
        m.d.comb += charging.eq(t_a < T)

        # compute stage registers
        valid_b = Signal()
        t_b = Signal(range(T + D))
        g_b = Signal(range(G))
        cur_b = Signal(P * iw)
        emit_b = Signal()
        m.d.comb += emit_b.eq(t_b >= D)

        advance = Signal()
        issue = Signal()
        m.d.comb += [
            advance.eq(~valid_b | ~emit_b | o.ready),
            issue.eq(advance & (i.valid | ~charging)),
            i.ready.eq(advance & charging),
        ]
        m.d.comb += t_rd.addr.eq(g_a)
        for port in (v_rd, v0_rd):
            m.d.comb += [port.addr.eq(g_a), port.en.eq(advance)]

        # I − θ per lane, formed at issue so that the compute stage has one adder per path
        dw = max(iw, tw) + 1
        cmt_b = Signal(P * dw)
        cur_a = Signal(P * iw)
        cmt_a = Signal(P * dw)
        m.d.comb += cur_a.eq(Mux(charging, i.payload, 0))
        for lane in range(P):
            m.d.comb += cmt_a[lane * dw:(lane + 1) * dw].eq(
                cur_a[lane * iw:(lane + 1) * iw].as_signed() - t_rd.data[lane * tw:(lane + 1) * tw].as_signed())
        with m.If(advance):
            m.d.sync += [valid_b.eq(issue), t_b.eq(t_a), g_b.eq(g_a), cur_b.eq(cur_a), cmt_b.eq(cmt_a)]
        with m.If(issue):
            with m.If(g_a == G - 1):
                m.d.sync += g_a.eq(0)
                m.d.sync += t_a.eq(Mux(t_a == T + D - 1, 0, t_a + 1))
            with m.Else():
                m.d.sync += g_a.eq(g_a + 1)

        # compute stage: charge, fire, reset, per lane
        spikes = Signal(P)
        v_new = Signal(P * pw)
        for lane in range(P):
            cur = cur_b[lane * iw:(lane + 1) * iw].as_signed()
            cmt = cmt_b[lane * dw:(lane + 1) * dw].as_signed()
            base = Mux(t_b == 0, v0_rd.data[lane * vw:(lane + 1) * vw].as_signed(),
                       v_rd.data[lane * pw:(lane + 1) * pw].as_signed())
            charged = Signal(signed(pw), name=f"charge{lane}")     # v + I
            over = Signal(signed(pw + 1), name=f"over{lane}")      # v + I - θ, side by side
            fire = Signal(name=f"fire{lane}")
            m.d.comb += [
                charged.eq(base + cur),
                over.eq(base + cmt),
                fire.eq(emit_b & ~over[-1]),
                spikes[lane].eq(fire),
                v_new[lane * pw:(lane + 1) * pw].eq(Mux(fire, over, charged)),  # reset
            ]
        m.d.comb += [
            v_wr.addr.eq(g_b),
            v_wr.data.eq(v_new),
            v_wr.en.eq(valid_b & advance),
            o.valid.eq(valid_b & emit_b),
            o.payload.eq(spikes & self._lane_mask_of(g_b, m)),
        ]
        return m

    def _lane_mask_of(self, g, m) -> Signal:
        """Mask of the lanes of group ``g`` that hold a neuron (the last group may be partial)."""
        P, N, G = self._P, self._N, self._G
        full = (1 << P) - 1
        last = (1 << (N - (G - 1) * P)) - 1
        mask = Signal(P, name="lane_mask")
        if last == full:
            m.d.comb += mask.eq(full)
        else:
            m.d.comb += mask.eq(Mux(g == G - 1, last, full))
        return mask


def cycles(groups: int, T: int, D: int, windows: int = 1) -> int:
    """Cycles from the first input beat accepted to the last output beat sent.

    One beat per cycle for ``(T + D) · groups`` local steps a window (the D fire-only steps take no
    input), windows back to back, plus the one-cycle latency. Independent of the spike counts.
    """
    n = int(windows) * (int(T) + int(D)) * int(groups)
    return n + 1 if n else 0


SYNTH_PARAMS = {
    "N256_P8_T4_D3_w16": dict(neurons=256, lanes=8, T=4, D=3, current_bounds=(-2048, 2047), theta_max=255),
    "N256_P32_T4_D3_w16": dict(neurons=256, lanes=32, T=4, D=3, current_bounds=(-2048, 2047), theta_max=255),
}


def build_for_synth(params: dict) -> DIF:
    """A :class:`DIF` for one :data:`SYNTH_PARAMS` entry (seeded random thresholds)."""
    p = dict(params)
    theta_max = p.pop("theta_max")
    rng = np.random.default_rng(0)
    return DIF(threshold=rng.integers(1, theta_max + 1, p["neurons"]), **p)
