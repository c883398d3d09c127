"""In-simulator half of the bench library: clock/reset, the bench's data, its result.

Imported by the cocotb benches in ``sim/benches/`` only (it imports :mod:`cocotb`). A cycle
number is the index of a rising clock edge (:func:`cycle_now`).
"""

from __future__ import annotations

import json
import os

import time

import numpy as np

import cocotb
from cocotb.clock import Clock
from cocotb.simtime import get_sim_time
from cocotb.triggers import FallingEdge, RisingEdge

from . import check_cycles

__all__ = ["PERIOD_NS", "start", "cycle_now", "bench_data", "finish", "within_budget"]

PERIOD_NS = 10
_T0 = None  # wall-clock start of the bench (set by start)


def _to_int(value) -> int:
    """A port value (``LogicArray``, or ``Logic`` for 1-bit ports) as an unsigned int."""
    return int(value.to_unsigned()) if hasattr(value, "to_unsigned") else int(value)


def cycle_now() -> int:
    """Index of the next rising edge (edges at ``PERIOD_NS * k``, k = 1, 2, ...)."""
    return int(get_sim_time("ns") // PERIOD_NS) + 1


async def start(dut, *, reset_cycles: int = 2) -> None:
    """Start the clock on ``dut.clk`` and pulse ``dut.rst`` for ``reset_cycles`` cycles."""
    global _T0
    _T0 = time.perf_counter()
    Clock(dut.clk, PERIOD_NS, unit="ns").start()
    dut.rst.value = 1
    for _ in range(reset_cycles):
        await RisingEdge(dut.clk)
    await FallingEdge(dut.clk)
    dut.rst.value = 0


def bench_data() -> tuple[dict[str, np.ndarray], dict]:
    """The stimuli/expected arrays and the ``meta`` dict the runner handed to this bench."""
    with np.load(os.environ["CSDFORMER_BENCH_DATA"]) as f:
        arrays = {k: f[k] for k in f.files}
    with open(os.environ["CSDFORMER_BENCH_META"]) as f:
        meta = json.load(f)
    return arrays, meta


def finish(*, mismatches: int, compared: int, measured_cycles: int | None = None,
           model_cycles: int | None = None, sim_cycles: int | None = None, **extra) -> None:
    """Write the bench result (JSON, for the launcher and ``bench/hw_simspeed.py``) and assert.

    Fails the cocotb test if ``mismatches`` is non-zero or if measured cycles are not within 5 % of
    the model.
    """
    cyc_ok = True
    if measured_cycles is not None and model_cycles is not None:
        cyc_ok = check_cycles(measured_cycles, model_cycles)
    result = {
        "mismatches": int(mismatches),
        "compared": int(compared),
        "measured_cycles": measured_cycles,
        "model_cycles": model_cycles,
        "cycles_ok": cyc_ok,
        "sim_cycles": int(sim_cycles) if sim_cycles is not None else cycle_now(),
        "bench_wall_s": (time.perf_counter() - _T0) if _T0 is not None else None,
        **extra,
    }
    path = os.environ.get("CSDFORMER_BENCH_RESULT")
    if path:
        with open(path, "w") as f:
            json.dump(result, f, indent=1, default=int)
    assert mismatches == 0, f"{mismatches} mismatching values out of {compared} (see {path})"
    assert cyc_ok, f"measured {measured_cycles} cycles, model {model_cycles}: not within 5 %"


async def within_budget(body, budget_cycles: int, where) -> None:
    """Run the coroutine ``body`` (the bench's work) for at most ``budget_cycles`` clock cycles.

    Every bench has such a budget, derived from the cycle model by its launcher, so that a design
    that stops answering fails the run instead of hanging it. On overrun ``body`` is cancelled, the
    result is written with a one-line ``error`` (``where()``, the item in progress, and the budget)
    and the cocotb test fails with the same line.
    """
    from cocotb.triggers import SimTimeoutError, with_timeout

    budget_cycles = int(budget_cycles)
    task = cocotb.start_soon(body)
    try:
        await with_timeout(task, budget_cycles * PERIOD_NS, "ns")
    except SimTimeoutError:
        task.cancel()
        msg = (f"{where()}: not done within the cycle budget of {budget_cycles:,} cycles "
               f"(from the cycle model); the simulation was stopped")
        path = os.environ.get("CSDFORMER_BENCH_RESULT")
        if path:
            with open(path, "w") as f:
                json.dump({"error": msg, "budget_cycles": budget_cycles, "sim_cycles": cycle_now(),
                           "mismatches": None, "compared": 0}, f, indent=1)
        raise AssertionError(msg) from None
