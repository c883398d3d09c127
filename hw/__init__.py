"""csdformer.hw: the spike-driven hardware units, generated with Amaranth 0.5.

Each unit is a :class:`amaranth.lib.wiring.Component` with :mod:`amaranth.lib.stream` ports, in
its own module; shared helpers (parameter checks, widths from bounds, Verilog output, the
corrupted-RTL wrapper) live in :mod:`csdformer.hw.common`. Bad parameters raise
:class:`HwParamError` (a :class:`csdformer.CsdformerError`) at construction.

Unit registry
-------------
:data:`UNITS` maps a unit name to its module (imported lazily by :func:`unit_module`). Each module
follows the convention documented in :mod:`csdformer.hw.common`: ``GOLDEN`` (the golden op that
judges it), ``cycles(...)`` (cycle model), ``SYNTH_PARAMS`` ``{label: params}`` and
``build_for_synth(params)``. ``bench/hw_synth.py`` synthesizes every registered unit that defines
``SYNTH_PARAMS``; to add a unit, add one line here. ``MULTIPLIER_OK`` names the units allowed to
use DSP/multiplier cells (the encoding layer only, SPEC §6); a module may instead name some of its
own ``SYNTH_PARAMS`` labels in ``MULTIPLIER_OK_PARAMS``. Any other DSP cell is flagged.

Verification lives in :mod:`csdformer.sim.benchlib` (cocotb runner, stream driver/monitor, the
cycle-measurement convention, the corrupted-RTL hook) and ``sim/benches/`` (one bench a unit).
"""

from __future__ import annotations

import importlib

from .common import HwParamError

__all__ = ["HwParamError", "UNITS", "MULTIPLIER_OK", "unit_module"]

UNITS: dict[str, str] = {
    "dif": "csdformer.hw.dif",
    "tdec_maxpool": "csdformer.hw.tdec_maxpool",
    "residual_add": "csdformer.hw.residual_add",
    "accumulate": "csdformer.hw.accumulate",
    "tdec_matmul": "csdformer.hw.tdec_matmul",
    "encode_conv": "csdformer.hw.encode_conv",
}

MULTIPLIER_OK: frozenset[str] = frozenset({"encode_conv"})


def unit_module(name: str):
    """The module of registered unit ``name``."""
    try:
        return importlib.import_module(UNITS[name])
    except KeyError:
        raise HwParamError(f"unknown unit {name!r}; known: {', '.join(UNITS)}") from None
