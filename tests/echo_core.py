"""A board-build test fixture: :class:`EchoCore` stands in for the real UART link + accelerator
(``csdformer.boards.soc.accelerator_core``) where a test builds a board top without the core."""

from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out


class EchoCore(wiring.Component):
    """Fixture, not the real core: ``tx`` is ``rx`` one clock later; ``busy`` while rx is low."""

    rx: In(1)
    tx: Out(1, init=1)
    busy: Out(1)

    def elaborate(self, platform):
        m = Module()
        m.d.sync += self.tx.eq(self.rx)
        m.d.comb += self.busy.eq(~self.rx)
        return m


def echo_core(program, divisor, *, board=None, clock_hz=None):
    """Stand-in for ``accelerator_core(program, divisor, board=..., clock_hz=...)``."""
    return EchoCore()
