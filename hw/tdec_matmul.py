"""TDEC matrix product of two spike sequences (SPEC §5, paper §3.3.2): ``tdec_matmul`` layers.

Per head ``h``, frame ``t``: ``P(t) = a(t) · Bcum(t) + Acum(t−1) · b(t)`` with ``Acum``/``Bcum``
the cumulative spike counts since the window's first frame, then ``P(t) << shift``. The unit
keeps the cumulative counters in on-chip memory (updated as each frame's spikes stream in) and
forms every product term as a spike-gated addition of a small count: lane ``j`` adds
``a(t)[i,k] ? Bcum(t)[k,j] : 0`` and ``b(t)[k,j] ? Acum(t−1)[i,k] : 0``. No multiplier.

Dataflow per frame: LOAD (the ``a`` and ``b`` spike words stream in side by side; each updates
its counter word: read, add, write), then COMPUTE (for every head, row ``i`` and lane group
``g``, ``inner`` cycles of gated additions into ``lanes`` accumulators, one output beat each).
The schedule is dense in ``k`` (``inner`` cycles per output beat whatever the spikes), so the
cycle count depends on the shape only.

Stream formats (``G = ceil(cols / lanes)``, ``KG = ceil(inner / lanes)``)
-------------------------------------------------------------------------
``a_stream``: ``heads · rows · KG`` beats of ``lanes`` bits in order (h, i, kg), bit ``l`` =
``a[h, i, kg·lanes + l]``. ``b_stream``: ``heads · inner · G`` beats in order (h, k, g), bit
``l`` = ``b[h, k, g·lanes + l]``. ``o_stream``: ``heads · rows · G`` beats of ``lanes × width``
bits (unsigned) in order (h, i, g), lane ``l`` = ``P[h, i, g·lanes + l] << shift``.

For ``q·kᵀ``: ``a = q`` split into heads ``(heads, N, d)``, ``b = kᵀ`` per head ``(heads, d, N)``.
For ``attn·v``: ``a = attn (heads, N, N)``, ``b = v`` split into heads ``(heads, N, d)``; the
output ``(heads, N, d)`` merges to ``(N, heads·d)``. :func:`operand_views` does these layouts.
"""

from __future__ import annotations

import numpy as np
from amaranth.hdl import Module, Mux, Signal, unsigned
from amaranth.lib import memory, stream, wiring
from amaranth.lib.wiring import In, Out

from .accumulate import _is_int, _wrap_inc
from .common import HwParamError, check_int, unsigned_bits

__all__ = ["TdecMatmul", "cycles", "operand_views", "merge_output", "GOLDEN", "SYNTH_PARAMS", "build_for_synth"]

#: The golden op this unit is judged by (per head, then ``<< shift``).
GOLDEN = "csdformer.sim.golden.tdec_matmul"


def operand_views(operands: str, a, b, heads: int):
    """Per-head ``(T, heads, rows, inner)`` and ``(T, heads, inner, cols)`` views of layer inputs.

    ``q_kT``: ``a = q (T, N, C)``, ``b = k (T, N, C)``. ``attn_v``: ``a = attn (T, heads, N, N)``,
    ``b = v (T, N, C)``. Matches ``sim/runner.py``'s head split.
    """
    a, b = np.asarray(a), np.asarray(b)

    def split(x):  # (T, N, C) → (T, heads, N, d)
        t, n, c = x.shape
        return x.reshape(t, n, heads, c // heads).transpose(0, 2, 1, 3)

    if operands == "q_kT":
        return split(a), split(b).transpose(0, 1, 3, 2)
    if operands == "attn_v":
        return a, split(b)
    raise HwParamError(f"operands: must be 'q_kT' or 'attn_v', got {operands!r}")


def merge_output(operands: str, p):
    """The unit's ``(T, heads, rows, cols)`` output as the layer's tensor (``attn_v`` merges heads)."""
    p = np.asarray(p)
    if operands == "attn_v":
        t, h, n, d = p.shape
        return p.transpose(0, 2, 1, 3).reshape(t, n, h * d)
    return p


class TdecMatmul(wiring.Component):
    """Multi-head TDEC matrix product of spike sequences, spike-gated additions only.

    Parameters
    ----------
    heads : int
    rows : int
        Rows ``N`` of ``a`` per head.
    inner : int
        The summed dimension ``K``.
    cols : int
        Columns ``M`` of ``b`` per head.
    T : int
        Frames per window (the counters restart at each window's first frame).
    lanes : int
        Output columns computed in parallel (the area/speed knob).
    shift : int
        Output currents are ``P(t) << shift``.
    width : int, optional
        Unsigned output width; default and minimum: bits of ``inner · (2T − 1) << shift``.

    Attributes
    ----------
    a_stream, b_stream : ``In(stream.Signature(lanes))``
        Spike words (module doc).
    o_stream : ``Out(stream.Signature(lanes × width))``
    latency : int
        Cycles from the last input beat of a frame to its first output beat.
    uses_multipliers : bool
        Always ``False``.
    """

    uses_multipliers = False

    def __init__(self, *, heads: int, rows: int, inner: int, cols: int, T: int, lanes: int, shift: int = 0,
                 width: int | None = None):
        try:
            self.heads, self.rows = check_int("heads", heads, lo=1), check_int("rows", rows, lo=1)
            self.inner, self.cols = check_int("inner", inner, lo=1), check_int("cols", cols, lo=1)
            self.lanes, self.T = check_int("lanes", lanes, lo=1), check_int("T", T, lo=1)
            self.shift = check_int("shift", shift, lo=0)
            self.count_width = self.T.bit_length()  # counts 0..T
            self.frame_max = self.inner * (2 * self.T - 1) << self.shift
            self.acc_width = unsigned_bits(self.inner * (2 * self.T - 1))
            need = unsigned_bits(self.frame_max)
            if width is None:
                width = need
            if check_int("width", width, lo=1) < need:
                raise HwParamError(f"width: currents reach {self.frame_max} and need {need} unsigned bits, "
                                   f"got {width!r}")
        except HwParamError:
            self._MustUse__silence = True  # a refused unit is not an unused elaboratable
            raise
        self.width = int(width)
        P = self.lanes
        self.groups = -(-self.cols // P)
        self.kgroups = -(-self.inner // P)
        self.a_beats = self.heads * self.rows * self.kgroups
        self.b_beats = self.heads * self.inner * self.groups
        self.o_beats = self.heads * self.rows * self.groups
        super().__init__({
            "a_stream": In(stream.Signature(unsigned(P))),
            "b_stream": In(stream.Signature(unsigned(P))),
            "o_stream": Out(stream.Signature(unsigned(P * self.width))),
        })

    @classmethod
    def for_layer(cls, operands: str, *, heads: int, tokens: int, channels: int, T: int, lanes: int,
                  shift: int = 0, width: int | None = None):
        """The unit of a ``tdec_matmul`` layer: ``q_kT`` (q, k ``(N, C)``) or ``attn_v`` (attn, v)."""
        if not _is_int(heads) or heads < 1 or not _is_int(channels) or channels % heads:
            raise HwParamError(f"channels: {channels!r} must be divisible by heads {heads!r}")
        d = channels // heads
        if operands == "q_kT":
            return cls(heads=heads, rows=tokens, inner=d, cols=tokens, T=T, lanes=lanes, shift=shift, width=width)
        if operands == "attn_v":
            return cls(heads=heads, rows=tokens, inner=tokens, cols=d, T=T, lanes=lanes, shift=shift, width=width)
        raise HwParamError(f"operands: must be 'q_kT' or 'attn_v', got {operands!r}")

    @classmethod
    def from_artifact(cls, artifact, name: str, *, lanes: int):
        """The unit of a ``tdec_matmul`` layer of an artifact (its bound is checked, unsigned)."""
        from ..artifact.schema import bounds

        layer = artifact.layer(name)
        if layer.kind != "tdec_matmul":
            raise HwParamError(f"name: {name!r} is a {layer.kind} layer, not tdec_matmul")
        n, c = artifact.layer(layer.inputs[1]).shape
        unit = cls.for_layer(layer.attrs["operands"], heads=layer.attrs["heads"], tokens=n, channels=c,
                             T=artifact.T, lanes=lanes, shift=layer.attrs["shift"])
        if unit.frame_max != bounds(artifact)[name]["frame"][1]:
            unit._MustUse__silence = True
            raise HwParamError(f"name: the unit's bound {unit.frame_max} differs from the artifact's")
        return unit

    @property
    def latency(self) -> int:
        """Cycles from the last input beat of a frame to its first output beat."""
        return 3 + self.inner

    def _words(self, x, n: int) -> list[int]:
        x = np.asarray(x, dtype=np.int64)
        g = -(-n // self.lanes)
        pad = np.zeros(x.shape[:-1] + (g * self.lanes,), dtype=np.int64)
        pad[..., :n] = x
        packed = np.packbits(pad.reshape(-1, self.lanes).astype(np.uint8), axis=1, bitorder="little")
        return [int.from_bytes(row.tobytes(), "little") for row in packed]

    def a_words(self, a) -> list[int]:
        """``a_stream`` words of spike frames ``a (frames, heads, rows, inner)``."""
        return self._words(a, self.inner)

    def b_words(self, b) -> list[int]:
        """``b_stream`` words of spike frames ``b (frames, heads, inner, cols)``."""
        return self._words(b, self.cols)

    def output_beats(self, p) -> np.ndarray:
        """Expected ``o_stream`` beats ``(n, lanes)`` of currents ``(frames, heads, rows, cols)`` (shifted)."""
        p = np.asarray(p, dtype=np.int64)
        pad = np.zeros(p.shape[:-1] + (self.groups * self.lanes,), dtype=np.int64)
        pad[..., : self.cols] = p
        return pad.reshape(-1, self.lanes)

    def cycles(self, frames: int = 1) -> int:
        """Cycle model: see :func:`cycles`."""
        return cycles(self, frames)

    def elaborate(self, platform):
        m = Module()
        P, cb, G, KG, K = self.lanes, self.count_width, self.groups, self.kgroups, self.inner
        aw = P * cb + P  # Acum lanes | a bits
        m.submodules.amem = amem = memory.Memory(shape=unsigned(aw), depth=self.a_beats, init=[])
        m.submodules.bmem = bmem = memory.Memory(shape=unsigned(aw), depth=self.b_beats, init=[])
        a_wr, b_wr = amem.write_port(), bmem.write_port()
        a_rd, b_rd = amem.read_port(), bmem.read_port()
        ai, bi, o = self.a_stream, self.b_stream, self.o_stream

        t = Signal(range(self.T))
        first_frame = Signal()
        m.d.comb += first_frame.eq(t == 0)

        # ---- LOAD: counter update pipelines (read old word, add the spike bits, write back) --------
        na = Signal(range(self.a_beats + 1))
        nb = Signal(range(self.b_beats + 1))
        a1_we, b1_we = Signal(), Signal()
        a1_addr, b1_addr = Signal(range(self.a_beats)), Signal(range(self.b_beats))
        a1_bits, b1_bits = Signal(P), Signal(P)
        m.d.sync += [a1_we.eq(0), b1_we.eq(0)]
        for we, addr, bits, rd, wr in ((a1_we, a1_addr, a1_bits, a_rd, a_wr), (b1_we, b1_addr, b1_bits, b_rd, b_wr)):
            new = Signal(aw)
            for lane in range(P):
                old = Mux(first_frame, 0, rd.data[lane * cb:(lane + 1) * cb])
                m.d.comb += new[lane * cb:(lane + 1) * cb].eq(old + bits[lane])
            m.d.comb += [new[P * cb:].eq(bits), wr.addr.eq(addr), wr.data.eq(new), wr.en.eq(we)]

        # ---- COMPUTE: issue counters ------------------------------------------------------------
        # loop order h, i, g, k (k innermost); A word (h, i, k // P), B word (h, k, g)
        hh = Signal(range(self.heads))
        ii = Signal(range(self.rows))
        gg = Signal(range(G))
        kk = Signal(range(K))
        kl = Signal(range(P))  # k % P
        arow = Signal(range(self.a_beats + 1))  # (h, i) row base of A
        aaddr = Signal(range(self.a_beats + 1))
        bbase = Signal(range(self.b_beats + 1))  # h·K·G + g
        baddr = Signal(range(self.b_beats + G + 1))
        hbase = Signal(range(self.b_beats + 1))  # h·K·G

        s1_valid, s1_first, s1_last = Signal(), Signal(), Signal()
        s1_kl = Signal(range(P))
        acc = [Signal(self.acc_width, name=f"acc{lane}") for lane in range(P)]
        ovalid = Signal()
        opay = Signal(P * self.width)
        m.d.comb += [o.valid.eq(ovalid), o.payload.eq(opay)]
        with m.If(o.ready):
            m.d.sync += ovalid.eq(0)
        stall = Signal()
        m.d.comb += stall.eq(ovalid & ~o.ready)

        # ---- COMPUTE: gated additions (stage 1) ------------------------------------------------------
        abit = Signal()
        acnt = Signal(cb)
        with m.Switch(s1_kl):
            for lane in range(P):
                with m.Case(lane):
                    m.d.comb += [abit.eq(a_rd.data[P * cb + lane]), acnt.eq(a_rd.data[lane * cb:(lane + 1) * cb])]
        aprev = Signal(cb)
        m.d.comb += aprev.eq(acnt - abit)
        sums = []
        for lane in range(P):
            bcnt = b_rd.data[lane * cb:(lane + 1) * cb]
            bbit = b_rd.data[P * cb + lane]
            s = Signal(self.acc_width, name=f"sum{lane}")
            m.d.comb += s.eq(Mux(s1_first, 0, acc[lane]) + Mux(abit, bcnt, 0) + Mux(bbit, aprev, 0))
            sums.append(s)
        with m.If(s1_valid & ~stall):
            m.d.sync += [acc[lane].eq(sums[lane]) for lane in range(P)]
            with m.If(s1_last):
                m.d.sync += ovalid.eq(1)
                m.d.sync += [opay[lane * self.width:(lane + 1) * self.width].eq(sums[lane] << self.shift)
                             for lane in range(P)]
        with m.If(~stall):
            m.d.sync += s1_valid.eq(0)

        with m.FSM(init="LOAD"):
            with m.State("LOAD"):
                m.d.comb += [ai.ready.eq(na != self.a_beats), bi.ready.eq(nb != self.b_beats),
                             a_rd.addr.eq(na), b_rd.addr.eq(nb)]
                with m.If(ai.valid & ai.ready):
                    m.d.sync += [na.eq(na + 1), a1_we.eq(1), a1_addr.eq(na), a1_bits.eq(ai.payload)]
                with m.If(bi.valid & bi.ready):
                    m.d.sync += [nb.eq(nb + 1), b1_we.eq(1), b1_addr.eq(nb), b1_bits.eq(bi.payload)]
                with m.If((na == self.a_beats) & (nb == self.b_beats)):
                    # the last counter write lands this cycle; COMPUTE reads from the next one
                    m.d.sync += [na.eq(0), nb.eq(0), hh.eq(0), ii.eq(0), gg.eq(0), kk.eq(0), kl.eq(0),
                                 arow.eq(0), aaddr.eq(0), bbase.eq(0), baddr.eq(0), hbase.eq(0)]
                    m.next = "COMPUTE"
            with m.State("COMPUTE"):
                m.d.comb += [a_rd.addr.eq(aaddr), b_rd.addr.eq(baddr), a_rd.en.eq(~stall), b_rd.en.eq(~stall)]
                with m.If(~stall):
                    last_k, last_g = kk == K - 1, gg == G - 1
                    last_i, last_h = ii == self.rows - 1, hh == self.heads - 1
                    m.d.sync += [s1_valid.eq(1), s1_first.eq(kk == 0), s1_last.eq(last_k), s1_kl.eq(kl)]
                    with m.If(~last_k):
                        m.d.sync += [kk.eq(kk + 1), kl.eq(_wrap_inc(kl, P)), baddr.eq(baddr + G)]
                        with m.If(kl == P - 1):
                            m.d.sync += aaddr.eq(aaddr + 1)
                    with m.Else():
                        m.d.sync += [kk.eq(0), kl.eq(0), aaddr.eq(arow)]
                        with m.If(~last_g):
                            m.d.sync += [gg.eq(gg + 1), bbase.eq(bbase + 1), baddr.eq(bbase + 1)]
                        with m.Else():
                            m.d.sync += [gg.eq(0), arow.eq(arow + KG), aaddr.eq(arow + KG)]
                            with m.If(~last_i):
                                m.d.sync += [ii.eq(ii + 1), bbase.eq(hbase), baddr.eq(hbase)]
                            with m.Else():
                                m.d.sync += [ii.eq(0), hh.eq(hh + 1), hbase.eq(hbase + K * G),
                                             bbase.eq(hbase + K * G), baddr.eq(hbase + K * G)]
                                with m.If(last_h):
                                    m.next = "DRAIN"
            with m.State("DRAIN"):
                with m.If(~s1_valid):
                    m.d.sync += t.eq(_wrap_inc(t, self.T))
                    m.next = "LOAD"
        return m


def cycles(unit: TdecMatmul, frames: int = 1) -> int:
    """Cycles per frame with both inputs always valid and the output always ready.

    ``max(A, B) + 1`` load cycles (``A``/``B`` the input beats) and ``heads · rows · G · inner``
    compute cycles plus 2 to drain: spike-gated additions, dense in the summed dimension.
    """
    u = unit
    return frames * (max(u.a_beats, u.b_beats) + 1 + u.heads * u.rows * u.groups * u.inner + 2)


#: Parameter sets ``bench/hw_synth.py`` synthesizes (ECP5-85F).
SYNTH_PARAMS = {
    "q_kT-h2-n16-c32-l8": dict(operands="q_kT", heads=2, tokens=16, channels=32, T=4, lanes=8, shift=1),
    "attn_v-h4-n49-c64-l16": dict(operands="attn_v", heads=4, tokens=49, channels=64, T=4, lanes=16, shift=0),
    "q_kT-h8-n64-c384-l32": dict(operands="q_kT", heads=8, tokens=64, channels=384, T=4, lanes=32, shift=0),
}


def build_for_synth(params: dict) -> TdecMatmul:
    """A unit for one :data:`SYNTH_PARAMS` entry."""
    p = dict(params)
    return TdecMatmul.for_layer(p.pop("operands"), **p)
