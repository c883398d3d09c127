"""csdformer.boards: building the accelerator for real FPGA boards.

- :mod:`.targets`: the supported boards (platform, device resources, clocks, lanes, pins).
- :mod:`.clocking`: PLL divider searches and the clock/reset generators of the ``sync`` domain.
- :mod:`.soc`: :class:`~.soc.BoardTop`, the board top around a core; the ``accelerator_core`` seam.
- :mod:`.build` and :mod:`.report`: the YoWASP build flow and its report (Markdown, JSON, PNG).
- :mod:`.throughput` and :mod:`.figures`: the cycle model's images/s, and the throughput and energy
  figures (GSOP/s, per 1,000 LUTs, SOP-based energy) of the report and ``bench/paper_size.py``.
- :mod:`.cli_build`: the ``csdformer build`` sub-command.
"""
