"""csdformer.hw: the whole-network spiking accelerator and its link, generated with Amaranth 0.5.

The accelerator (:mod:`.accelerator`) is a composition of phase units, each a
:class:`amaranth.lib.wiring.Component` in a module of its own that also carries its cycle model
(``cycles``) and names its golden slice: :mod:`.sequencer` (runs the typed op program of
:mod:`.program`), :mod:`.scatter`, :mod:`.sink`, :mod:`.maxpool`, :mod:`.transpose`,
:mod:`.logits`, over the memory system of :mod:`.memory`. :mod:`.netmodel` sums the units' cycles
per image; :mod:`.rtl` writes the Verilog. :mod:`.uart` and :mod:`.link` are the board's UART
link. Shared helpers (parameter checks, widths, Verilog output, the corrupted-RTL wrapper) live in
:mod:`.common`; bad parameters raise :class:`HwParamError` before any RTL exists.
"""

from __future__ import annotations

from .common import HwParamError

__all__ = ["HwParamError"]
