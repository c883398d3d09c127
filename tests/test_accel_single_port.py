"""Single-port CUR and MEM (the iCE40UP5K's SPRAM, as the iCEBreaker build uses them; the weight
buffer's slots may be single-port too).

The single-port RAM's model (a write takes the port, the read output holds) is what the SPRAM
does; the accelerator built with it and its half-rate sink stays bit-exact and on the cycle model,
and the same RTL with a full-rate sink fails: the model is strict enough to catch a schedule that
collides.
"""

from types import SimpleNamespace

import pytest
from amaranth.hdl import Fragment, Instance
from amaranth.sim import Simulator

from csdformer.artifact import resolve_artifact
from csdformer import artifact as A
from csdformer.hw import program as program_mod
from csdformer.hw.memory import SinglePortRam
from csdformer.hw.common import HwParamError
from csdformer.hw.program import compile_program
from csdformer.sim.verify import select_images, verify

SP = ("cur", "mem")


def test_single_port_ram_write_takes_the_port_and_the_read_holds():
    ram = SinglePortRam(17, 64)
    seen = []

    async def bench(ctx):
        for a, v in ((3, 0x1ABCD), (4, 0x00042)):
            ctx.set(ram.w_addr, a)
            ctx.set(ram.w_data, v)
            ctx.set(ram.w_en, 1)
            await ctx.tick()
        ctx.set(ram.w_en, 0)
        ctx.set(ram.addr, 3)
        await ctx.tick()
        seen.append(ctx.get(ram.data))  # word 3, the cycle after its read
        ctx.set(ram.w_addr, 5)
        ctx.set(ram.w_data, 7)
        ctx.set(ram.w_en, 1)
        ctx.set(ram.addr, 4)  # no read this cycle: the write has the port
        await ctx.tick()
        seen.append(ctx.get(ram.data))  # still word 3
        ctx.set(ram.w_en, 0)
        ctx.set(ram.addr, 5)
        await ctx.tick()
        seen.append(ctx.get(ram.data))  # the word written above

    sim = Simulator(ram)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert seen == [0x1ABCD, 0x1ABCD, 7]


def test_on_an_ice40_ultraplus_it_is_spram_side_by_side():
    frag = Fragment.get(SinglePortRam(17, 1024), SimpleNamespace(device="iCE40UP5K"))
    spram = [sub for sub, *_ in frag.subfragments if isinstance(sub, Instance)]
    assert [s.type for s in spram] == ["SB_SPRAM256KA"] * 2  # 17 bits: two 16-bit SPRAMs
    with pytest.raises(ValueError, match="an SPRAM holds 16384"):
        Fragment.get(SinglePortRam(4, 20000), SimpleNamespace(device="iCE40UP5K"))


def test_only_cur_mem_and_weight_may_be_single_port():
    """CUR, MEM and the weight buffer (each slot its own single-port RAM) may be built single-port,
    each named at most once; only CUR and MEM, which the sink reads and writes, halve its rate."""
    art = A.load(resolve_artifact("digits"))
    assert program_mod.SINGLE_PORT_OK == ("cur", "mem", "weight")
    for bad in (("spk",), ("cur", "acc"), ("weight", "weight")):
        with pytest.raises(HwParamError) as e:
            compile_program(art, 1, single_port=bad)
        assert str(e.value) == f"single_port: {list(bad)!r}; each of cur, mem, weight at most once"
    assert compile_program(art, 1, single_port=SP).sink_gap == 2
    assert compile_program(art, 1, single_port=("weight",)).sink_gap == 1
    assert compile_program(art, 1, single_port=SP + ("weight",)).sink_gap == 2
    assert compile_program(art, 1).sink_gap == 1


@pytest.fixture(scope="module")
def sp_prog():
    # Every spike tensor kept (the verification reads all of them back after an image).
    return compile_program(A.load(resolve_artifact("digits")), 1, single_port=SP)


@pytest.mark.slow
def test_single_port_accelerator_is_bit_exact_on_the_cycle_model(sp_prog):
    idx, x = select_images(sp_prog.artifact, 3, seed=1)
    rep = verify(sp_prog, idx, x, delay=sp_prog.T - 1)
    assert rep.summary() == "3 passed, 0 failed", "\n".join(c.line() for c in rep.checks)
    assert all(c.cycles == c.model_cycles for c in rep.checks)


@pytest.mark.slow
def test_a_full_rate_sink_on_single_port_memories_is_caught(sp_prog, monkeypatch):
    monkeypatch.setattr(program_mod.Program, "sink_gap", property(lambda self: 1))
    idx, x = select_images(sp_prog.artifact, 2, seed=1)
    rep = verify(sp_prog, idx, x, delay=sp_prog.T - 1)
    assert rep.summary() == "0 passed, 2 failed"
