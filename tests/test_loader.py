"""The model loader (hw/loader.py) with resident weights, on its own in Amaranth's simulator behind
an on-chip weight stream holding the shipped digits model's flash image: it reads the header, the
tables and every record exactly once (one read each, none after the last), writes each op's
weights at the compiler's ``w_base`` and each op word at ``j · op_bytes``, and says an op is in
(``full``) from the first record on, whatever op the sequencer is at."""

from __future__ import annotations

from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.sim import Simulator

from csdformer import artifact as A
from csdformer.artifact import resolve_artifact
from csdformer.hw.flash_image import build_image, op_bytes
from csdformer.hw.loader import ModelLoader
from csdformer.hw.program import compile_program
from csdformer.hw.weightstream import RomStream


class _Rig(wiring.Elaboratable):
    def __init__(self, program):
        self.rom, self.loader = RomStream(build_image(program)), ModelLoader(program)

    def elaborate(self, platform):
        m = Module()
        m.submodules.rom, m.submodules.loader = self.rom, self.loader
        wiring.connect(m, self.loader.bus, self.rom.bus)
        return m


def test_resident_records_are_read_once_into_their_places():
    prog = compile_program(A.load(resolve_artifact("digits")), 16, resident=True)
    n_ops, OB, P, W = len(prog.ops), op_bytes(prog), prog.lanes, prog.widths["weight"]
    rig = _Rig(prog)
    ld = rig.loader
    weights, op_words, seen = {}, {}, {"reads": 0, "full_before": None}

    async def bench(ctx):
        cycles = 0
        while not ctx.get(ld.prefetched):
            cmd_v, cmd_r, wen, oen = (ctx.get(s) for s in (ld.bus.cmd.valid, ld.bus.cmd.ready, ld.weight_w.en, ld.op_w.en))
            if cmd_v and cmd_r:
                seen["reads"] += 1
            if wen:
                weights[ctx.get(ld.weight_w.addr)] = ctx.get(ld.weight_w.data)
            if oen:
                op_words[ctx.get(ld.op_w.addr)] = ctx.get(ld.op_w.data)
            if seen["full_before"] is None and ctx.get(ld.full) and not ctx.get(ld.prefetched):
                seen["full_before"] = True  # op 0 is in before the last record
            await ctx.tick()
            cycles += 1
            assert cycles < 200_000, "the loader did not finish"
        await ctx.tick().repeat(3)  # the last word's write
        for _ in range(2 * n_ops + 3):  # the sequencer ends every op twice over: two images
            assert ctx.get(ld.full) == 0b11
            ctx.set(ld.free, 0b01)
            await ctx.tick()
            ctx.set(ld.free, 0)
            for _ in range(20):
                assert not ctx.get(ld.bus.cmd.valid), "a record read again after the last"
                await ctx.tick()

    sim = Simulator(rig)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()

    assert seen["reads"] == 1 + n_ops  # the header (with the tables), then each record once
    assert seen["full_before"]
    mask = (1 << W) - 1
    want = {i: sum((int(v) & mask) << (k * W) for k, v in enumerate(row)) for i, row in enumerate(prog.weights)}
    assert weights == want and len(want) == prog.depths["weight"]
    for j, op in enumerate(prog.ops):
        if op.weights is not None:
            assert op.f["w_base"] + len(op.weights) <= len(want)
        word = int.from_bytes(bytes(op_words[j * OB + b] for b in range(OB)), "little")
        assert word == prog.encode(op)


def test_loader_state_is_one_hot_only_where_the_units_are_not_compact():
    """The ECP5 builds encode the loader's FSM one-hot (its DONE decode, placed between far users,
    was a ULX3S critical path); the iCEBreaker's (``Program.compact``) keeps it binary: one-hot,
    nextpnr found no legal placement at 96 % of its logic cells."""
    from amaranth.back import rtlil

    art = A.load(resolve_artifact("digits"))
    for single_port, lanes, one_hot in (((), 8, True), (("cur", "mem", "weight"), 1, False)):
        program = compile_program(art, lanes, single_port=single_port)
        assert program.compact is not one_hot
        lines = rtlil.convert(ModelLoader(program)).splitlines()
        (k,) = [i for i, line in enumerate(lines) if line.strip().startswith("wire") and
                line.strip().endswith("\\loader_state")]
        assert ('\\fsm_encoding "one-hot"' in lines[k - 1]) is one_hot
