"""TDEC max-pool unit (SPEC §5, paper §3.3.2): ``out(t) = MP(C(t)) − MP(C(t−1))``.

Judged by :func:`csdformer.sim.golden.tdec_maxpool` (:data:`GOLDEN`), window by window.

``C(t)`` are the cumulative spike counts of the input positions since the window's first frame,
kept in a count RAM (one word of ``lanes`` counts per pixel and channel group); ``MP(C(t−1))`` of
every output position is kept in a max RAM. Because counts grow by at most 1 a frame, the output
is binary: ``out(t) = MP(C(t)) > MP(C(t−1))``. No multiplier: window tap addresses come from a
ROM of precomputed ``pixel · G`` offsets (``G = ceil(channels / lanes)``), plus the group.

Per frame, two phases:

* **load** (``H · W · G`` cycles, one input beat each): ``C += spikes`` (read, register, add, write back;
  the count is taken as 0 in the window's first frame);
* **pool** (``H' · W' · G · k²`` cycles): for every output position and group, walk the ``k × k``
  taps (padding taps read 0), running max per lane; at the last tap compare with the stored
  ``MP(C(t−1))`` (0 in the first frame), write the new max back and emit one output beat; then
  five cycles to drain the pipeline. Cycle model: :func:`cycles`.

Every block-RAM output is registered before any logic uses it (ECP5 DP16KD clock-to-out is
~6 ns), so the RAM → logic → RAM paths stay short.

Stream formats
--------------
``i_stream``: spike frames, one beat per pixel and channel group, order ``(y, x, g)``; bit ``l`` =
channel ``g·P + l`` (bits past ``channels`` ignored); T frames a window, window after window.
``o_stream``: one beat per output position and group, order ``(y', x', g)``, same bit layout.
"""

from __future__ import annotations

import numpy as np
from amaranth.hdl import Cat, Module, Mux, Signal, unsigned
from amaranth.lib import memory, stream, wiring
from amaranth.lib.wiring import In, Out

from .common import HwParamError, check_int, check_window, unsigned_bits, validated

__all__ = ["TDECMaxPool", "cycles", "reference", "GOLDEN", "SYNTH_PARAMS", "build_for_synth"]

GOLDEN = "csdformer.sim.golden.tdec_maxpool"


def reference(spikes, kernel: int, stride: int | None = None, padding: int = 0) -> np.ndarray:
    """Golden output of a stream of windows: ``(windows, T, C, H, W)`` → ``(windows, T, C, H', W')``."""
    from ..sim import golden

    return np.stack([golden.tdec_maxpool(w, kernel, stride, padding) for w in np.asarray(spikes)])


class TDECMaxPool(wiring.Component):
    """Temporally decomposed max-pool over ``(channels, height, width)`` spike frames.

    Parameters
    ----------
    channels, height, width : int
        Input frame shape (>= 1 each).
    lanes : int
        Channels per beat (P >= 1).
    T : int
        Time window (>= 1); counts hold ``0..T``.
    kernel : int
        Pooling window ``k`` (>= 1).
    stride : int, optional
        Default ``kernel``.
    padding : int
        ``0 <= 2·padding <= kernel`` (as the golden op); padding taps count 0.

    Attributes
    ----------
    i_stream : In(stream.Signature(P))
    o_stream : Out(stream.Signature(P))
    """

    @validated
    def __init__(self, *, channels: int, height: int, width: int, lanes: int, T: int, kernel: int,
                 stride: int | None = None, padding: int = 0):
        self._C = check_int("channels", channels, lo=1)
        self._H = check_int("height", height, lo=1)
        self._W = check_int("width", width, lo=1)
        self._P = check_int("lanes", lanes, lo=1)
        self._T, _ = check_window(T)
        self._k = check_int("kernel", kernel, lo=1)
        self._s = self._k if stride is None else check_int("stride", stride, lo=1)
        self._p = check_int("padding", padding, lo=0)
        if 2 * self._p > self._k:
            raise HwParamError(f"padding: must be at most kernel/2 = {self._k / 2}, got {self._p}")
        self._Ho = (self._H + 2 * self._p - self._k) // self._s + 1
        self._Wo = (self._W + 2 * self._p - self._k) // self._s + 1
        if self._Ho < 1 or self._Wo < 1:
            raise HwParamError(f"kernel: {self._k} (padding {self._p}) does not fit a {self._H}x{self._W} frame")
        self._G = -(-self._C // self._P)
        self._cw = unsigned_bits(self._T)
        super().__init__({
            "i_stream": In(stream.Signature(unsigned(self._P))),
            "o_stream": Out(stream.Signature(unsigned(self._P))),
        })

    @classmethod
    def from_artifact(cls, artifact, layer: str, *, lanes: int) -> "TDECMaxPool":
        """The unit of ``maxpool`` layer ``layer`` (input shape from the layer that feeds it)."""
        lay = next((x for x in artifact.layers if x.name == layer), None)
        if lay is None or lay.kind != "maxpool":
            raise HwParamError(f"layer: {layer!r} is not a maxpool layer of {artifact.name!r}")
        src = next(x for x in artifact.layers if x.name == lay.inputs[0])
        C, H, W = src.shape
        return cls(channels=C, height=H, width=W, lanes=lanes, T=artifact.T, kernel=lay.attrs["kernel"],
                   stride=lay.attrs.get("stride"), padding=lay.attrs.get("padding", 0))

    lanes = property(lambda self: self._P, doc="Channels per beat P.")
    groups = property(lambda self: self._G, doc="Channel groups G = ceil(C / P).")
    T = property(lambda self: self._T, doc="Time window.")
    count_width = property(lambda self: self._cw, doc="Bits of a cumulative count (0..T).")
    in_shape = property(lambda self: (self._C, self._H, self._W), doc="(C, H, W).")
    out_shape = property(lambda self: (self._C, self._Ho, self._Wo), doc="(C, H', W').")

    @property
    def latency(self) -> int:
        """Cycles from the last input beat of a frame accepted to the frame's first output beat."""
        return self._k * self._k + 5

    def cycles(self, frames: int = 1) -> int:
        """Cycle model, see :func:`cycles`."""
        return cycles(self._H * self._W * self._G, self._Ho * self._Wo * self._G * self._k * self._k, frames)

    def _taps(self) -> list[int]:
        """ROM: per output position and tap, ``valid | (pixel · G) << 1``."""
        k, s, p, G = self._k, self._s, self._p, self._G
        words = []
        for oy in range(self._Ho):
            for ox in range(self._Wo):
                for ky in range(k):
                    for kx in range(k):
                        iy, ix = oy * s - p + ky, ox * s - p + kx
                        if 0 <= iy < self._H and 0 <= ix < self._W:
                            words.append(1 | ((iy * self._W + ix) * G) << 1)
                        else:
                            words.append(0)
        return words

    def elaborate(self, platform):
        m = Module()
        P, G, T, cw, kk = self._P, self._G, self._T, self._cw, self._k * self._k
        B = self._H * self._W * G           # load beats a frame
        O = self._Ho * self._Wo * G         # output beats a frame
        aw = unsigned_bits(B - 1)

        m.submodules.cmem = cmem = memory.Memory(shape=unsigned(P * cw), depth=B, init=[])
        m.submodules.mmem = mmem = memory.Memory(shape=unsigned(P * cw), depth=O, init=[])
        m.submodules.taps = taps = memory.Memory(shape=unsigned(1 + aw), depth=self._Ho * self._Wo * kk,
                                                 init=self._taps())
        c_wr = cmem.write_port()
        c_rd = cmem.read_port(transparent_for=(c_wr,))
        m_wr = mmem.write_port()
        m_rd = mmem.read_port(transparent_for=(m_wr,))
        t_rd = taps.read_port()

        i, o = self.i_stream, self.o_stream
        t = Signal(range(T))
        first_frame = Signal()
        m.d.comb += first_frame.eq(t == 0)

        # lanes that hold a channel (the last group may be partial)
        def lane_mask(g):
            full, last = (1 << P) - 1, (1 << (self._C - (G - 1) * P)) - 1
            return full if last == full else Mux(g == G - 1, last, full)

        # ---- load phase: C += spikes; read (L0), register the RAM output (L1), add and write (L2)
        load_addr = Signal(range(B))
        load_g = Signal(range(G))
        l1_valid, l2_valid = Signal(), Signal()
        l1_addr, l2_addr = Signal(range(B)), Signal(range(B))
        l1_spikes, l2_spikes = Signal(P), Signal(P)
        l2_old = Signal(P * cw)
        # ---- pool phase: S0 tap ROM read, S1 ROM data registered, S2 count/max RAM read,
        # ---- S3 RAM data registered, S4 running max / compare / write-back / output register
        advance = Signal()
        beat = Signal(range(O))       # output beat index (y', x', g)
        g0 = Signal(range(G))
        j0 = Signal(range(kk))
        rom_base = Signal(range(self._Ho * self._Wo * kk))

        def stage(n):
            return dict(valid=Signal(name=f"s{n}_valid"), first=Signal(name=f"s{n}_first"),
                        last=Signal(name=f"s{n}_last"), g=Signal(range(G), name=f"s{n}_g"),
                        beat=Signal(range(O), name=f"s{n}_beat"))

        s1, s2, s3, s4 = stage(1), stage(2), stage(3), stage(4)
        s2_tap, s2_pix = Signal(), Signal(aw)
        s3_tap = Signal()
        s4_val, s4_prev = Signal(P * cw), Signal(P * cw)
        acc = Signal(P * cw)

        m.d.comb += advance.eq(~o.valid | o.ready)
        m.d.comb += [t_rd.addr.eq(rom_base + j0), t_rd.en.eq(advance),
                     m_rd.addr.eq(s2["beat"]), m_rd.en.eq(advance)]

        issue = Signal()
        with m.FSM():
            with m.State("LOAD"):
                m.d.comb += [i.ready.eq(1), c_rd.addr.eq(load_addr), c_rd.en.eq(1)]
                with m.If(i.valid):
                    with m.If(load_g == G - 1):
                        m.d.sync += load_g.eq(0)
                    with m.Else():
                        m.d.sync += load_g.eq(load_g + 1)
                    with m.If(load_addr == B - 1):
                        m.d.sync += load_addr.eq(0)
                        m.next = "POOL"
                    with m.Else():
                        m.d.sync += load_addr.eq(load_addr + 1)
            with m.State("POOL"):
                m.d.comb += [c_rd.addr.eq(s2_pix + s2["g"]), c_rd.en.eq(advance), issue.eq(advance)]
                with m.If(advance):
                    with m.If(j0 == kk - 1):
                        m.d.sync += j0.eq(0)
                        with m.If(g0 == G - 1):
                            m.d.sync += [g0.eq(0), rom_base.eq(rom_base + kk)]
                        with m.Else():
                            m.d.sync += g0.eq(g0 + 1)
                        with m.If(beat == O - 1):
                            m.d.sync += [beat.eq(0), rom_base.eq(0)]
                            m.next = "DRAIN"
                        with m.Else():
                            m.d.sync += beat.eq(beat + 1)
                    with m.Else():
                        m.d.sync += j0.eq(j0 + 1)
            with m.State("DRAIN"):
                m.d.comb += [c_rd.addr.eq(s2_pix + s2["g"]), c_rd.en.eq(advance)]
                with m.If(~s1["valid"] & ~s2["valid"] & ~s3["valid"] & ~s4["valid"]):
                    m.d.sync += t.eq(Mux(t == T - 1, 0, t + 1))
                    m.next = "LOAD"

        # load pipeline (never stalls: the output side does not touch the count RAM)
        m.d.sync += [l1_valid.eq(i.valid & i.ready), l1_addr.eq(load_addr),
                     l1_spikes.eq(i.payload & lane_mask(load_g)),
                     l2_valid.eq(l1_valid), l2_addr.eq(l1_addr), l2_spikes.eq(l1_spikes),
                     l2_old.eq(Mux(first_frame, 0, c_rd.data))]
        new_counts = Signal(P * cw)
        for lane in range(P):
            sl = slice(lane * cw, (lane + 1) * cw)
            m.d.comb += new_counts[sl].eq(l2_old[sl] + l2_spikes[lane])
        m.d.comb += [c_wr.addr.eq(l2_addr), c_wr.data.eq(new_counts), c_wr.en.eq(l2_valid)]

        # pool pipeline registers
        with m.If(advance):
            m.d.sync += [s1["valid"].eq(issue), s1["first"].eq(j0 == 0), s1["last"].eq(j0 == kk - 1),
                         s1["g"].eq(g0), s1["beat"].eq(beat)]
            for a, b in ((s2, s1), (s3, s2), (s4, s3)):
                m.d.sync += [a[k].eq(b[k]) for k in a]
            m.d.sync += [s2_tap.eq(t_rd.data[0]), s2_pix.eq(t_rd.data[1:]), s3_tap.eq(s2_tap),
                         s4_val.eq(Mux(s3_tap, c_rd.data, 0)), s4_prev.eq(Mux(first_frame, 0, m_rd.data))]

        # S4: running max over the taps; at the last tap compare with MP(C(t-1))
        acc_next = Signal(P * cw)
        fired = Signal(P)
        for lane in range(P):
            sl = slice(lane * cw, (lane + 1) * cw)
            val, run = s4_val[sl], Mux(s4["first"], 0, acc[sl])
            m.d.comb += [acc_next[sl].eq(Mux(val > run, val, run)), fired[lane].eq(acc_next[sl] > s4_prev[sl])]
        with m.If(advance & s4["valid"]):
            m.d.sync += acc.eq(acc_next)
        done = Signal()
        m.d.comb += done.eq(advance & s4["valid"] & s4["last"])
        m.d.comb += [m_wr.addr.eq(s4["beat"]), m_wr.data.eq(acc_next), m_wr.en.eq(done)]
        with m.If(advance):
            m.d.sync += o.valid.eq(0)
        with m.If(done):
            m.d.sync += [o.valid.eq(1), o.payload.eq(fired & lane_mask(s4["g"]))]
        return m


def cycles(load_beats: int, taps: int, frames: int = 1) -> int:
    """Cycles from the first input beat accepted to the last output beat sent, for ``frames``
    back-to-back frames: ``frames · (load_beats + taps + 5)``, ``load_beats = H·W·G`` and
    ``taps = H'·W'·G·k²``. The schedule is dense, so it does not depend on the spike counts."""
    return int(frames) * (int(load_beats) + int(taps) + 5)


SYNTH_PARAMS = {
    "C64_16x16_P8_k2_T4": dict(channels=64, height=16, width=16, lanes=8, T=4, kernel=2),
    "C128_8x8_P32_k3s2p1_T8": dict(channels=128, height=8, width=8, lanes=32, T=8, kernel=3, stride=2, padding=1),
}


def build_for_synth(params: dict) -> TDECMaxPool:
    """A :class:`TDECMaxPool` for one :data:`SYNTH_PARAMS` entry."""
    return TDECMaxPool(**params)
