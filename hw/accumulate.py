"""Event-driven synaptic integration: the spike accumulator (and the datapath of the encoding layer,
:class:`csdformer.hw.encode_conv.EncodeConv`).

Both units share one datapath (:class:`_EventAccumulator`): weights sit in on-chip memory
(``amaranth.lib.memory``), one word per (input channel, kernel tap, lane group) holding ``lanes``
weights; partial sums sit in a second memory, one word per (output position, lane group). Each
input *event* (an address ``(c, y, x)``) walks the ``k × k`` kernel taps and the lane groups, one
word a cycle, and adds the selected weight word to the partial-sum word of the output position
the tap lands on (read, add, write back: a two-stage pipeline, the read port transparent to the
write port so back-to-back updates of one word are exact). The work is proportional to the
number of events, not to neurons × steps. At the end-of-frame marker the partial sums stream out,
bias added where due, and are cleared as they leave.

A linear layer ``(rows, K) → (rows, M)`` is the 1 × 1 convolution of a ``(K, rows, 1)`` grid, so
one datapath covers ``linear`` and ``conv`` layers. The datapath only adds (and, in the encoding
layer, shifts): address arithmetic by constants is spelled as shift-and-add (:func:`const_mul`).

Stream formats
--------------
Input (``i_stream``): one beat per event, ``{end, c, y, x}`` (plus ``value`` in the encoding
layer); a frame is its events in any order followed by one beat with ``end = 1`` (whose other
fields are ignored). An empty frame is the ``end`` beat alone.

Output (``o_stream``): per frame, ``H' · W' · G`` beats (``G = ceil(M / lanes)``) in the order
output position (row-major), then lane group; lane ``l`` of group ``g`` is output channel
``g · lanes + l`` (lanes past ``M`` read 0). For a linear layer that is token order ``(rows, M)``.
"""

from __future__ import annotations

import numpy as np
from amaranth.hdl import Const, Module, Mux, Signal, unsigned
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from ..artifact.schema import signed_bits

from .common import HwParamError, check_int, check_width

__all__ = [
    "SpikeAccumulator",
    "const_mul",
    "frame_events",
    "pixel_events",
    "cycles",
    "GOLDEN",
    "SYNTH_PARAMS",
    "build_for_synth",
]

#: The golden ops this unit is judged by (``sim/synaptic.py``, built on ``sim/golden.conv2d``).
GOLDEN = "csdformer.sim.synaptic.conv_frames"


def const_mul(value, k: int):
    """``value * k`` for a constant ``k >= 0``, as a sum of shifted copies (no multiplier)."""
    k = int(k)
    if k < 0:
        raise ValueError("const_mul: k must be >= 0")
    terms = [value << i for i in range(k.bit_length()) if (k >> i) & 1]
    if not terms:
        return Const(0, 1)
    out = terms[0]
    for t in terms[1:]:
        out = out + t
    return out


def _bits(n: int) -> int:
    """Bits of an unsigned field holding ``0 .. n-1`` (at least 1)."""
    return max(1, (int(n) - 1).bit_length())


def _is_int(v) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def _pack(values, width: int) -> int:
    """Pack signed integers into one word, element 0 in the low bits."""
    word = 0
    mask = (1 << width) - 1
    for i, v in enumerate(values):
        word |= (int(v) & mask) << (i * width)
    return word


def frame_events(frame) -> list[tuple[int, int, int]]:
    """Address events ``(c, y, x)`` of a binary ``(C, H, W)`` spike frame, in raster order."""
    frame = np.asarray(frame)
    return [tuple(int(v) for v in idx) for idx in np.argwhere(frame != 0)]


def pixel_events(image) -> list[tuple[int, int, int, int]]:
    """Events ``(c, y, x, value)`` of the non-zero pixels of a ``(C, H, W)`` image."""
    image = np.asarray(image)
    return [tuple(int(v) for v in idx) + (int(image[tuple(idx)]),) for idx in np.argwhere(image != 0)]


class _EventAccumulator(wiring.Component):
    """Shared datapath of :class:`SpikeAccumulator` and :class:`~csdformer.hw.encode_conv.EncodeConv`
    (see the module doc)."""

    def __init__(self, weight, bias, in_shape, *, T: int, lanes: int, stride: int = 1, padding: int = 0,
                 planes: int = 1, encode: bool = False, width: int | None = None, max_value: int = 1):
        try:
            self._setup(weight, bias, in_shape, T, lanes, stride, padding, planes, encode, width, max_value)
        except HwParamError:
            self._MustUse__silence = True  # a refused unit is not an unused elaboratable
            raise
        fields = {"end": 1, "c": _bits(self.C), "y": _bits(self.H), "x": _bits(self.W)}
        if self.encode:
            fields["value"] = self.planes
        self.event_layout = data.StructLayout(fields)
        super().__init__({
            "i_stream": In(stream.Signature(self.event_layout)),
            "o_stream": Out(stream.Signature(unsigned(self.width * self.lanes))),
        })

    def _setup(self, weight, bias, in_shape, T, lanes, stride, padding, planes, encode, width, max_value):
        lanes = check_int("lanes", lanes, lo=1)
        T = check_int("T", T, lo=1)
        w = np.asarray(weight)
        if w.ndim != 4 or w.shape[2] != w.shape[3] or not np.issubdtype(w.dtype, np.integer) or w.shape[0] < 1:
            raise HwParamError(f"weight: expected an integer (M, C, k, k) array, got {w.dtype} {w.shape}")
        b = np.asarray(bias)
        if b.shape != (w.shape[0],) or not np.issubdtype(b.dtype, np.integer):
            raise HwParamError(f"bias: expected an integer ({w.shape[0]},) array, got {b.dtype} {b.shape}")
        if len(in_shape) != 3 or not all(_is_int(v) and v >= 1 for v in in_shape):
            raise HwParamError(f"in_shape: expected (C, H, W) of positive integers, got {in_shape!r}")
        if in_shape[0] != w.shape[1]:
            raise HwParamError(f"weight: expects {w.shape[1]} input channels, in_shape has {in_shape[0]}")
        if not _is_int(stride) or stride < 1 or stride & (stride - 1):
            raise HwParamError(f"stride: must be a power of two >= 1, got {stride!r}")
        if not _is_int(padding) or padding < 0 or padding >= w.shape[2]:
            raise HwParamError(f"padding: must be in 0..{w.shape[2] - 1}, got {padding!r}")
        self.M, self.C, self.k = int(w.shape[0]), int(w.shape[1]), int(w.shape[2])
        self.H, self.W = int(in_shape[1]), int(in_shape[2])
        self.Ho = (self.H + 2 * padding - self.k) // stride + 1
        self.Wo = (self.W + 2 * padding - self.k) // stride + 1
        if self.Ho < 1 or self.Wo < 1:
            raise HwParamError(f"in_shape: output would be empty ({self.Ho}x{self.Wo})")
        self.T, self.lanes, self.stride, self.padding = int(T), int(lanes), int(stride), int(padding)
        self.planes, self.encode = int(planes), bool(encode)
        self.groups = -(-self.M // self.lanes)
        self.weight = w.astype(np.int64)
        self.bias = b.astype(np.int64)
        self.weight_width = signed_bits(int(w.min()), int(w.max()))
        flat = self.weight.reshape(self.M, -1)
        neg, pos = np.minimum(flat, 0).sum(1) * max_value, np.maximum(flat, 0).sum(1) * max_value
        self.frame_range = (int(min((neg + np.minimum(self.bias, 0)).min(), 0)),
                            int(max((pos + np.maximum(self.bias, 0)).max(), 0)))
        self.width = check_width("width", width, *self.frame_range, what="currents")
        self.positions = self.Ho * self.Wo
        self.beats = self.positions * self.groups
        self.taps = self.k * self.k * self.groups  # cycles one event (one bit-plane) takes

    @property
    def latency(self) -> int:
        """Cycles from accepting the end-of-frame beat to the first output beat."""
        return 2

    def event_word(self, c: int = 0, y: int = 0, x: int = 0, value: int = 0, *, end: bool = False) -> int:
        """The ``i_stream`` payload of one event (or of the end-of-frame beat) as an integer."""
        word = 0
        vals = {"end": int(end), "c": c, "y": y, "x": x, "value": value}
        for name, field in self.event_layout:
            word |= (int(vals[name]) & ((1 << field.width) - 1)) << field.offset
        return word

    def frame_words(self, events) -> list[int]:
        """Payload words of one frame: its events (tuples ``(c, y, x[, value])``), then ``end``."""
        return [self.event_word(*ev) for ev in events] + [self.event_word(end=True)]

    def output_beats(self, currents) -> np.ndarray:
        """Expected ``o_stream`` beats ``(frames · H'W'G, lanes)`` of currents ``(frames, M, H', W')``."""
        cur = np.asarray(currents, dtype=np.int64)
        f = cur.shape[0]
        pad = np.zeros((f, self.groups * self.lanes, self.Ho, self.Wo), dtype=np.int64)
        pad[:, : self.M] = cur
        return pad.transpose(0, 2, 3, 1).reshape(-1, self.lanes)

    def currents(self, beats) -> np.ndarray:
        """Inverse of :meth:`output_beats`: ``(frames, M, H', W')`` from beats ``(n, lanes)``."""
        b = np.asarray(beats, dtype=np.int64).reshape(-1, self.Ho, self.Wo, self.groups * self.lanes)
        return b[..., : self.M].transpose(0, 3, 1, 2)

    def _weight_words(self) -> list[int]:
        P, G, M = self.lanes, self.groups, self.M
        words = []
        for c in range(self.C):
            for ky in range(self.k):
                for kx in range(self.k):
                    for g in range(G):
                        lanes = [self.weight[m, c, ky, kx] if m < M else 0 for m in range(g * P, g * P + P)]
                        words.append(_pack(lanes, self.weight_width))
        return words

    def _bias_words(self) -> list[int]:
        P, M = self.lanes, self.M
        return [_pack([self.bias[m] if m < M else 0 for m in range(g * P, g * P + P)], self.width)
                for g in range(self.groups)]

    def elaborate(self, platform):
        m = Module()
        P, G, k, wd, ww = self.lanes, self.groups, self.k, self.width, self.weight_width
        sh = self.stride.bit_length() - 1

        m.submodules.wmem = wmem = memory.Memory(shape=unsigned(P * ww), depth=self.C * k * k * G,
                                                 init=self._weight_words())
        m.submodules.bmem = bmem = memory.Memory(shape=unsigned(P * wd), depth=G, init=self._bias_words())
        m.submodules.pmem = pmem = memory.Memory(shape=unsigned(P * wd), depth=self.beats, init=[])
        w_rd = wmem.read_port()
        b_rd = bmem.read_port()
        p_wr = pmem.write_port()
        p_rd = pmem.read_port(transparent_for=(p_wr,))

        i, o = self.i_stream, self.o_stream
        ev = Signal(self.event_layout)
        val = Signal(self.planes)  # bit-planes still to walk (encoding layer)
        ky = Signal(range(k))
        kx = Signal(range(k))
        g = Signal(range(G))
        wbase = Signal(range(self.C * k * k * G))
        waddr = Signal(range(self.C * k * k * G))
        t = Signal(range(self.T))  # frame within the window (spike accumulator)

        # ---- issue stage (TAPS) ------------------------------------------------------------
        yy = Signal(range(-k, self.H + self.padding + 1))
        xx = Signal(range(-k, self.W + self.padding + 1))
        m.d.comb += [yy.eq(ev.y + self.padding - ky), xx.eq(ev.x + self.padding - kx)]
        oy, ox = yy[sh:], xx[sh:]
        hit = Signal()
        m.d.comb += hit.eq((yy >= 0) & (xx >= 0) & (oy < self.Ho) & (ox < self.Wo))
        if sh:
            m.d.comb += hit.eq((yy >= 0) & (xx >= 0) & (oy < self.Ho) & (ox < self.Wo)
                               & (yy[:sh] == 0) & (xx[:sh] == 0))
        paddr = Signal(range(self.beats))
        m.d.comb += paddr.eq(const_mul(oy[:_bits(self.Ho + 1)], self.Wo * G)
                             + const_mul(ox[:_bits(self.Wo + 1)], G) + g)
        plane = Signal(range(max(self.planes, 2)))
        for bit in reversed(range(self.planes)):  # lowest set bit wins
            with m.If(val[bit]):
                m.d.comb += plane.eq(bit)

        # ---- add stage -----------------------------------------------------------------------
        s1_we = Signal()
        s1_addr = Signal(range(self.beats))
        s1_plane = Signal(range(max(self.planes, 2)))
        summed = Signal(P * wd)
        for lane in range(P):
            pv = p_rd.data[lane * wd:(lane + 1) * wd].as_signed()
            wv = w_rd.data[lane * ww:(lane + 1) * ww].as_signed()
            add = (wv << s1_plane) if self.encode else wv
            m.d.comb += summed[lane * wd:(lane + 1) * wd].eq(pv + add)

        # ---- output stage --------------------------------------------------------------------
        oa = Signal(range(self.beats + 1))
        og = Signal(range(G))
        ocur = Signal(range(self.beats))
        ovalid = Signal()
        first = Signal()
        m.d.comb += first.eq((t == 0) | self.encode)
        for lane in range(P):
            pv = p_rd.data[lane * wd:(lane + 1) * wd].as_signed()
            bv = b_rd.data[lane * wd:(lane + 1) * wd].as_signed()
            m.d.comb += o.payload[lane * wd:(lane + 1) * wd].eq(pv + Mux(first, bv, 0))
        zeros = Signal(range(max((self.T - 1) * self.beats + 1, 2)))

        # defaults
        m.d.comb += [w_rd.addr.eq(waddr), p_rd.en.eq(1), b_rd.en.eq(1), b_rd.addr.eq(og)]
        m.d.sync += s1_we.eq(0)
        with m.If(s1_we):
            m.d.comb += [p_wr.addr.eq(s1_addr), p_wr.data.eq(summed), p_wr.en.eq(1)]
        with m.Elif(ovalid & o.ready):
            m.d.comb += [p_wr.addr.eq(ocur), p_wr.data.eq(0), p_wr.en.eq(1)]

        def accept(next_state_idle):
            """Take the next input beat (comb ready is set by the caller)."""
            with m.If(i.valid):
                with m.If(i.payload.end):
                    m.d.sync += [oa.eq(0), og.eq(0), ovalid.eq(0)]
                    m.next = "OUTPUT"
                with m.Else():
                    base = const_mul(i.payload.c, k * k * G)
                    m.d.sync += [ev.eq(i.payload), ky.eq(0), kx.eq(0), g.eq(0),
                                 wbase.eq(base), waddr.eq(base)]
                    if self.encode:
                        m.d.sync += val.eq(i.payload.value)
                        with m.If(i.payload.value == 0):
                            m.next = "ACCEPT"
                        with m.Else():
                            m.next = "TAPS"
                    else:
                        m.next = "TAPS"
            with m.Else():
                if next_state_idle:
                    m.next = "ACCEPT"

        with m.FSM(init="ACCEPT"):
            with m.State("ACCEPT"):
                m.d.comb += i.ready.eq(1)
                accept(False)
            with m.State("TAPS"):
                m.d.comb += p_rd.addr.eq(paddr)
                m.d.sync += [s1_we.eq(hit), s1_addr.eq(paddr), s1_plane.eq(plane), waddr.eq(waddr + 1)]
                last_g, last_kx, last_ky = g == G - 1, kx == k - 1, ky == k - 1
                with m.If(last_g):
                    m.d.sync += g.eq(0)
                    with m.If(last_kx):
                        m.d.sync += kx.eq(0)
                        with m.If(~last_ky):
                            m.d.sync += ky.eq(ky + 1)
                    with m.Else():
                        m.d.sync += kx.eq(kx + 1)
                with m.Else():
                    m.d.sync += g.eq(g + 1)
                with m.If(last_g & last_kx & last_ky):
                    rest = val & (val - 1)
                    if self.encode:
                        m.d.sync += val.eq(rest)
                    more = (rest != 0) if self.encode else Const(0)
                    with m.If(more):
                        m.d.sync += [ky.eq(0), waddr.eq(wbase)]
                    with m.Else():
                        m.d.comb += i.ready.eq(1)
                        accept(True)
            with m.State("OUTPUT"):
                adv = ~ovalid | o.ready
                m.d.comb += [o.valid.eq(ovalid), p_rd.addr.eq(oa), p_rd.en.eq(adv), b_rd.en.eq(adv)]
                with m.If(adv):
                    with m.If(oa == self.beats):
                        m.d.sync += ovalid.eq(0)
                        if self.encode:
                            m.d.sync += zeros.eq(0)
                            m.next = "ZEROS" if self.T > 1 else "ACCEPT"
                        else:
                            m.d.sync += t.eq(_wrap_inc(t, self.T))
                            m.next = "ACCEPT"
                    with m.Else():
                        m.d.sync += [ovalid.eq(1), ocur.eq(oa), oa.eq(oa + 1), og.eq(_wrap_inc(og, G))]
            if self.encode and self.T > 1:
                with m.State("ZEROS"):
                    m.d.comb += [o.valid.eq(1), o.payload.eq(0)]
                    with m.If(o.ready):
                        m.d.sync += zeros.eq(zeros + 1)
                        with m.If(zeros == (self.T - 1) * self.beats - 1):
                            m.next = "ACCEPT"
        return m


def _wrap_inc(sig, n: int):
    """``(sig + 1) mod n`` without a divider."""
    if n <= 1:
        return Const(0, 1)
    return Mux(sig == n - 1, 0, sig + 1)


class SpikeAccumulator(_EventAccumulator):
    """Event-driven synaptic integration of spike frames (``conv`` and ``linear`` layers).

    For every input spike event it adds the weights of that input to the partial sums of the
    outputs it reaches, ``lanes`` output channels a cycle; at the end of a frame it streams the
    current frame out, with the bias added in frame 1 of every window of ``T`` frames only:
    ``current(t) = W ⊛ spikes(t) + (t == 0) · b``. Adds only: no multiplier.

    Parameters
    ----------
    weight : int array ``(M, C, k, k)``
        Kernel (BN folded). Use :meth:`linear` for a ``(M, K)`` matrix.
    bias : int array ``(M,)``
    in_shape : ``(C, H, W)``
        Spike grid of one input frame.
    T : int
        Frames per window (the bias enters at frame ``t = 0`` of each window).
    lanes : int
        Output channels updated in parallel (the area/speed knob).
    stride : int
        A power of two.
    padding : int
        Zero padding, ``0 .. k-1``.
    width : int, optional
        Signed width of partial sums and output currents; default and minimum: the bits of the
        frame bound (sum of negative / positive weights, times ``fan``, plus the bias).
    fan : int
        Events per input address and frame (1 for spikes; the token count of a ``head`` layer,
        whose tokens all feed one row: see :meth:`for_layer`). Scales the bound.

    Attributes
    ----------
    i_stream : ``In(stream.Signature(event_layout))``
        Events ``{end, c, y, x}``.
    o_stream : ``Out(stream.Signature(lanes × width))``
        One beat per (output position, lane group); lane ``l`` in bits ``l·width ..``.
    latency : int
        Cycles from the end-of-frame beat to the first output beat.
    uses_multipliers : bool
        Always ``False``.
    """

    uses_multipliers = False

    def __init__(self, weight, bias, in_shape, *, T: int, lanes: int, stride: int = 1, padding: int = 0,
                 width: int | None = None, fan: int = 1):
        try:
            fan = check_int("fan", fan, lo=1)
        except HwParamError:
            self._MustUse__silence = True
            raise
        super().__init__(weight, bias, in_shape, T=T, lanes=lanes, stride=stride, padding=padding, width=width,
                         max_value=fan)

    @classmethod
    def linear(cls, weight, bias, *, rows: int = 1, T: int, lanes: int, width: int | None = None, fan: int = 1):
        """A linear layer ``(rows, K) → (rows, M)``: the 1 × 1 convolution of a ``(K, rows, 1)`` grid.

        Events are ``{c: k, y: row, x: 0}``.
        """
        w = np.asarray(weight)
        if w.ndim != 2:
            raise HwParamError(f"weight: expected an (M, K) matrix, got shape {w.shape}")
        return cls(w[:, :, None, None], bias, (w.shape[1], rows, 1), T=T, lanes=lanes, width=width, fan=fan)

    @classmethod
    def for_layer(cls, artifact, name: str, *, lanes: int):
        """The unit of a ``conv``, ``linear`` or ``head`` layer, its width the artifact's stated bound.

        ``conv`` (``grid`` or ``tokens`` layout: events ``(c, y, x)``, token ``n = y·W + x``; the
        output order is token order either way), ``linear`` (events ``(k, token, 0)``), ``head``
        (one row: every token's spike is an event ``(k, 0, 0)``; the logits are the sum of the
        output frames).
        """
        from ..artifact.schema import bounds

        layer = artifact.layer(name)
        w, b, T = layer.arrays["weight"], layer.arrays["bias"], artifact.T
        width = bounds(artifact)[name]["frame_bits"]
        src = artifact.layer(layer.inputs[0]).shape if layer.inputs[0] != "image" else artifact.input.shape
        if layer.kind == "conv":
            in_shape = tuple(src) if layer.attrs["layout"] == "grid" else (src[1], *layer.attrs["grid"])
            return cls(w, b, in_shape, T=T, lanes=lanes, stride=layer.attrs["stride"],
                       padding=layer.attrs["padding"], width=width)
        if layer.kind == "linear":
            return cls.linear(w, b, rows=src[0], T=T, lanes=lanes, width=width)
        if layer.kind == "head":
            return cls.linear(w, b, rows=1, T=T, lanes=lanes, width=width, fan=src[0])
        raise HwParamError(f"name: {name!r} is a {layer.kind} layer, not conv/linear/head")

    def cycles(self, events_per_frame) -> int:
        """Cycle model: see :func:`cycles`."""
        return cycles(self, events_per_frame)


def cycles(unit: SpikeAccumulator, events_per_frame) -> int:
    """Cycles a :class:`SpikeAccumulator` takes for frames with the given spike counts.

    With the input always valid and the output always ready, a frame of ``n`` spikes takes
    ``2 + n · k² · G + H'W' · G`` cycles (``G`` lane groups): every event costs its ``k × k``
    tap slots whether or not a tap falls inside the output (the cost of a padded border tap is
    one cycle with the write disabled).
    """
    return sum(2 + int(n) * unit.taps + unit.beats for n in np.atleast_1d(events_per_frame))


#: Parameter sets ``bench/hw_synth.py`` synthesizes (ECP5-85F).
SYNTH_PARAMS = {
    "conv16x16-c16-m32-l8": dict(kind="conv", M=32, C=16, H=16, W=16, stride=1, padding=1, T=4, lanes=8, wbits=8),
    "conv-s2-c32-m64-l32": dict(kind="conv", M=64, C=32, H=16, W=16, stride=2, padding=1, T=4, lanes=32, wbits=8),
    "linear-64x128-n16-l16": dict(kind="linear", M=128, K=64, rows=16, T=4, lanes=16, wbits=8),
}


def build_for_synth(params: dict) -> SpikeAccumulator:
    """A unit for one :data:`SYNTH_PARAMS` entry, with seeded random full-range weights."""
    p = dict(params)
    rng = np.random.default_rng(0)
    wmax = 2 ** (p["wbits"] - 1) - 1
    if p["kind"] == "linear":
        w = rng.integers(-wmax, wmax + 1, (p["M"], p["K"]))
        return SpikeAccumulator.linear(w, rng.integers(-4 * wmax, 4 * wmax, p["M"]), rows=p["rows"], T=p["T"],
                                       lanes=p["lanes"])
    w = rng.integers(-wmax, wmax + 1, (p["M"], p["C"], 3, 3))
    return SpikeAccumulator(w, rng.integers(-4 * wmax, 4 * wmax, p["M"]), (p["C"], p["H"], p["W"]), T=p["T"],
                            lanes=p["lanes"], stride=p["stride"], padding=p["padding"])
