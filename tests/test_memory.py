"""BankedMemory (hw/memory.py), as the accelerator builds its memories (``Accelerator.memories``):
read latencies (``data`` two cycles after the address, ``q`` three: ``DATA_LATENCY``,
``Q_LATENCY``), streamed reads across banks, registered writes (a cycle later), transparency (a
read sees the write the RAM does in the cycle it reads), every user's port ORed (the others idle
at zero). A variant built with the other transparency must fail. (The single-port RAM has its own
tests: tests/test_accel_single_port.py.)"""

from __future__ import annotations

import numpy as np
import pytest

from csdformer.hw.accelerator import Accelerator
from csdformer.hw.memory import DATA_LATENCY, Q_LATENCY, BankedMemory
from csdformer.sim.benchlib.phase_rig import case, simulate

CASES = [("digits", 8, "acc"), ("digits", 8, "mem"), ("digits", 1, "cnt"), ("fashion_mnist", 16, "spk"),
         ("fashion_mnist", 16, "acc")]


def product_memory(name, lanes, key):
    acc = Accelerator(case(name, lanes).program)
    mems = acc.memories()
    for x in [acc] + [v for k, v in mems.items() if k != key]:
        x._MustUse__silence = True  # only this memory is built
    return mems[key]


def check_memory(mem: BankedMemory, *, transparent: bool, user: int = -1) -> list[str]:
    """Exercise ``mem`` through its read/write ports number ``user``; return the failures."""
    rng = np.random.default_rng(mem.depth)
    words = [int(v) for v in rng.integers(0, 1 << mem.width, size=mem.depth, dtype=np.uint64)] \
        if mem.width < 64 else [int(rng.integers(0, 1 << 62)) for _ in range(mem.depth)]
    rd, wr = mem.read[user], mem.write[user]
    addrs = [int(a) for a in rng.choice(mem.depth, size=min(mem.depth, 24), replace=False)]
    fails = []

    def expect(what, got, want):
        if got != want:
            fails.append(f"{what}: got {got:#x}, want {want:#x}")

    def drive(ctx, addr=0, data=0, en=0):  # the write port (idle: zero)
        for port, v in ((wr.addr, addr), (wr.data, data), (wr.en, en)):
            ctx.set(port, v)

    async def bench(ctx):
        banks, bd = mem.banks, mem.banks[0].depth
        for a, v in enumerate(words):
            ctx.set(banks[a // bd].data[a % bd], v)
        # Streamed reads, one address a cycle: data at c + DATA_LATENCY, q at c + Q_LATENCY.
        seen = []
        for a in addrs + [0] * Q_LATENCY:
            ctx.set(rd.addr, a)
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
            expect(f"word {a} one cycle after a registered write", ctx.get(banks[a // bd].data[a % bd]), words[a])
            await ctx.tick()
        expect(f"word {a} after its write", ctx.get(banks[a // bd].data[a % bd]), v)
        words[a] = v
        # The RAM reads the address one cycle after it is issued; a write that reaches the RAM in
        # that cycle is seen by a transparent read, not by the others.
        b, nv = addrs[1], words[addrs[1]] ^ 2
        ctx.set(rd.addr, b)
        drive(ctx, b, nv, int(mem.registered_write))  # a registered write reaches the RAM a cycle later
        await ctx.tick()
        ctx.set(rd.addr, 0)
        drive(ctx, b, nv, int(not mem.registered_write))
        await ctx.tick()
        drive(ctx)
        d, = (await ctx.tick().sample(rd.data))[2:]
        expect(f"read of word {b} in the cycle its write reaches the RAM", d, nv if transparent else words[b])

    simulate(mem, bench)
    return fails


@pytest.mark.parametrize("case_", CASES, ids=[f"{c[0]}@{c[1]}-{c[2]}" for c in CASES])
def test_banked_memory_latencies_writes_transparency(case_):
    mem = product_memory(*case_)
    assert check_memory(mem, transparent=mem.transparent, user=0) == []


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
