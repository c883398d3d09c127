"""cocotb bench of the whole-network accelerator (:mod:`csdformer.hw.accelerator`).

Waits until the model loader has the first ops' records in (``prefetched``), streams each image in (one pixel a cycle), collects the logits, the predicted class and the
performance counters (the prediction may come a cycle after the last logit), then reads back every
spike tensor through the debug port; a Testbed's ``memory_error`` (the memory model's) fails the
image. It records what
the hardware did and leaves the judging to :mod:`csdformer.sim.verify` (golden model, cycle
model), which also names the first layer that differs.

Data: ``images`` uint ``(N, n_pixels)`` in ``(y, x, c)`` order, ``delays`` ``(N,)``. Meta:
``num_classes``, ``dump`` ``[[base, words], ...]`` (SPK ranges to read back), ``budget_cycles``
(the whole run's cycle budget, from the cycle model: :func:`csdformer.sim.verify.cycle_budget`),
``indices`` (the images' names in messages). Result (next to the JSON result): ``hw.npz`` with
``logits``, ``prediction``, ``cycles``, ``spikes``, ``sops``, ``spk``; past the budget, an
``error`` line naming the image in progress and the budget instead.
"""

import os

import cocotb
import numpy as np
from cocotb.triggers import FallingEdge, First, RisingEdge

from csdformer.hw.accelerator import DBG_LATENCY
from csdformer.sim.benchlib.stream import _to_int, bench_data, finish, start, within_budget


def _signed(v: int, width: int) -> int:
    return v - (1 << width) if v >> (width - 1) & 1 else v


@cocotb.test()
async def accelerator(dut):
    data, meta = bench_data()
    n = len(data["images"])
    names = meta.get("indices") or list(range(n))
    now = {"i": 0}  # the image in progress, for the budget's message
    await within_budget(_run(dut, data, meta, now), meta["budget_cycles"],
                        lambda: f"image {names[now['i']]} ({now['i'] + 1} of {n})")


async def _run(dut, data, meta, now):
    images, delays = data["images"], data["delays"]
    nc, lw = meta["num_classes"], meta["logit_width"]
    addrs = [a for base, n in meta["dump"] for a in range(base, base + n)]
    n = len(images)
    logits = np.zeros((n, nc), dtype=np.int64)
    pred = np.zeros(n, dtype=np.int64)
    counters = {k: np.zeros(n, dtype=np.int64) for k in ("cycles", "spikes", "sops")}
    spk = np.zeros((n, len(addrs)), dtype=np.uint64)
    progress = os.environ.get("CSDFORMER_BENCH_PROGRESS")  # one line an image, for the runner to show
    memory_error = getattr(dut, "memory_error", None)  # the bare accelerator (bus benches) has none
    await start(dut)
    dut.logits__ready.value = 1
    dut.prediction__ready.value = 0
    dut.image__valid.value = 0
    for i in range(n):
        now["i"] = i
        await FallingEdge(dut.clk)
        # The cycle model counts from a loader that has the first two records in (steady state).
        while not _to_int(dut.prefetched.value):
            assert not _to_int(dut.error.value), "the accelerator refused its flash image (error)"
            # no coroutine a cycle while the records load: wake on the flags, look at the falling edge
            await First(RisingEdge(dut.prefetched), RisingEdge(dut.error))
            await FallingEdge(dut.clk)
        dut.delay.value = int(delays[i])
        dut.image__valid.value = 1
        for px in images[i]:
            dut.image__payload.value = int(px)
            await FallingEdge(dut.clk)  # accepted at the rising edge in between (ready while loading)
        dut.image__valid.value = 0
        k = 0
        if not _to_int(dut.logits__valid.value):
            await RisingEdge(dut.logits__valid)
            await FallingEdge(dut.clk)
        while k < nc:
            if _to_int(dut.logits__valid.value):
                logits[i, k] = _signed(_to_int(dut.logits__payload.value), lw)
                k += 1
            await FallingEdge(dut.clk)
        if not _to_int(dut.prediction__valid.value):  # the last logit's compare takes a cycle
            await FallingEdge(dut.clk)
        assert _to_int(dut.prediction__valid.value), "no prediction after the logits"
        pred[i] = _to_int(dut.prediction__payload.value)
        for key in counters:
            counters[key][i] = _to_int(getattr(dut, key).value)
        dut.prediction__ready.value = 1
        await FallingEdge(dut.clk)
        dut.prediction__ready.value = 0
        if memory_error is not None:  # (a Testbed's: the memory model's sticky error)
            assert not _to_int(memory_error.value), f"image {i + 1}: the memory model reports an error"
        dut._log.info(f"image {i + 1}/{n}: class {pred[i]}, {counters['cycles'][i]} cycles")
        if progress:
            with open(progress, "a") as f:
                f.write(f"{i + 1} {n} class {pred[i]}, {counters['cycles'][i]} cycles\n")
        # Idle now: read the spike frames back, one word a cycle, DBG_LATENCY cycles behind.
        for j in range(len(addrs) + DBG_LATENCY - 1):
            if j < len(addrs):
                dut.dbg_addr.value = addrs[j]
            await FallingEdge(dut.clk)
            if j >= DBG_LATENCY - 1:
                spk[i, j - DBG_LATENCY + 1] = _to_int(dut.dbg_data.value)
    out = os.path.join(os.path.dirname(os.environ["CSDFORMER_BENCH_RESULT"]), "hw.npz")
    np.savez(out, logits=logits, prediction=pred, spk=spk, **counters)
    finish(mismatches=0, compared=n, hw_npz=out)
