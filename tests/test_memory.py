"""BankedMemory (hw/memory.py), as the accelerator builds its memories (``Accelerator.memories``):
read latencies (``data`` two cycles after the address, ``q`` three: ``DATA_LATENCY``,
``Q_LATENCY``), streamed reads across banks, registered writes (a cycle later), transparency (a
read sees the write the RAM does in the cycle it reads), the collision poison of a memory that is
not transparent (that read returns its word inverted; without poison, the old word), every
user's port ORed (the others idle at zero). A variant built with the other transparency must
fail; the board builds' Yosys command marks exactly the banks that are not transparent. (The single-port RAM has its own
tests: tests/test_accel_single_port.py.)"""

from __future__ import annotations

import numpy as np
import pytest

from csdformer.hw.accelerator import Accelerator
from csdformer.hw.memory import DATA_LATENCY, Q_LATENCY, AccBuffers, BankedMemory
from csdformer.sim.benchlib.phase_rig import case, simulate

CASES = [("digits", 8, "acc"), ("digits", 8, "mem"), ("digits", 1, "cnt"), ("fashion_mnist", 16, "spk"),
         ("fashion_mnist", 16, "acc")]


def product_memory(name, lanes, key):
    acc = Accelerator(case(name, lanes).program)
    mems = acc.memories()
    for x in [acc] + [v for k, v in mems.items() if k != key]:
        x._MustUse__silence = True  # only this memory is built
    return mems[key]


def check_memory(mem: BankedMemory | AccBuffers, *, transparent: bool, user: int = -1, poison=None) -> list[str]:
    """Exercise ``mem`` through its read/write ports number ``user``; return the failures. ACC's
    buffers are one memory of their words side by side (word ``i`` at the port's address of
    buffer ``i // depth``); a user of buffer 0 only (``AccBuffers.first_only``) is exercised there."""
    buffers = getattr(mem, "buffers", 1)
    n = (1 if user % len(mem.read) in getattr(mem, "first_only", ()) else buffers) * mem.depth
    rng = np.random.default_rng(mem.depth)
    words = [int(v) for v in rng.integers(0, 1 << mem.width, size=n, dtype=np.uint64)] \
        if mem.width < 64 else [int(rng.integers(0, 1 << 62)) for _ in range(n)]
    rd, wr = mem.read[user], mem.write[user]
    # Buffer 0's words, then buffer 1's: the reads cross between buffers.
    addrs = [int(a) for a in rng.choice(n, size=min(n, 24 * buffers), replace=False)]

    def port_addr(i):
        return (i // mem.depth) << mem.k | i % mem.depth if buffers > 1 else i

    def cell(i):  # (RAM, index) of word i
        one = mem.memories[i // mem.depth] if buffers > 1 else mem
        banks, bd = one.banks, one.banks[0].depth
        return banks[i % mem.depth // bd], i % mem.depth % bd

    fails = []

    def expect(what, got, want):
        if got != want:
            fails.append(f"{what}: got {got:#x}, want {want:#x}")

    def drive(ctx, addr=0, data=0, en=0):  # the write port (idle: zero)
        for port, v in ((wr.addr, port_addr(addr)), (wr.data, data), (wr.en, en)):
            ctx.set(port, v)

    def word(ctx, a):
        ram, i = cell(a)
        return ctx.get(ram.data[i])

    async def bench(ctx):
        for a, v in enumerate(words):
            ram, i = cell(a)
            ctx.set(ram.data[i], v)
        # Streamed reads, one address a cycle: data at c + DATA_LATENCY, q at c + Q_LATENCY.
        seen = []
        for a in addrs + [0] * Q_LATENCY:
            ctx.set(rd.addr, port_addr(a))
            *_, d, q = await ctx.tick().sample(rd.data, rd.q)
            seen.append((d, q))  # in the cycle the address was set, and after
        for i, a in enumerate(addrs):
            expect(f"data of word {a}", seen[i + DATA_LATENCY][0], words[a])
            expect(f"q of word {a}", seen[i + Q_LATENCY][1], words[a])
        # A write lands in its bank after the edge (registered: one more).
        a, v = addrs[0], words[addrs[0]] ^ 1
        drive(ctx, a, v, 1)
        await ctx.tick()
        drive(ctx)
        if mem.registered_write:
            expect(f"word {a} one cycle after a registered write", word(ctx, a), words[a])
            await ctx.tick()
        expect(f"word {a} after its write", word(ctx, a), v)
        words[a] = v
        # The RAM reads the address one cycle after it is issued; a write that reaches the RAM in
        # that cycle is seen by a transparent read, not by the others.
        b, nv = addrs[1], words[addrs[1]] ^ 2
        ctx.set(rd.addr, port_addr(b))
        drive(ctx, b, nv, int(mem.registered_write))  # a registered write reaches the RAM a cycle later
        await ctx.tick()
        ctx.set(rd.addr, 0)
        drive(ctx, b, nv, int(not mem.registered_write))
        await ctx.tick()
        drive(ctx)
        d, = (await ctx.tick().sample(rd.data))[2:]
        poison_ = getattr(mem, "poison", False) if poison is None else poison  # what the test expects
        poisoned = words[b] ^ ((1 << mem.width) - 1) if poison_ else words[b]
        expect(f"read of word {b} in the cycle its write reaches the RAM", d, nv if transparent else poisoned)

    simulate(mem, bench)
    return fails


@pytest.mark.parametrize("case_", CASES, ids=[f"{c[0]}@{c[1]}-{c[2]}" for c in CASES])
def test_banked_memory_latencies_writes_transparency(case_):
    mem = product_memory(*case_)
    assert check_memory(mem, transparent=mem.transparent, user=0) == []


def test_a_colliding_read_is_poisoned_and_without_poison_old():
    """SPK (not transparent): the read that meets its word's write returns the word inverted by
    default, and the old word when built without poison (as a board builds it)."""
    mem = product_memory("digits", 8, "spk")
    assert not mem.transparent and mem.poison
    assert check_memory(mem, transparent=False, user=0) == []
    mem._MustUse__silence = True  # its parameters only
    plain = BankedMemory(mem.width, mem.depth, readers=len(mem.read), writers=len(mem.write),
                         registered_write=mem.registered_write, poison=False)
    assert check_memory(plain, transparent=False, user=0) == []
    fails = check_memory(plain, transparent=False, user=0, poison=True)  # expected, and absent
    assert len(fails) == 1 and "in the cycle its write reaches the RAM" in fails[0]


@pytest.mark.parametrize("outreg", [True, False], ids=["own", "ram"])
def test_transparency_after_the_bank_registers_or_the_rams(outreg):
    """A transparent memory's transparency is its own, after the bank registers (the ECP5 builds:
    each bank register then moves into its block RAM), or the RAM's (``outreg=False``, the
    iCE40): the same reads, poisoned or not."""
    mem = product_memory("digits", 8, "mem")
    mem._MustUse__silence = True  # its parameters only
    for poison in (True, False):
        other = BankedMemory(mem.width, mem.depth, readers=len(mem.read), writers=len(mem.write), transparent=True,
                             registered_write=mem.registered_write, poison=poison, outreg=outreg)
        assert other.own_transparency == outreg
        assert check_memory(other, transparent=True, user=0) == []


def test_every_users_port_is_ored():
    mem = product_memory("digits", 8, "acc")
    assert len(mem.read) == 3 and len(mem.write) >= 2
    assert check_memory(mem, transparent=True, user=len(mem.write) - 1) == []


def test_memory_with_the_other_transparency_fails():
    mem = product_memory("digits", 8, "acc")
    mem._MustUse__silence = True  # its parameters only
    other = BankedMemory(mem.width, mem.depth, readers=len(mem.read), writers=len(mem.write),
                         transparent=not mem.transparent, registered_write=mem.registered_write)
    fails = check_memory(other, transparent=mem.transparent, user=0)
    assert len(fails) == 1 and fails[0].startswith("read of word") and "in the cycle its write reaches the RAM" in fails[0]


def test_acc_buffers_serve_two_users_at_once():
    """ACC's two buffers (the sink of step t − 1 and the scatter of step t side by side): in the
    same cycles user 0 streams reads and writes in buffer 1 while user 1 does in buffer 0; each
    sees its own buffer's words (``data`` and ``q`` from the buffer its address named, also across
    a change of buffer), and each write lands in its own buffer only."""
    mem = product_memory("digits", 8, "acc")
    assert isinstance(mem, AccBuffers) and mem.buffers == 2
    rng = np.random.default_rng(1)
    words = [[int(v) for v in rng.integers(0, 1 << 62, size=mem.depth)] for _ in range(2)]
    addr = lambda b, a: b << mem.k | a  # noqa: E731
    fails = []

    async def bench(ctx):
        for b in range(2):
            one = mem.memories[b]
            bd = one.banks[0].depth
            for a, v in enumerate(words[b]):
                ctx.set(one.banks[a // bd].data[a % bd], v)
        # User 0 reads buffer 1 then buffer 0, user 1 the other way round, a word a cycle.
        plan = [(1 - (i >= 8), i) for i in range(16)]
        seen = []
        for (b, a) in plan + [(0, 0)] * Q_LATENCY:
            ctx.set(mem.read[0].addr, addr(b, a))
            ctx.set(mem.read[1].addr, addr(1 - b, a))
            *_, d0, q0, d1, q1 = await ctx.tick().sample(mem.read[0].data, mem.read[0].q, mem.read[1].data,
                                                         mem.read[1].q)
            seen.append((d0, q0, d1, q1))
        for i, (b, a) in enumerate(plan):
            for got, want, what in ((seen[i + DATA_LATENCY][0], words[b][a], "user 0 data"),
                                    (seen[i + Q_LATENCY][1], words[b][a], "user 0 q"),
                                    (seen[i + DATA_LATENCY][2], words[1 - b][a], "user 1 data"),
                                    (seen[i + Q_LATENCY][3], words[1 - b][a], "user 1 q")):
                if got != want:
                    fails.append(f"{what} of word {a}, buffer {b if what.startswith('user 0') else 1 - b}")
        ctx.set(mem.read[0].addr, 0)
        ctx.set(mem.read[1].addr, 0)
        # One cycle: user 0 writes word 3 of buffer 1, user 1 clears word 3 of buffer 0.
        for port, a, v in ((mem.write[0], addr(1, 3), 0xABC), (mem.write[1], addr(0, 3), 0)):
            ctx.set(port.addr, a)
            ctx.set(port.data, v)
            ctx.set(port.en, 1)
        await ctx.tick()
        for port in mem.write[:2]:
            ctx.set(port.en, 0)
            ctx.set(port.addr, 0)
            ctx.set(port.data, 0)
        await ctx.tick()
        for b, want in ((1, 0xABC), (0, 0)):
            one = mem.memories[b]
            if ctx.get(one.banks[3 // one.banks[0].depth].data[3 % one.banks[0].depth]) != want:
                fails.append(f"word 3 of buffer {b} after the writes")

    simulate(mem, bench)
    assert fails == []


def test_acc_buffer_0s_own_user_reaches_buffer_0_only():
    """ACC's user 2 (the bias pass's writes, the logits' reads) works in buffer 0 only: its port is
    not among buffer 1's (one user fewer ORed there), so even a write naming buffer 1 lands in
    buffer 0 and buffer 1 keeps its word."""
    mem = product_memory("digits", 8, "acc")
    assert mem.first_only == {2}
    fails = []

    async def bench(ctx):
        w = mem.write[2]
        for port, v in ((w.addr, 1 << mem.k | 5), (w.data, 0x5A5), (w.en, 1)):
            ctx.set(port, v)
        await ctx.tick()
        ctx.set(w.en, 0)
        await ctx.tick()
        for b, want in ((0, 0x5A5), (1, 0)):
            one = mem.memories[b]
            bd = one.banks[0].depth
            if ctx.get(one.banks[5 // bd].data[5 % bd]) != want:
                fails.append(f"word 5 of buffer {b}")

    simulate(mem, bench)
    assert fails == []


def test_a_board_builds_memories_without_poison():
    """``Accelerator(poison=False)`` (a board's core, ``csdformer rtl``) builds every memory without
    the poison, ACC's buffers and the transparent memories too: a poisoned read is logic between a
    block RAM and its register, which keeps the RAM's output register out (boards/outreg)."""
    from csdformer import artifact as A
    from csdformer.hw.accelerator import Accelerator
    from csdformer.hw.program import compile_program

    for lanes, single_port in ((16, ()), (1, ("cur", "weight"))):
        program = compile_program(A.load(A.resolve_artifact("digits")), lanes, single_port=single_port)
        for poison in (False, True):
            for outreg in (False, True):
                accel = Accelerator(program, poison=poison, outreg=outreg)
                mems = accel.memories()
                for x in (accel, *mems.values()):
                    x._MustUse__silence = True  # made to read their parameters, not built
                flags = {name: (m._kw["poison"] if isinstance(m, AccBuffers) else m.poison) for name, m in mems.items()}
                assert flags == {name: poison for name in mems}, (lanes, poison, flags)
                # transparency after the bank registers where a build uses the RAMs' output registers
                own = {name for name, m in mems.items()
                       if (m._kw["outreg"] and m._kw["transparent"] if isinstance(m, AccBuffers)
                           else getattr(m, "own_transparency", False))}
                assert own == ({"acc", "cnt", "mem"} if outreg and not program.compact else set()), (lanes, own)
