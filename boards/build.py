"""Run the Amaranth platform build for a board with the YoWASP tools, stage by stage.

Amaranth renders the build (RTLIL, constraints, and the tool command lines in
``build_<name>.json``); this module runs those commands itself rather than the generated shell
script, so that it can show each stage (yosys / nextpnr / pack) on stderr with its elapsed
time, keep going far enough to report a design that does not fit, and resolve each tool to its
``yowasp-`` build. Options added to Amaranth's templates:

- ``nextpnr_opts``: ``--threads N --report <name>.pnr.json --timing-allow-fail`` (timing is
  judged from the report, so a slow design still gets a report, and a bitstream marked failed)
  and the board's ``place_opts`` (:data:`~csdformer.boards.targets.ECP5_PLACE`);
- ``synth_opts``: the board's (``-dsp`` on iCE40 so multipliers go to SB_MAC16);
- ``script_after_read``: :data:`HIDE_BRACKETED` (yosys' ABC9 names a mapped bit ``wire[i]``, which
  collides with Amaranth's alias wires of array views, also named ``wire[i]``) and
  :data:`~csdformer.hw.memory.COLLISION_ANY` (a block RAM read that meets a write of its word
  is undefined: no collision logic);
- ``script_after_synth`` (a board with :attr:`~csdformer.boards.targets.Board.outreg`): a comment
  naming the pass that then runs on the netlist between yosys and nextpnr,
  :mod:`csdformer.boards.outreg` (each bank register moved into its block RAM as the RAM's output
  register), so that a change to it names a new design in the bitstream cache.

A tool is taken from its Amaranth variable (``YOSYS``, ``NEXTPNR_ICE40``, ``ICEPACK``,
``NEXTPNR_ECP5``, ``ECPPACK``) if set, else ``yowasp-<tool>``, else ``<tool>`` on PATH. The
OrangeCrab's ``dfu-suffix`` step is skipped, with a note, when it is not installed (the ``.bit``
then lacks the DFU suffix; ``dfu-util`` only warns). Never programs a board.

The YoWASP tools run sandboxed (WASI), where ``/tmp`` is their own temporary folder: an absolute
path under ``/tmp`` given to them names a file they cannot reach. This flow runs each tool in
``out_dir`` with the file names relative to it, so builds under ``/tmp`` work; a missing netlist
after yosys is still reported as an error that says so. Builds default to ``build/``.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from contextlib import nullcontext
from pathlib import Path

from ..hw.common import HwParamError
from ..hw.memory import COLLISION_ANY
from ..progress import heartbeat
from .critical_path import critical_paths
from .outreg import absorb_file
from .programming import APT_DFU_UTIL, DFU_SUFFIX_SKIPPED
from .report import (MULTIPLIER_CELLS, SEED_MARGIN_PCT, BuildReport, clock_rows, netlist_cells,
                     parse_log_utilization, parse_utilization, resource_rows)
from .soc import BoardTop
from .targets import get_board

__all__ = ["build", "render", "find_tool", "BITSTREAM_SUFFIX"]

BITSTREAM_SUFFIX = {"ice40": ".bin", "ecp5": ".bit"}
_OPTIONAL_TOOLS = {"dfu-suffix"}
_PRODUCTS = (".json", ".pnr.json", ".tim", ".rpt", ".asc", ".bin", ".config", ".bit", ".svf")


def find_tool(name: str) -> str | None:
    """The executable for Amaranth tool ``name``: its env variable, ``yowasp-<name>``, or ``name``."""
    var = name.upper().replace("-", "_").replace("+", "X")
    if os.environ.get(var):
        return os.environ[var]
    for cand in (f"yowasp-{name}", name):
        if shutil.which(cand):
            return cand
    return None


def _stage_name(tool: str) -> str:
    if tool == "yosys":
        return "yosys"
    if tool.startswith("nextpnr"):
        return "nextpnr"
    if tool.endswith("pack"):
        return "pack"
    return tool


def _tool_log(argv: list[str], default: str) -> str:
    """The log file a tool's command line names (``-l F`` / ``--log F``), else ``default``."""
    for flag, value in zip(argv, argv[1:]):
        if flag in ("-l", "--log"):
            return value
    return default


def _say(progress: bool, msg: str) -> None:
    if progress:
        print(msg, file=sys.stderr, flush=True)


def _run_stages(out: Path, name: str, tag: str, report: BuildReport, progress: bool, seeds: int = 1,
                outreg: bool = False) -> None:
    """Run the rendered command lines in ``out``; record stage times and failures in ``report``.
    nextpnr runs up to ``seeds`` times (:func:`_place`); ``outreg``: the netlist pass
    :mod:`csdformer.boards.outreg` runs after yosys."""
    commands = json.loads((out / f"build_{name}.json").read_text())["commands"]
    for cmd in commands:
        argv = shlex.split(cmd) if isinstance(cmd, str) else list(cmd)
        tool, stage = argv[0], _stage_name(argv[0])
        if stage == "nextpnr":
            if not _place(out, name, tag, report, progress, argv, seeds):
                return
            continue
        if tool in _OPTIONAL_TOOLS and find_tool(tool) is None:
            report.notes.append(DFU_SUFFIX_SKIPPED + f" (install it: {APT_DFU_UTIL}; or run that step "
                                "under 'Programming the board' below)" if tool == "dfu-suffix" else
                                f"{tool} not installed: step skipped")
            continue
        rc = _run_tool(out, name, tag, report, progress, argv)
        if rc is None:
            return
        if stage == "yosys" and rc == 0 and not (out / f"{name}.json").exists():
            report.errors.append(f"yosys wrote no netlist; see {out / f'{name}.rpt'} (a YoWASP tool cannot reach "
                                 "absolute paths under /tmp, its own temporary folder)")
            return
        if stage == "yosys" and rc == 0 and outreg:
            report.notes.append(absorb_file(out / f"{name}.json").line())
        if rc != 0:
            report.errors.append(f"{stage} failed (exit {rc}); see {out / f'{name}.{stage}.out'}")
            return


def _run_tool(out: Path, name: str, tag: str, report: BuildReport, progress: bool, argv: list[str],
              label: str | None = None) -> int | None:
    """Run one tool command line in ``out`` (its output in ``<name>.<stage>.out``, a heartbeat while
    its log grows); the exit code, or ``None`` (and an error in ``report``) when it is not installed."""
    tool, stage = argv[0], _stage_name(argv[0])
    exe = find_tool(tool)
    if exe is None:
        report.errors.append(f"{tool} not found (pip install yowasp-{tool}, or set {tool.upper()})")
        return None
    label = label or stage
    _say(progress, f"[{tag}] {label} ...")
    t0 = time.monotonic()
    # A line every 30 s while the tool's log grows (quoting its newest line), none while it is
    # silent: a line is a sign of progress (csdformer flow stops a build only after none for long).
    # yosys -q and nextpnr --quiet write their progress only to their own log (-l / --log).
    logf = out / f"{name}.{stage}.out"
    beat = heartbeat(f"[{tag}] {label}", announce=False, watch=out / _tool_log(argv, logf.name)) \
        if progress else nullcontext()
    with open(logf, "w") as log, beat:
        rc = subprocess.run([exe, *argv[1:]], cwd=out, stdout=log, stderr=subprocess.STDOUT).returncode
    report.stages[stage] = report.stages.get(stage, 0.0) + time.monotonic() - t0
    _say(progress, f"[{tag}] {label} {'done' if rc == 0 else 'FAILED'} in {time.monotonic() - t0:.1f} s")
    return rc


def with_seed(argv: list[str], seed: int | None) -> list[str]:
    """nextpnr's command line with ``--seed seed`` in place of any it has (none: nextpnr's own)."""
    kept, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a == "--seed":
            skip = True
        else:
            kept.append(a)
    return kept + ([] if seed is None else ["--seed", str(int(seed))])


def _seed_text(seed: int | None) -> str:
    return "(its own)" if seed is None else str(seed)


def _given_seed(argv: list[str]) -> int | None:
    return next((int(v) for a, v in zip(argv, argv[1:]) if a == "--seed"), None)


def _placement_files(argv: list[str], name: str) -> list[str]:
    """What one nextpnr run writes: the files its command line names, and the stage's output."""
    named = [v for a, v in zip(argv, argv[1:]) if a in ("--asc", "--textcfg", "--report", "--log", "--write")]
    return named + [f"{name}.nextpnr.out"]


def _placement(out: Path, name: str, seed: int | None) -> dict:
    """One nextpnr run's clocks from its ``--report``: ``{"seed", "clocks": {clock: [target, achieved]},
    "met", "worst"}`` (``worst``: the lowest achieved / target, 0 without a timing result)."""
    pnr = out / f"{name}.pnr.json"
    clocks = clock_rows(json.loads(pnr.read_text())) if pnr.exists() else []
    worst = min((c.achieved_mhz / c.target_mhz for c in clocks), default=0.0)
    return {"seed": seed, "clocks": {c.name: [c.target_mhz, c.achieved_mhz] for c in clocks},
            "met": bool(clocks) and all(c.met for c in clocks), "worst": worst}


def _place(out: Path, name: str, tag: str, report: BuildReport, progress: bool, argv: list[str],
           seeds: int) -> bool:
    """Place and route with nextpnr, up to ``seeds`` times: while the clock is missed by less than
    :data:`SEED_MARGIN_PCT` (placement alone moves Fmax by about that much on these designs; a
    larger miss needs a design change, not another seed), again with the next seed. The best
    placement's files are kept (also when a later run fails: a note says so). Each run is in
    ``report.placements``. False when nextpnr failed and there is no placement."""
    first = _given_seed(argv)
    best_dir = out / f"{name}.best-placement"
    shutil.rmtree(best_dir, ignore_errors=True)
    files, best, placed = _placement_files(argv, name), None, None
    for k in range(max(1, int(seeds))):
        seed = first if k == 0 else (1 if first is None else first) + k
        run = with_seed(argv, seed)
        label = "nextpnr" if k == 0 else f"nextpnr (seed {seed}, placement {k + 1} of at most {seeds})"
        rc = _run_tool(out, name, tag, report, progress, run, label)
        if rc is None:
            return False
        if rc != 0 and best is None:
            report.errors.append(f"nextpnr failed (exit {rc}): {_log_errors(out / f'{name}.tim')}")
            return False
        if rc != 0:
            report.notes.append(f"nextpnr with seed {seed} failed (exit {rc}: {_log_errors(out / f'{name}.tim')}); "
                                f"the placement of seed {_seed_text(best['seed'])} "
                                "is kept")
            placed = None
            break
        placed = _placement(out, name, seed)
        report.placements.append({key: v for key, v in placed.items() if key != "worst"})
        if best is None or placed["worst"] > best["worst"]:
            best = placed
            if seeds > 1:
                shutil.rmtree(best_dir, ignore_errors=True)
                best_dir.mkdir()
                for f in files:
                    if (out / f).exists():
                        shutil.copy2(out / f, best_dir / f)
        if placed["met"] or placed["worst"] < 1 - SEED_MARGIN_PCT / 100:
            break
    if best is not placed:  # an earlier placement was better: its files back
        for f in files:
            if (best_dir / f).exists():
                shutil.copy2(best_dir / f, out / f)
        _say(progress, f"[{tag}] nextpnr: kept the placement of seed {_seed_text(best['seed'])}")
    shutil.rmtree(best_dir, ignore_errors=True)
    return True


def _log_errors(log: Path) -> str:
    """The ``ERROR:`` lines of a nextpnr log, joined (the first usually says why)."""
    text = log.read_text(errors="replace") if log.exists() else ""
    errs = [ln.strip() for ln in text.splitlines() if ln.startswith("ERROR")]
    return " / ".join(errs) if errs else f"see {log}"


def _collect(out: Path, name: str, family: str, report: BuildReport) -> None:
    """Fill resources, multipliers, clocks and fit from the products in ``out``."""
    cells = {}
    netlist = out / f"{name}.json"
    if netlist.exists():
        cells = netlist_cells(json.loads(netlist.read_text()), name)
    pnr = out / f"{name}.pnr.json"
    pnr_data = json.loads(pnr.read_text()) if pnr.exists() else {}
    util = parse_utilization(pnr_data)
    if not util and (out / f"{name}.tim").exists():
        util = parse_log_utilization((out / f"{name}.tim").read_text(errors="replace"))
    report.resources = resource_rows(family, util, cells)
    report.multipliers = {c: cells.get(c, 0) for c in MULTIPLIER_CELLS[family]}
    report.clocks = clock_rows(pnr_data)
    report.critical_paths = critical_paths(pnr_data)
    over = any(not r.fits for r in report.resources)
    if over or any("Unable to place" in e or "route" in e.lower() for e in report.errors):
        report.fit = False
    elif pnr_data:
        report.fit = True  # placed and routed within the device
    bit = out / f"{name}{BITSTREAM_SUFFIX[family]}"
    report.bitstream = str(bit) if bit.exists() and not report.errors else None


# Amaranth names each element of an array-shaped signal (``last_sums[0]`` beside ``last_sums``). When
# ABC9 (synth_ecp5's LUT mapping) reads its netlist back it names bit i of wire ``w`` ``w[i]`` and then
# merges the bits into wide wires by those names, so such an alias can be glued onto the wrong bits:
# yosys 0.65-0.69 then stops on ``Assert GetSize(conn.first) == GetSize(conn.second)`` or leaves a net
# with two flip-flop drivers (seen on the 16-lane Fashion-MNIST ULX3S design). The aliases carry no
# logic, so their names are made private before synthesis; every bit keeps its main wire's name.
HIDE_BRACKETED = "rename -hide w:*[[]*"

# The yosys script's last line on a board with ``outreg``: the netlist pass that follows yosys
# (:func:`_run_stages`), named in the rendered design so that the bitstream cache tells builds with
# and without it apart.
OUTREG_NOTE = "# then csdformer.boards.outreg on the netlist: bank registers into their block RAMs (OUTREG, v1)"


def render(top, board, *, name: str = "top", threads: int = 1, seed: int | None = None):
    """Amaranth's build plan of ``top`` for ``board`` (elaborated; RTLIL, constraints, tool
    scripts): what :func:`build` runs, and whose ``digest()`` names the design in the bitstream
    cache (:mod:`csdformer.boards.cache`)."""
    board = get_board(board)
    opts = [f"--threads {int(threads)}", f"--report {name}.pnr.json", "--timing-allow-fail"]
    if board.place_opts:
        opts.append(board.place_opts)
    if seed is not None:
        opts.append(f"--seed {int(seed)}")
    overrides = {"nextpnr_opts": " ".join(opts), "script_after_read": f"{HIDE_BRACKETED}\n{COLLISION_ANY}"}
    if board.outreg:
        overrides["script_after_synth"] = OUTREG_NOTE
    if board.synth_opts:
        overrides["synth_opts"] = board.synth_opts
    return board.platform().build(top, name=name, do_build=False, **overrides)


def build(top, board, out_dir, *, freq_mhz=None, name: str = "top", threads: int = 1, seed: int | None = None,
          seeds: int = 1, progress: bool = True, plan=None) -> BuildReport:
    """Build ``top`` for ``board`` in ``out_dir`` and return (and write) its :class:`BuildReport`.

    Parameters
    ----------
    top : BoardTop or Elaboratable
        The design. A :class:`BoardTop` carries its clock; another elaboratable needs ``freq_mhz``
        only for the report (its own clock constraints are what nextpnr checks).
    board : str or Board
    out_dir : path
        Build folder (created); the report files are written here too.
    freq_mhz : float, optional
        Requested ``sync`` frequency, for the report; must match a :class:`BoardTop`'s.
    threads, seed : int
        nextpnr ``--threads`` / ``--seed``.
    seeds : int
        Placements at most: while the clock is missed by less than :data:`SEED_MARGIN_PCT`,
        nextpnr places again with the next seed (``seed`` + 1, ...; after its own default, 2, ...)
        and the best placement is kept (``report.placements``: each one's seed and clocks).
    progress : bool
        Print each stage and its time on stderr.
    plan : BuildPlan, optional
        ``top`` already rendered by :func:`render` (with the same ``name``, ``threads``, ``seed``).

    A design that does not fit, misses timing or fails a tool gives a report with ``ok=False``
    (no exception); bad parameters raise :class:`HwParamError` before anything runs.
    """
    board = get_board(board)
    if isinstance(top, BoardTop):
        if top.board.name != board.name:
            raise HwParamError(f"board: top was made for {top.board.name}, not {board.name}")
        if freq_mhz is not None and abs(float(freq_mhz) - top.target_mhz) > 1e-9:
            raise HwParamError(f"freq_mhz: top was made for {top.target_mhz:g} MHz, not {freq_mhz:g} MHz")
        freq_mhz = top.target_mhz
    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    for suffix in _PRODUCTS:  # stale products must not pass for this build's
        (out / f"{name}{suffix}").unlink(missing_ok=True)
    report = BuildReport(board=board.name, device=board.device, family=board.family, target_mhz=freq_mhz,
                         goal_mhz=board.goal_mhz)
    if isinstance(top, BoardTop):
        report.sync_mhz, report.pll = top.pll.f_out_mhz, top.pll.describe()
    tag = f"build {board.name}"
    t0 = time.monotonic()
    _say(progress, f"[{tag}] elaborate ...")
    if plan is None:
        plan = render(top, board, name=name, threads=threads, seed=seed)
    plan.extract(out)
    report.stages["elaborate"] = time.monotonic() - t0
    _run_stages(out, name, tag, report, progress, seeds, outreg=board.outreg)
    _collect(out, name, board.family, report)
    report.seconds = time.monotonic() - t0
    report.write(out)
    _say(progress, f"[{tag}] {report.verdict()} ({report.seconds:.1f} s); report in {out / 'report.md'}")
    return report
