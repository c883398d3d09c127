"""cocotb bench of :class:`csdformer.hw.link.LinkSoC` through its UART pins (launcher:
tests/test_link_cocotb.py; cases: :mod:`csdformer.sim.benches.link_cases`).

A ``cocotbext.uart`` source on ``rx`` plays the case's steps (frames, garbage, idle, resets); a
sink on ``tx`` feeds every answer byte to the host's decoder (:class:`~csdformer.firmware.protocol.Decoder`,
as the runtime configures it). At the end the decoded frames must equal the device model's
answers (``meta["expected_frames"]``), one for one. The whole run has a cycle budget
(``meta["budget_cycles"]``, from the script's model timing: :func:`csdformer.sim.benches.link_cases.link_case`);
past it the bench stops with a one-line error naming the step in progress.
"""

import logging
import warnings

import cocotb
from cocotb.triggers import FallingEdge, Timer
from cocotbext.uart import UartSink, UartSource

from csdformer.firmware import protocol as P
from csdformer.sim.benchlib.stream import PERIOD_NS, bench_data, cycle_now, finish, start, within_budget


class Host:
    """The host side: UART source and sink, and the answer decoder."""

    def __init__(self, dut, divisor: int, timeout: int):
        bit_ns = divisor * PERIOD_NS
        baud = 1e9 / bit_ns
        assert int(1e9 / baud) == bit_ns, "baud must give a whole number of ns per bit"
        for name in ("rx", "tx"):
            logging.getLogger(f"cocotb.{dut._path}.{name}").setLevel(logging.WARNING)
        with warnings.catch_warnings():  # cocotbext-uart 0.1.4 still calls setimmediatevalue
            warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"cocotbext\.uart")
            self.src = UartSource(dut.rx, baud=baud)
            self.sink = UartSink(dut.tx, baud=baud)
        self.byte_cycles = 10 * divisor
        self.decoder = P.host_decoder(timeout=timeout)
        self.frames: list[P.Frame] = []
        self.tx_bytes = 0
        cocotb.start_soon(self._collect())

    async def _collect(self):
        while True:
            data = await self.sink.read()
            self.tx_bytes += len(data)
            self.frames += self.decoder.feed(bytes(data), now=cycle_now())

    async def cycles(self, n: int):
        await Timer(int(n) * PERIOD_NS, unit="ns")

    async def wait_for(self, cond, limit_cycles: int) -> bool:
        waited = 0
        while not cond() and waited < limit_cycles:
            await self.cycles(self.byte_cycles)
            self.frames += self.decoder.expire(now=cycle_now())
            waited += self.byte_cycles
        return cond()


def _key(frame: bytes, ignore_cycles: bool) -> str:
    """A frame as hex; with ``ignore_cycles``, a RESULT's cycle field (and CRC) zeroed."""
    if ignore_cycles and frame[1] == P.MsgType.RESULT:
        start = P.HEADER_SIZE + 1
        frame = frame[:start] + bytes(4) + frame[start + 4:-P.CRC_SIZE] + bytes(P.CRC_SIZE)
    return frame.hex()


@cocotb.test()
async def link(dut):
    _, meta = bench_data()
    steps = meta["steps"]
    now = {"k": 0}  # the step in progress, for the budget's message
    await within_budget(_run(dut, meta, now), meta["budget_cycles"],
                        lambda: f"link {meta['scenario']}: step {now['k'] + 1} of {len(steps)} "
                                f"({steps[now['k']][0] if now['k'] < len(steps) else 'final check'})")


async def _run(dut, meta, now):
    await start(dut)
    host = Host(dut, meta["divisor"], meta["timeout"])
    answer_limit = meta["answer_limit"]
    late = 0
    for k, step in enumerate(meta["steps"]):
        now["k"] = k
        op = step[0]
        if op == "send":
            await host.src.write(bytes.fromhex(step[1]))
            if step[2]:
                await host.src.wait()
        elif op == "idle":
            await host.cycles(step[1])
        elif op == "drain":
            await host.src.wait()
        elif op == "reset":
            if step[2]:
                seen = host.tx_bytes
                await host.wait_for(lambda: host.tx_bytes >= seen + step[2], answer_limit)
            await FallingEdge(dut.clk)
            dut.rst.value = 1
            for _ in range(step[1]):
                await FallingEdge(dut.clk)
            dut.rst.value = 0
        elif op == "answer":
            if not await host.wait_for(lambda: len(host.frames) >= step[1], answer_limit):
                dut._log.error("no answer: %d frames decoded, %d expected by now", len(host.frames), step[1])
                late += 1
    now["k"] = len(meta["steps"])
    await host.cycles(100 * host.byte_cycles)  # an unexpected answer would arrive by now
    host.frames += host.decoder.flush()
    got = [_key(P.encode(*f), meta["ignore_cycles"]) for f in host.frames]
    want = [_key(bytes.fromhex(w), meta["ignore_cycles"]) for w in meta["expected_frames"]]
    mismatches = sum(g != w for g, w in zip(got, want)) + abs(len(got) - len(want))
    if mismatches:
        dut._log.error("got %d frames, want %d; first difference at %s", len(got), len(want),
                       next((i for i, (g, w) in enumerate(zip(got, want)) if g != w), min(len(got), len(want))))
    finish(mismatches=mismatches, compared=len(want), frames=len(got), late_answers=late,
           decoder=host.decoder.stats, scenario=meta["scenario"])
