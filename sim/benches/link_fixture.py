"""A deterministic stand-in for the accelerator core, for testing the link (not a real network).

:class:`FixtureCore` has exactly the core interface :mod:`csdformer.hw.link` expects (attributes
:data:`~csdformer.hw.link.CORE_ATTRS`, ports :func:`~csdformer.hw.link.core_signature`) and computes
something cheap but image- and delay-dependent, so that every RESULT field can be checked:

* ``logits[c] = Σ_{i ≡ c (mod K)} pixel[i] − delay · c`` (pixel ``i`` in (y, x, c) order; negative
  values exercise the sign extension),
* ``prediction = argmax(logits)`` (the first maximum, like ``numpy.argmax``),
* ``cycles`` = first pixel accepted to prediction sent, inclusive.

It refuses a pixel for one cycle after every ``stall_every``-th (backpressure on the link's image
stream) and waits ``latency`` cycles before the logits. With ``model_id_load``, its model id is not
a constant but an ``Out(32)`` port that reads 0 until ``model_id_load`` cycles after reset (as a
core that reads its id from flash). :func:`reference` is its Python model; with
an always-valid image source and an always-ready sink its cycle count is
``n + (n − 1) // stall_every + latency + K + 1``.
"""

from __future__ import annotations

import numpy as np
from amaranth.hdl import Array, Module, Mux, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import Out

from ...firmware.protocol import Result
from ...hw.common import check_int, check_width, unsigned_bits, validated
from ...hw.link import core_signature

__all__ = ["FixtureCore", "reference"]


def reference(pixels, delay: int, *, num_classes: int, pixel_bits: int, stall_every: int, latency: int) -> Result:
    """What :class:`FixtureCore` answers for one image (``pixels`` in wire order)."""
    px = np.frombuffer(bytes(pixels), dtype=np.uint8).astype(np.int64) & ((1 << pixel_bits) - 1)
    n, K = len(px), num_classes
    logits = [int(px[c::K].sum()) - int(delay) * c for c in range(K)]
    stalls = (n - 1) // stall_every if stall_every else 0
    return Result(int(np.argmax(logits)), n + stalls + latency + K + 1, tuple(logits))


class FixtureCore(wiring.Component):
    """Test fixture core (see the module docstring).

    Parameters
    ----------
    pixel_bits, n_pixels, num_classes, T, lanes, model_id : int
        The core attributes the link reads.
    logit_width : int, optional
        Default: the minimum for the logits' range.
    stall_every : int
        Pixels between one-cycle stalls of ``image.ready`` (0: never stall).
    latency : int
        Cycles between the last pixel and the first logit.
    model_id_load : int, optional
        Give the core a ``model_id`` port instead of the constant, reading ``model_id`` from this
        many cycles after reset (0 before); the constant is then ``model_id_value``.
    """

    @validated
    def __init__(self, *, pixel_bits=5, n_pixels=64, num_classes=10, T=4, lanes=1, model_id=0x5EED1E55,
                 logit_width=None, stall_every=3, latency=5, model_id_load=None):
        self.pixel_bits = check_int("pixel_bits", pixel_bits, lo=1, hi=8)
        self.n_pixels = check_int("n_pixels", n_pixels, lo=1)
        self.num_classes = check_int("num_classes", num_classes, lo=1)
        self.T = check_int("T", T, lo=1)
        self.lanes = check_int("lanes", lanes, lo=1)
        self.model_id_value = check_int("model_id", model_id, lo=0, hi=2**32 - 1)
        self.model_id_load = None if model_id_load is None else check_int("model_id_load", model_id_load, lo=1)
        if self.model_id_load is None:
            self.model_id = self.model_id_value
        self.stall_every = check_int("stall_every", stall_every, lo=0)
        self.latency = check_int("latency", latency, lo=0)
        K = self.num_classes
        self._acc_max = -(-self.n_pixels // K) * ((1 << self.pixel_bits) - 1)
        self.logit_width = check_width("logit_width", logit_width, -(self.T - 1) * (K - 1), self._acc_max,
                                       what="logits")
        sig = core_signature(pixel_bits=self.pixel_bits, logit_width=self.logit_width, num_classes=K, T=self.T)
        if self.model_id_load is not None:
            sig = wiring.Signature({**sig.members, "model_id": Out(32)})
        super().__init__(sig)

    def reference(self, pixels, delay: int) -> Result:
        """:func:`reference` with this core's parameters."""
        return reference(pixels, delay, num_classes=self.num_classes, pixel_bits=self.pixel_bits,
                         stall_every=self.stall_every, latency=self.latency)

    def elaborate(self, platform):
        m = Module()
        n, K, L, s = self.n_pixels, self.num_classes, self.latency, self.stall_every
        acc = Array(Signal(unsigned(unsigned_bits(self._acc_max)), name=f"acc{c}") for c in range(K))
        k, c = Signal(range(K)), Signal(range(K))
        got = Signal(range(n))
        sc = Signal(range(max(s, 1)))
        hold = Signal()
        dly = Signal(range(self.T))
        started, cnt = Signal(), Signal(32)
        wait = Signal(range(L + 1))
        dsub = Signal(signed(self.logit_width + 8))
        val, best = Signal(signed(self.logit_width)), Signal(signed(self.logit_width))
        best_i = Signal.like(self.prediction.payload)
        img, lg, pr = self.image, self.logits, self.prediction
        if self.model_id_load is not None:  # the id "read from flash" some cycles after reset
            load = Signal(range(self.model_id_load + 1))
            with m.If(load != self.model_id_load):
                m.d.sync += load.eq(load + 1)
            m.d.comb += self.model_id.eq(Mux(load == self.model_id_load, self.model_id_value, 0))

        m.d.comb += [val.eq(acc[c] - dsub), lg.payload.eq(val), pr.payload.eq(best_i), self.cycles.eq(cnt + 1)]
        with m.If(started):
            m.d.sync += cnt.eq(cnt + 1)
        with m.FSM():
            with m.State("LOAD"):
                m.d.comb += img.ready.eq(~hold)
                m.d.sync += hold.eq(0)
                with m.If(img.valid & img.ready):
                    m.d.sync += [acc[k].eq(acc[k] + img.payload), k.eq(Mux(k == K - 1, 0, k + 1)),
                                 got.eq(got + 1)]
                    with m.If(got == 0):
                        m.d.sync += [dly.eq(self.delay), started.eq(1), cnt.eq(1)]
                    if s:
                        m.d.sync += sc.eq(Mux(sc == s - 1, 0, sc + 1))
                        m.d.sync += hold.eq(sc == s - 1)
                    with m.If(got == n - 1):
                        m.d.sync += wait.eq(0)
                        m.next = "WAIT" if L else "EMIT"
            with m.State("WAIT"):
                m.d.sync += wait.eq(wait + 1)
                with m.If(wait == L - 1):
                    m.next = "EMIT"
            with m.State("EMIT"):
                m.d.comb += lg.valid.eq(1)
                with m.If(lg.ready):
                    m.d.sync += [dsub.eq(dsub + dly), c.eq(c + 1)]
                    with m.If((c == 0) | (val > best)):
                        m.d.sync += [best.eq(val), best_i.eq(c)]
                    with m.If(c == K - 1):
                        m.next = "PRED"
            with m.State("PRED"):
                m.d.comb += pr.valid.eq(1)
                with m.If(pr.ready):
                    m.d.sync += [k.eq(0), c.eq(0), got.eq(0), sc.eq(0), hold.eq(0), dsub.eq(0),
                                 started.eq(0), cnt.eq(0)]
                    m.d.sync += [a.eq(0) for a in acc]
                    m.next = "LOAD"
        return m
