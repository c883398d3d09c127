"""``csdformer build ARTIFACT --board NAME``: build the accelerator bitstream for a board.

``add_build_parser(subparsers)`` adds the sub-command to the ``csdformer`` CLI and
``build_command(args)`` runs it (exit 0 when the design fits and meets timing, 1 when not, and a
:class:`~csdformer.CsdformerError` for bad arguments).

The core seam
-------------
The core (UART link + whole-network accelerator) is made by the function named in
:data:`CORE_PROVIDER`, ``csdformer.boards.soc:accelerator_core`` (contract in its docstring):
``provider(program, divisor, *, board, clock_hz) -> wiring.Component``. The environment variable
``CSDFORMER_CORE_PROVIDER=module:function`` overrides it, and tests may set
:data:`CORE_PROVIDER` to a callable; this is how a stand-in core is built today.
"""

from __future__ import annotations

import importlib
import json
import os
from pathlib import Path

from .. import CsdformerError
from ..artifact import load, resolve_artifact
from ..hw.common import HwParamError, check_int
from ..hw.fabric import Fabric
from ..hw.flash_image import build_image
from ..hw.program import compile_program
from .build import build
from .report import BuildReport
from .soc import DEFAULT_BAUD, BoardTop, uart_divisor
from .targets import BOARDS, get_board
from .throughput import model_cycles

__all__ = ["add_build_parser", "build_command", "core_provider", "memory_check", "CORE_PROVIDER",
           "CORE_PROVIDER_ENV"]

CORE_PROVIDER = "csdformer.boards.soc:accelerator_core"
CORE_PROVIDER_ENV = "CSDFORMER_CORE_PROVIDER"


def core_provider():
    """The core factory: ``$CSDFORMER_CORE_PROVIDER``, else :data:`CORE_PROVIDER` (``module:function`` or a callable)."""
    spec = os.environ.get(CORE_PROVIDER_ENV) or CORE_PROVIDER
    if callable(spec):
        return spec
    module, _, attr = spec.partition(":")
    try:
        fn = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as e:
        raise CsdformerError(f"core provider {spec!r} cannot be loaded ({e})") from None
    if not callable(fn):
        raise CsdformerError(f"core provider {spec!r} is not a function")
    return fn


def memory_check(artifact, lanes: int, board, out_dir, freq_mhz=None):
    """Compile the artifact's layer program for the board's memory budget (seconds, no synthesis).

    Returns ``(program, None)`` when its memories can fit (the board's program: spike tensors
    shared by liveness, the board's single-port memories, compiled into a fabric with a bit of
    headroom in every value-dependent width, so that retrained models of the same shape run on
    the same bitstream), else ``(None, report)``: a failed
    :class:`BuildReport` (written to ``out_dir``) whose error says how much memory each part
    needs against what the device has.
    """
    try:
        natural = compile_program(artifact, lanes, keep_spikes=False, target=board.memory_target,
                                  single_port=board.single_port)
        fabric = Fabric.of(natural, headroom=True)
        return compile_program(artifact, lanes, keep_spikes=False, target=board.memory_target,
                               single_port=board.single_port, fabric=fabric), None
    except HwParamError as e:
        if not str(e).startswith("memory:"):
            raise
        report = BuildReport(board=board.name, device=board.device, family=board.family,
                             target_mhz=freq_mhz or board.freq_mhz, goal_mhz=board.goal_mhz, fit=False,
                             errors=[f"the accelerator's on-chip {e} (checked before synthesis; nothing built)"])
        report.write(out_dir)
        return None, report


def add_build_parser(subparsers):
    """Add ``build`` to an ``argparse`` sub-parser set; the handler is ``fn=build_command``."""
    boards = "; ".join(f"{b.name}: {b.device}, {b.freq_mhz:g} MHz, {b.lanes} lane{'s' * (b.lanes != 1)}"
                       for b in BOARDS.values())
    b = subparsers.add_parser(  # its one-line help: csdformer/cli.py
        "build", description=f"Build the accelerator bitstream of an artifact for a board, and a report (report.md, "
                             f"report.json: resources, timing, speed, how to program the board). Boards: {boards}.")
    b.add_argument("artifact", help="artifact folder or shipped model name")
    b.add_argument("--board", required=True, choices=sorted(BOARDS), help="the board to build for")
    b.add_argument("-o", "--out", dest="out_dir", help="build folder (default: build/<board>-<artifact>); "
                   "refused if it exists and is not empty, unless --force")
    b.add_argument("--force", action="store_true", help="build into OUT_DIR even if it holds an earlier build "
                   "(its files are replaced)")
    b.add_argument("--json", action="store_true", help="print the report as one JSON object")
    b.add_argument("--lanes", type=int, help="parallel lanes (default: the board's)")
    b.add_argument("--freq", type=float, metavar="MHZ", help="sync clock (default: the board's)")
    b.add_argument("--baud", type=int, default=DEFAULT_BAUD, help=f"UART baud rate (default {DEFAULT_BAUD})")
    b.set_defaults(fn=build_command)
    return b


def build_command(args) -> int:
    board = get_board(args.board)
    lanes = board.lanes if args.lanes is None else check_int("lanes", args.lanes, lo=1)
    path = resolve_artifact(args.artifact)
    artifact = load(path)
    provider = core_provider()
    out = Path(args.out_dir) if args.out_dir else Path("build") / f"{board.name}-{Path(path).name}"
    if out.exists() and not out.is_dir():
        raise CsdformerError(f"-o: {out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not getattr(args, "force", False):
        raise CsdformerError(f"{out}: already exists (use --force to replace it, or -o another folder)")
    program, report = memory_check(artifact, lanes, board, out, args.freq)
    if report is None:
        top = BoardTop(lambda hz: provider(program, uart_divisor(hz, args.baud), board=board, clock_hz=hz),
                       board, freq_mhz=args.freq)
        report = build(top, board, out)
        (out / "model.bin").write_bytes(build_image(program))
        try:
            report.cycles_per_image, report.model_images = model_cycles(program, timing=getattr(top.core, "timing", None))
        except CsdformerError as e:
            report.notes.append(f"no speed estimate: {e}")
        report.write(out)
    print(json.dumps(report.to_dict()) if args.json else report.to_markdown(), end="\n" if args.json else "")
    return 0 if report.ok else 1
