"""In-simulator half of the bench library: clock/reset, stream driver and monitor, data, results.

Imported by the cocotb benches in ``sim/benches/`` only (it imports :mod:`cocotb`).

Timing: driver and monitor act once a cycle on the falling clock edge (drive ``valid``/``payload``
or ``ready``), then wait for ``ReadOnly`` (everything settled) and sample the handshake that the
next rising edge will perform. That is race-free with combinational ``ready``/``valid`` paths.
A handshake's cycle number is the index of that rising edge (:func:`cycle_now`).

Example (inside a ``@cocotb.test()``)::

    data, meta = bench_data()
    await start(dut)
    drv = StreamDriver(dut, "i_stream", seed=1)
    mon = StreamMonitor(dut, "o_stream", seed=2)
    mon.start()
    await drv.send(words)           # list of payload ints
    beats = await mon.wait(len(expected_words))
    finish(mismatches=..., measured_cycles=mon.cycles[-1] - drv.cycles[0] + 1, model_cycles=...)
"""

from __future__ import annotations

import json
import os
import random
import time

import numpy as np

import cocotb
from cocotb.clock import Clock
from cocotb.simtime import get_sim_time
from cocotb.triggers import FallingEdge, ReadOnly, RisingEdge

from . import check_cycles

__all__ = ["PERIOD_NS", "strip_padding", "start", "cycle_now", "StreamDriver", "StreamMonitor", "transfer", "check_phases", "bench_data", "finish"]

PERIOD_NS = 10
_T0 = None  # wall-clock start of the bench (set by start)


def _to_int(value) -> int:
    """A port value (``LogicArray``, or ``Logic`` for 1-bit ports) as an unsigned int."""
    return int(value.to_unsigned()) if hasattr(value, "to_unsigned") else int(value)


def strip_padding(values: np.ndarray, n: int) -> np.ndarray:
    """``values[..., :n]``, raising ValueError if any padded lane (``values[..., n:]``) is non-zero.

    Units document that lanes past the last neuron/channel read 0; a bench holds them to it."""
    if np.any(values[..., n:]):
        raise ValueError("non-zero padding lane")
    return values[..., :n]


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


def _bind(port, dut, prefix: str, seed: int) -> None:
    """Attach a driver/monitor to the ``<prefix>__valid/__payload/__ready`` handles of ``dut``."""
    port.dut = dut
    port.clk = dut.clk
    port.valid = getattr(dut, f"{prefix}__valid")
    port.payload = getattr(dut, f"{prefix}__payload")
    port.ready = getattr(dut, f"{prefix}__ready")
    port.rng = random.Random(seed)
    port.cycles = []


class StreamDriver:
    """Drives ``<prefix>__valid``/``__payload`` of an input stream, honouring ``__ready``.

    Parameters
    ----------
    dut : handle
    prefix : str
        Stream name as in the Verilog (``i_stream`` for ports ``i_stream__payload`` ...).
    idle : float
        Probability, each cycle with no beat pending, of leaving ``valid`` low (seeded).
    seed : int
        Seed of the idle pattern.

    Attributes
    ----------
    cycles : list of int
        Cycle of each accepted beat.
    """

    def __init__(self, dut, prefix: str = "i_stream", *, idle: float = 0.0, seed: int = 0):
        _bind(self, dut, prefix, seed)
        self.idle = float(idle)
        self.valid.value = 0

    async def send(self, words) -> None:
        """Send every payload word, one beat each; returns after the last is accepted."""
        for word in words:
            while self.idle and self.rng.random() < self.idle:
                self.valid.value = 0
                await FallingEdge(self.clk)
            self.payload.value = int(word)
            self.valid.value = 1
            while True:
                await ReadOnly()
                accepted = bool(self.ready.value)
                cyc = cycle_now()
                await FallingEdge(self.clk)
                if accepted:
                    self.cycles.append(cyc)
                    break
        self.valid.value = 0


class StreamMonitor:
    """Collects beats of an output stream, driving ``<prefix>__ready`` (random stalls optional).

    Parameters
    ----------
    dut : handle
    prefix : str
        Stream name as in the Verilog (``o_stream``).
    stall : float
        Probability of ``ready`` being low on any cycle (seeded).
    seed : int

    Attributes
    ----------
    beats : list of int
        Payload words received, in order.
    cycles : list of int
        Cycle of each received beat.
    """

    def __init__(self, dut, prefix: str = "o_stream", *, stall: float = 0.0, seed: int = 0):
        _bind(self, dut, prefix, seed)
        self.stall = float(stall)
        self.beats: list[int] = []
        self._task = None
        self.ready.value = 0

    def start(self) -> None:
        """Start collecting (a background task, stopped by :meth:`wait`)."""
        self._task = cocotb.start_soon(self._run())

    async def _run(self) -> None:
        while True:
            rdy = not (self.stall and self.rng.random() < self.stall)
            self.ready.value = int(rdy)
            await ReadOnly()
            if rdy and self.valid.value == 1:
                self.beats.append(_to_int(self.payload.value))
                self.cycles.append(cycle_now())
            await FallingEdge(self.clk)

    async def wait(self, count: int, *, timeout_cycles: int = 1_000_000) -> list[int]:
        """Wait until ``count`` beats have arrived (or ``timeout_cycles`` pass), then stop."""
        waited = 0
        while len(self.beats) < count and waited < timeout_cycles:
            await FallingEdge(self.clk)
            waited += 1
        # a few more cycles: any extra (unexpected) beat shows up as a length mismatch
        for _ in range(4):
            await FallingEdge(self.clk)
        if self._task is not None:
            self._task.cancel()
            self._task = None
        self.ready.value = 0
        return list(self.beats)


async def transfer(dut, inputs: dict, output: str, count: int, *, idle: float = 0.0,
                   stall: float = 0.0, seed: int = 0) -> tuple[list[int], int]:
    """Send ``inputs`` (``{prefix: [payload words]}``, all streams concurrently) and collect
    ``count`` beats of stream ``output``.

    Returns ``(beats, measured_cycles)``, ``measured_cycles`` per the module's convention (first
    input beat accepted on any stream to last output beat, inclusive). Call at a falling edge
    (e.g. right after :func:`start` or a previous :func:`transfer`).
    """
    mon = StreamMonitor(dut, output, stall=stall, seed=seed * 7919 + 1)
    drivers = [StreamDriver(dut, p, idle=idle, seed=seed * 7919 + 2 + i) for i, p in enumerate(inputs)]
    mon.start()
    tasks = [cocotb.start_soon(d.send(words)) for d, words in zip(drivers, inputs.values())]
    for t in tasks:
        await t
    beats = await mon.wait(count)
    firsts = [d.cycles[0] for d in drivers if d.cycles]
    measured = (mon.cycles[-1] - min(firsts) + 1) if (firsts and mon.cycles) else 0
    return beats, measured


async def check_phases(dut, *, inputs, output: str, beats_out, decode, expected, model_cycles: int,
                       idle: float = 0.3, stall: float = 0.3, phase2_items: int | None = None,
                       **extra) -> None:
    """The standard bench body: two phases over a batch of items (windows), then :func:`finish`.

    Phase 1 streams all ``len(expected)`` items with no idle/backpressure and measures cycles
    (held to ``model_cycles``); phase 2 streams the first ``phase2_items`` items again with seeded
    random idle cycles (``idle``) and stalls (``stall``). Every decoded output value of both phases
    is compared with ``expected``.

    Parameters
    ----------
    inputs : callable ``n -> {prefix: [payload words]}``
        Input beats of the first ``n`` items.
    beats_out : callable ``n -> int``
        Output beats the first ``n`` items produce.
    decode : callable ``(beats, n) -> array``
        Output words → values shaped like ``expected[:n]`` (a wrong beat count must give an
        array of another shape, or raise ValueError: both count as mismatches).
    expected : array
        Golden values, first axis = items.
    """
    n_all = len(expected)
    plan = [(n_all, 0.0, 0.0)]
    if phase2_items:
        plan.append((min(int(phase2_items), n_all), float(idle), float(stall)))
    mismatches = compared = 0
    measured = None
    for phase, (n, idl, stl) in enumerate(plan):
        beats, cyc = await transfer(dut, inputs(n), output, beats_out(n), idle=idl, stall=stl, seed=phase + 1)
        if phase == 0:
            measured = cyc
        want = np.asarray(expected[:n])
        compared += want.size
        try:
            got = np.asarray(decode(beats, n))
        except ValueError:
            got = None
        if got is None or got.shape != want.shape:
            dut._log.error("phase %d: got %d beats, expected %d", phase, len(beats), beats_out(n))
            mismatches += max(want.size, 1)
        else:
            bad = np.argwhere(got != want)
            if len(bad):
                dut._log.error("phase %d: %d mismatches, first at %s: got %s want %s", phase, len(bad),
                               tuple(bad[0]), got[tuple(bad[0])], want[tuple(bad[0])])
            mismatches += len(bad)
    finish(mismatches=mismatches, compared=compared, measured_cycles=measured, model_cycles=model_cycles,
           items=n_all, **extra)


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
