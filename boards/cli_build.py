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

import dataclasses
import importlib
import json
import os
import shutil
from pathlib import Path

from .. import CsdformerError
from ..artifact import load, resolve_artifact
from ..hw.common import FitError, check_int
from ..hw.fabric import Fabric
from ..hw.flash_image import build_image, parse_header
from ..hw.program import compile_program
from .build import build, render
from .cache import BitstreamCache
from .report import SEED_MARGIN_PCT, BuildReport
from .sdram import report_note as sdram_note
from .soc import DEFAULT_BAUD, BoardTop, uart_divisor
from .targets import BOARDS, get_board
from .throughput import estimate

__all__ = ["add_build_parser", "build_command", "core_provider", "memory_check", "unfit_work", "CORE_PROVIDER",
           "CORE_PROVIDER_ENV"]

CORE_PROVIDER = "csdformer.boards.soc:accelerator_core"
CORE_PROVIDER_ENV = "CSDFORMER_CORE_PROVIDER"
DEFAULT_SEEDS = 3  # placements at most (--seeds): these designs sit within a few % of their clocks


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


def board_program(artifact, lanes: int, board):
    """The board's program of ``artifact``, compiled for its own needs (no fabric): weights resident
    when they fit the board's ``resident_kbit`` (and its memory), else streamed through the weight
    buffer's two slots, tiled to the board's ``weight_depth``. Raises :class:`FitError` as
    :func:`compile_program` does."""
    common = dict(keep_spikes=False, target=board.memory_target, single_port=board.single_port,
                  acc_depth=board.acc_depth)
    if board.resident_kbit:
        try:
            program = compile_program(artifact, lanes, resident=True, **common)
        except FitError:
            program = None
        if program is not None and program.memory_bits()["weight"] <= board.resident_kbit * 1024:
            return program
    return compile_program(artifact, lanes, weight_depth=board.weight_depth, **common)


def memory_check(artifact, lanes: int, board, out_dir, freq_mhz=None):
    """Compile the artifact's layer program for the board's memory budget (seconds, no synthesis).

    Returns ``(program, None)`` when its memories can fit (the board's program: spike tensors
    shared by liveness, the board's single-port memories, compiled into a fabric with a bit of
    headroom in every value-dependent width, so that retrained models of the same shape run on
    the same bitstream), else ``(None, report)``: a failed
    :class:`BuildReport` (written to ``out_dir``) whose error says how much memory each part
    needs against what the device has, with the throughput and energy figures of the program as
    if it fit (:func:`unfit_work`: the cycle model on test images, seconds more).
    """
    try:
        natural = board_program(artifact, lanes, board)
        fabric = Fabric.of(natural, headroom=True)
        return compile_program(artifact, lanes, keep_spikes=False, target=board.memory_target,
                               single_port=board.single_port, fabric=fabric), None
    except FitError as e:
        what = "on-chip " if str(e).startswith("memory:") else "weight buffer: "
        report = BuildReport(board=board.name, device=board.device, family=board.family,
                             target_mhz=freq_mhz or board.freq_mhz, goal_mhz=board.goal_mhz, fit=False,
                             errors=[f"the accelerator's {what}{e} (checked before synthesis; nothing built)"])
        unfit_work(report, artifact, lanes, board)
        report.write(out_dir)
        return None, report


def unfit_work(report: BuildReport, artifact, lanes: int, board) -> None:
    """The throughput and energy figures' work (``report.work``) of a design refused for memory:
    the cycle model of the board's program compiled without the memory limit, as if it fit (no
    memory backend in the model: every record in time); a note in the report where it cannot run."""
    try:
        try:
            program = compile_program(artifact, lanes, keep_spikes=False, single_port=board.single_port,
                                      weight_depth=board.weight_depth, acc_depth=board.acc_depth)
        except FitError:  # a block no tiling fits into the board's buffer: as if the buffer held it
            program = compile_program(artifact, lanes, keep_spikes=False, single_port=board.single_port)
        work = estimate(program, None, None)[3]
    except CsdformerError as e:
        report.notes.append(f"no throughput or energy figures: {e}")
        return
    report.work = {**work, "note": "as if it fit: the board's program compiled without its memory limit, "
                                   "no memory backend in the cycle model (every weight in time); no LUT count "
                                   "(nothing synthesized)"}


def add_build_parser(subparsers):
    """Add ``build`` to an ``argparse`` sub-parser set; the handler is ``fn=build_command``."""
    boards = "; ".join(f"{b.name}: {b.device}, {b.freq_mhz:g} MHz, {b.lanes} lane{'s' * (b.lanes != 1)}"
                       for b in BOARDS.values())
    b = subparsers.add_parser(  # its one-line help: csdformer/cli.py
        "build", description=f"Build the accelerator bitstream of an artifact for a board, and a report (report.md, "
                             f"report.json: resources, timing, speed, throughput and energy figures, how to program "
                             f"the board). Boards: {boards}.")
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
    b.add_argument("--seed", type=int, help="nextpnr's placement seed (default: its own); another seed places "
                   "the design differently, when routing does not converge or the clock is missed by a little")
    b.add_argument("--seeds", type=int, default=DEFAULT_SEEDS, metavar="N",
                   help=f"placements at most (default {DEFAULT_SEEDS}): while the clock is missed by less than "
                        f"{SEED_MARGIN_PCT:g} %%, nextpnr places again with the next seed; the best is kept")
    b.add_argument("--cache", metavar="DIR", help="bitstream cache (default $CSDFORMER_CACHE/bitstreams or "
                   "~/.cache/csdformer/bitstreams): an artifact that fits a cached design reuses its bitstream")
    b.add_argument("--no-cache", action="store_true", help="neither reuse nor store a bitstream")
    b.add_argument("--stream", action="store_true", help="stream the weights from memory for every image even "
                   "where they would fit on chip: the path of models larger than the chip (on the ULX3S through "
                   "its SDRAM), to bring it up on a board with a small model")
    b.set_defaults(fn=build_command)
    return b


def streamed(board):
    """``board`` with every model's weights streamed (``--stream``): no resident weights."""
    return dataclasses.replace(get_board(board), resident_kbit=0)


def build_command(args) -> int:
    board = get_board(args.board)
    if getattr(args, "stream", False):
        board = streamed(board)
    lanes = board.lanes if args.lanes is None else check_int("lanes", args.lanes, lo=1)
    seeds = check_int("seeds", getattr(args, "seeds", DEFAULT_SEEDS), lo=1)
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
        cache = None if getattr(args, "no_cache", False) else BitstreamCache(getattr(args, "cache", None))
        image = build_image(program)
        check_image(image, board)  # before anything is built or written
        top, plan, program, image, hit = _design(program, artifact, lanes, board, args, provider, cache)
        if hit is not None:
            report = _reused(hit, out)
        else:
            report = build(top, board, out, plan=plan, seeds=seeds)
            if cache is not None and report.ok:
                cache.store(board.name, plan.digest().hex(), Path(report.bitstream), report.to_dict(),
                            program.fabric)
        (out / "model.bin").write_bytes(image)
        header = parse_header(image)
        report.model = {"name": artifact.name, "image": str(out / "model.bin"), "bytes": len(image),
                        "offset": board.model_offset, "flash_bytes": board.flash_bytes,
                        "model_id": f"{header.model_id:08x}", "fabric_id": f"{header.fabric_id:08x}"}
        try:
            speed = estimate(program, top.core.timing if hasattr(top.core, "timing") else None,
                             (top.sync_hz if hasattr(top, "sync_hz") else None))
            report.cycles_per_image, report.model_images, report.memory, report.work = speed
        except CsdformerError as e:
            report.notes.append(f"no speed estimate: {e}")
        note = sdram_note(top.core, len(image), top.sync_hz) if hasattr(top, "sync_hz") else None
        if note is not None:
            report.notes.append(note)
        report.write(out)
    print(json.dumps(report.to_dict()) if args.json else report.to_markdown(), end="\n" if args.json else "")
    return 0 if report.ok else 1


def check_image(image: bytes, board) -> None:
    """Refuse a model image that does not fit the board's flash from its model offset."""
    end = board.model_offset + len(image)
    if end > board.flash_bytes:
        raise CsdformerError(f"model: its flash image is {len(image):,} bytes; the {board.name}'s flash holds "
                             f"{max(0, board.flash_bytes - board.model_offset):,} from the model's offset "
                             f"0x{board.model_offset:x}")


def _design(program, artifact, lanes, board, args, provider, cache):
    """The design to build or reuse: the first cached fabric of ``board`` that ``artifact`` fits and
    whose rendered design is in ``cache`` (a hit), else the program's own fabric (headroom).
    Returns ``(top, plan, program, image, hit)``."""
    def make(prog):
        top = BoardTop(lambda hz: provider(prog, uart_divisor(hz, args.baud), board=board, clock_hz=hz),
                       board, freq_mhz=args.freq)
        return top, render(top, board, seed=getattr(args, "seed", None))

    if cache is not None:
        for fabric in cache.fabrics(board.name):
            if fabric.lanes != lanes or fabric.problems(program):
                continue
            prog = compile_program(artifact, lanes, keep_spikes=False, target=board.memory_target,
                                   single_port=board.single_port, fabric=fabric)
            top, plan = make(prog)
            hit = cache.find(board.name, plan.digest().hex())
            if hit is not None:
                return top, plan, prog, build_image(prog), hit
    top, plan = make(program)
    return top, plan, program, build_image(program), None


def _reused(entry, out: Path) -> BuildReport:
    """The report of a cached build, its bitstream copied into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    bit = out / entry.bitstream.name
    shutil.copy2(entry.bitstream, bit)
    report = BuildReport.from_dict(entry.report)
    report.bitstream, report.reused, report.stages, report.seconds = str(bit), str(entry.path), {}, 0.0
    return report
