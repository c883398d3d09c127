"""UART receiver and transmitter, 8N1, ``divisor`` clock cycles per bit (``clock / baud``).

The receiver passes the pin through a 2-flop synchronizer, confirms the start bit at its middle
and samples each data bit and the stop bit at their middles (every ``divisor`` cycles after
that), so it tolerates the few percent of baud error an integer divisor leaves. A byte whose
stop bit reads 0 is dropped (``framing_error`` pulses) and the receiver waits for the line to go
high again (a break) before hunting for the next start bit.
"""

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.cdc import FFSynchronizer
from amaranth.lib.wiring import In, Out

from .common import check_int, validated

__all__ = ["UARTRx", "UARTTx", "MIN_DIVISOR"]

MIN_DIVISOR = 4  # mid-bit sampling needs a few cycles per bit


class _Uart(wiring.Component):
    """One direction of the UART; ``divisor``: clock cycles per bit (>= :data:`MIN_DIVISOR`)."""

    @validated
    def __init__(self, *, divisor: int):
        self._divisor = check_int("divisor", divisor, lo=MIN_DIVISOR)
        super().__init__()

    divisor = property(lambda self: self._divisor, doc="Clock cycles per bit.")


class UARTRx(_Uart):
    """UART receiver (``divisor``: clock cycles per bit).

    Attributes
    ----------
    rx : In(1)
        The pin (asynchronous; idle high).
    data : Out(stream.Signature(8))
        Received bytes. ``valid`` stays high until ``ready``; a byte not taken before the next
        one completes is overwritten (``overrun`` pulses).
    framing_error, overrun : Out(1)
        One-cycle pulses.
    """

    rx: In(1, init=1)
    data: Out(stream.Signature(8))
    framing_error: Out(1)
    overrun: Out(1)

    def elaborate(self, platform):
        m = Module()
        d = self._divisor
        pin = Signal(init=1)
        m.submodules.sync = FFSynchronizer(self.rx, pin, init=1)
        timer = Signal(range(d))
        bit = Signal(range(8))
        shift = Signal(8)
        with m.If(self.data.ready):
            m.d.sync += self.data.valid.eq(0)
        with m.If(timer != 0):
            m.d.sync += timer.eq(timer - 1)
        with m.FSM():
            with m.State("IDLE"):
                with m.If(~pin):
                    m.d.sync += timer.eq(d // 2 - 1)
                    m.next = "START"
            with m.State("START"):
                with m.If(timer == 0):
                    m.d.sync += [timer.eq(d - 1), bit.eq(0)]
                    with m.If(pin):  # a glitch, not a start bit
                        m.next = "IDLE"
                    with m.Else():
                        m.next = "DATA"
            with m.State("DATA"):
                with m.If(timer == 0):
                    m.d.sync += [timer.eq(d - 1), shift.eq(Cat(shift[1:], pin)), bit.eq(bit + 1)]
                    with m.If(bit == 7):
                        m.next = "STOP"
            with m.State("STOP"):
                with m.If(timer == 0):
                    with m.If(pin):
                        m.d.sync += [self.data.payload.eq(shift), self.data.valid.eq(1)]
                        m.d.comb += self.overrun.eq(self.data.valid & ~self.data.ready)
                        m.next = "IDLE"
                    with m.Else():
                        m.d.comb += self.framing_error.eq(1)
                        m.next = "BREAK"
            with m.State("BREAK"):
                with m.If(pin):
                    m.next = "IDLE"
        return m


class UARTTx(_Uart):
    """UART transmitter: start bit, 8 data bits LSB first, one stop bit (``divisor``: clock cycles
    per bit). Members: ``data`` (In(stream.Signature(8))): bytes to send, ``ready`` while idle;
    ``tx`` (Out(1)): the pin (idle high).
    """

    data: In(stream.Signature(8))
    tx: Out(1, init=1)

    def elaborate(self, platform):
        m = Module()
        d = self._divisor
        timer = Signal(range(d))
        left = Signal(range(10))  # bits still to put on the pin after the current one
        shift = Signal(9)  # data bits then the stop bit
        busy = Signal()
        m.d.comb += self.data.ready.eq(~busy)
        with m.If(~busy):
            with m.If(self.data.valid):
                m.d.sync += [busy.eq(1), self.tx.eq(0), shift.eq(Cat(self.data.payload, 1)),
                             left.eq(9), timer.eq(d - 1)]
        with m.Elif(timer != 0):
            m.d.sync += timer.eq(timer - 1)
        with m.Elif(left != 0):
            m.d.sync += [self.tx.eq(shift[0]), shift.eq(shift >> 1), left.eq(left - 1), timer.eq(d - 1)]
        with m.Else():
            m.d.sync += busy.eq(0)
        return m
