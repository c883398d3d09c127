"""Amaranth-simulator stream helper for the quick unit tests (no cocotb, no Verilog).

:func:`run_streams` drives any number of a unit's input streams concurrently and collects its
``o_stream``, with optional idle/stall patterns, and measures cycles with the benchlib
convention (first input beat accepted to last output beat, inclusive).
"""

from __future__ import annotations

from amaranth.lib import data
from amaranth.sim import Simulator

__all__ = ["run_streams"]


def run_streams(unit, inputs: dict[str, list[int]], count: int, *, idle_every: int = 0, stall_every: int = 0):
    """Send ``inputs`` (``{stream name: payload words}``) concurrently, collect ``count`` beats of
    ``o_stream``. Returns ``(beats, measured_cycles)``: first input beat accepted to last output beat,
    inclusive (the benchlib convention)."""
    accepted: list[int] = []
    out: list[int] = []
    out_cycles: list[int] = []

    def source(name, words):
        port = getattr(unit, name)
        layout = port.payload.shape() if isinstance(port.payload, data.View) else None

        async def run(ctx):
            n = 0
            for i, word in enumerate(words):
                if idle_every and i % idle_every == idle_every - 1:
                    ctx.set(port.valid, 0)
                    await ctx.tick()
                    n += 1
                ctx.set(port.payload, data.Const(layout, word) if layout is not None else word)
                ctx.set(port.valid, 1)
                while True:
                    *_, ready = await ctx.tick().sample(port.ready)
                    n += 1
                    if ready:
                        accepted.append(n)
                        break
            ctx.set(port.valid, 0)
        return run

    async def sink(ctx):
        n = 0
        while len(out) < count:
            ready = not (stall_every and n % stall_every == stall_every - 1)
            ctx.set(unit.o_stream.ready, ready)
            *_, valid, payload = await ctx.tick().sample(unit.o_stream.valid, unit.o_stream.payload)
            n += 1
            if ready and valid:
                out.append(int(payload))
                out_cycles.append(n)

    sim = Simulator(unit)
    sim.add_clock(1e-6)
    for name, words in inputs.items():
        sim.add_testbench(source(name, words))
    sim.add_testbench(sink)
    sim.run()
    return out, out_cycles[-1] - min(accepted) + 1
