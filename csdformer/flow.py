"""``csdformer flow [CONFIG]``: the one-command path, config to verified RTL and a board build.

Stages, each timed and shown on stderr (``[flow i/N stage] ...`` with the elapsed time):

1. ``train``: train the QANN of the config (``--no-train``: take the shipped model of the same
   name instead, ``csdformer/models/<name>``);
2. ``convert``: convert it to a spiking model artifact, written to ``DIR/artifact``;
3. ``evaluate``: QANN, integer-QANN and SNN accuracy for every delay D = 0..T-1 on the test
   split (golden model), and the spikes of one test image for the raster plot;
4. ``rtl``: compile the accelerator program (8 lanes) and write its Verilog to ``DIR/rtl``;
5. ``verify``: run ``--images N`` test images through that RTL in cocotb, judged image by image
   against the golden model and the cycle model;
6. ``board``: build the bitstream for ``--board`` (default iCEBreaker) with ``csdformer build``
   in a child process, stopped only when it stops making progress: no output line (stage lines,
   and the build's heartbeat, printed only while yosys / nextpnr write to their logs) for
   ``--board-timeout`` seconds (default 600); there is no cap on its total time, so a slow or
   loaded machine is no failure; ``--board none`` skips it;
7. ``report``: ``DIR/report.md``, ``DIR/report.json`` and PNG plots
   (:mod:`csdformer.flow_report`).

A stage that fails is recorded as FAILED with its reason, the stages that need its output are
skipped, and the report is still written; the command then exits 1. A board build that does not
fit or misses timing is such a failure. Bad arguments exit 2 before anything runs.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from . import CsdformerError
from .artifact import load, resolve_artifact, save, shipped_models
from .boards.report import BuildReport
from .datasets import load as load_dataset
from .flow_report import Stage, write_report
from .quantize import config as cfgmod
from .sim import runner
from .sim.verify import select_images, verify

__all__ = ["add_flow_parser", "flow_command", "run_idle_limited", "STAGES", "DEFAULT_BOARD_TIMEOUT"]

STAGES = ("train", "convert", "evaluate", "rtl", "verify", "board", "report")
DEFAULT_BOARD_TIMEOUT = 600.0  # seconds without a line from the board build before it is stopped
RTL_LANES = 8
RASTER_NEURONS = 64


def add_flow_parser(subparsers):
    """Add ``flow`` to the ``csdformer`` sub-commands; the handler is ``fn=flow_command``."""
    from .boards.targets import BOARDS  # amaranth_boards: the hw extra

    f = subparsers.add_parser(  # its one-line help: csdformer/cli.py
        "flow", description="Train (or reuse), convert, evaluate, generate and verify the RTL, build the board "
                    "bitstream, and write a report folder (report.md, report.json, plots).")
    f.add_argument("config", nargs="?", default="digits",
                   help="YAML config or built-in name (default: digits)")
    f.add_argument("--no-train", action="store_true",
                   help="reuse the shipped model of the config's name instead of training")
    f.add_argument("-o", "--out", dest="out_dir", help="report folder (default: runs/flow-<name>); "
                   "refused if it exists and is not empty, unless --force")
    f.add_argument("--force", action="store_true", help="write into OUT_DIR even if it holds an earlier run "
                   "(its files are replaced)")
    f.add_argument("--images", type=int, default=5, help="test images verified in cocotb (default 5)")
    f.add_argument("--seed", type=int, default=0, help="seed that picks the verified images (default 0)")
    f.add_argument("--board", default="icebreaker", choices=sorted(BOARDS) + ["none"],
                   help="board to build the bitstream for (default icebreaker; none skips the stage)")
    f.add_argument("--board-timeout", type=float, default=DEFAULT_BOARD_TIMEOUT, metavar="S",
                   help="idle limit of the board build: it is stopped after this many seconds without a "
                   f"progress line from yosys/nextpnr (default {DEFAULT_BOARD_TIMEOUT:g}); its total time is "
                   "not capped")
    f.add_argument("--device", help="torch device for training (default: cuda if present, else cpu)")
    f.set_defaults(fn=flow_command)
    return f


class _Progress:
    """Plain stderr lines: ``[flow i/N stage] ...`` and the elapsed time of the stage and the run."""

    def __init__(self, n: int):
        self.n, self.t0 = n, time.monotonic()

    def say(self, i: int, name: str, msg: str) -> None:
        print(f"[flow {i}/{self.n} {name}] {msg} (elapsed {time.monotonic() - self.t0:.0f} s)",
              file=sys.stderr, flush=True)


def _check_args(args) -> tuple[object, str]:
    """Validate the arguments before any stage runs: (config, name)."""
    spec = args.config
    if not Path(spec).exists() and spec not in cfgmod.builtin_names():
        raise CsdformerError(f"config {spec!r}: no such file and not a built-in config "
                             f"({', '.join(cfgmod.builtin_names())})")
    cfg = cfgmod.load(spec)
    if args.images < 1:
        raise CsdformerError(f"--images: must be at least 1, got {args.images}")
    if args.board_timeout <= 0:
        raise CsdformerError(f"--board-timeout: must be positive, got {args.board_timeout:g}")
    if args.no_train and cfg.name not in shipped_models():
        raise CsdformerError(f"--no-train: there is no shipped model named {cfg.name!r} "
                             f"(shipped: {', '.join(shipped_models())}); train it (drop --no-train)")
    return cfg, cfg.name


def _reason(e: BaseException) -> str:
    msg = str(e).strip().splitlines()
    return f"{type(e).__name__}: {msg[0] if msg else ''}"[:500]


class _Ctx:
    """What the stages hand each other."""

    def __init__(self, args, cfg, out: Path):
        self.args, self.cfg, self.out = args, cfg, out
        self.model = None  # the trained torch model (train path)
        self.train_result = None
        self.art = None
        self.art_dir = out / "artifact"
        self.prog = None
        self.indices = self.images = None
        self.verify_report = None


# ----------------------------------------------------------------------------------------- stages

def _stage_train(ctx: _Ctx, st: Stage) -> None:
    args, cfg = ctx.args, ctx.cfg
    if args.no_train:
        path = resolve_artifact(cfg.name)
        ctx.art = load(path)
        st.status = "skipped"
        st.reason = f"--no-train: reusing the shipped model {cfg.name!r}"
        st.figures = {"shipped_model": str(path), "recorded_metrics": dict(ctx.art.metrics)}
        return
    from .quantize.train import train

    res = train(cfg, out=ctx.out / "train", progress=True, device=args.device)
    ctx.train_result = res
    hist = res.get("history") or []
    st.figures = {"checkpoint": res["checkpoint"], "epochs": len(hist), "test_acc": res["test_acc"],
                  "train_seconds": res["train_seconds"], "final_loss": hist[-1]["loss"] if hist else None}
    st.summary = f"{len(hist)} epochs, QANN test accuracy {100 * res['test_acc']:.2f} %"


def _stage_convert(ctx: _Ctx, st: Stage) -> None:
    if ctx.args.no_train:
        save(ctx.art, ctx.art_dir, overwrite=True)
        st.summary = f"copied the shipped artifact ({len(ctx.art.layers)} layers, T={ctx.art.T}, D={ctx.art.delay})"
    else:
        from .quantize.convert import convert
        from .quantize.train import load_checkpoint

        cfg, model, _ = load_checkpoint(ctx.train_result["checkpoint"])
        ctx.model = model
        ctx.art = convert(model, ctx.cfg)
        save(ctx.art, ctx.art_dir, overwrite=True)
        st.summary = f"{len(ctx.art.layers)} layers, T={ctx.art.T}, D={ctx.art.delay}"
    st.figures = {"artifact": str(ctx.art_dir), "layers": len(ctx.art.layers), "T": ctx.art.T,
                  "delay": ctx.art.delay, "name": ctx.art.name}


def _spike_raster(art, image: np.ndarray, delay: int, max_neurons: int = RASTER_NEURONS) -> dict:
    """Frames of every spike layer for one image, for ``max_neurons`` (at most) evenly spaced neurons."""
    names = tuple(ly.name for ly in art.layers if ly.kind in ("dif", "maxpool"))
    res = runner.run(art, image[None], mode="snn", delay=delay, trace=names)
    layers = []
    for name in names:
        fr = res.frames[name][:, 0].reshape(art.T, -1).astype(np.int64)  # (T, neurons)
        counts = fr.sum(axis=0)
        pick = np.unique(np.linspace(0, fr.shape[1] - 1, min(max_neurons, fr.shape[1])).round().astype(np.int64))
        layers.append({"name": name, "neurons_total": int(fr.shape[1]), "spikes": int(fr.sum()),
                       "active_neurons": int(np.count_nonzero(counts)), "neurons": pick.tolist(),
                       "frames": fr[:, pick].T.tolist()})
    return {"T": art.T, "delay": delay, "max_neurons": max_neurons, "layers": layers,
            "prediction": int(res.predictions[0]), "logits": res.logits[0].tolist()}


def _stage_evaluate(ctx: _Ctx, st: Stage) -> None:
    from .quantize.evaluate import golden_accuracies, torch_accuracies

    art, cfg = ctx.art, ctx.cfg
    acc: dict = {"split": "test"}
    if ctx.model is not None:
        acc.update(torch_accuracies(ctx.model, cfg))
        acc["qann_source"] = "measured in this run (PyTorch, LSQ activations)"
    else:
        rec = art.metrics or {}
        for k in ("float", "qann"):
            if rec.get(k) is not None:
                acc[k] = rec[k]
        acc["qann_source"] = ("recorded in the shipped artifact at its conversion (--no-train: no checkpoint "
                              "to re-measure the PyTorch QANN)")
    x, y = load_dataset(art.input.dataset or cfg.data.name, "test", cfg.data.root)
    acc.update(golden_accuracies(art, x, y, progress=True))  # a bar on a terminal, else plain lines
    acc["n"] = int(len(y))
    art.metrics = {k: v for k, v in acc.items() if k != "qann_source"}
    if ctx.train_result is not None:
        art.metrics["train_seconds"] = round(ctx.train_result["train_seconds"], 1)
    save(art, ctx.art_dir, overwrite=True)  # the artifact carries this run's metrics
    ctx.indices, ctx.images = select_images(art, ctx.args.images, ctx.args.seed, root=cfg.data.root)
    raster = _spike_raster(art, ctx.images[0], art.delay)
    raster["image_index"] = int(ctx.indices[0])
    st.figures = {"accuracy": acc, "raster": raster}
    d = str(art.delay)
    st.summary = (f"n={acc['n']}: QANN {100 * acc['qann']:.2f} %, " if acc.get("qann") is not None else
                  f"n={acc['n']}: ") + (f"int-QANN {100 * acc['int_qann']:.2f} %, SNN(D={d}) "
                                        f"{100 * acc['snn'][d]:.2f} %, SNN(D=0) {100 * acc['snn']['0']:.2f} %")


def _stage_rtl(ctx: _Ctx, st: Stage) -> None:
    from .hw.program import compile_program
    from .hw.rtl import write_rtl

    ctx.prog = compile_program(ctx.art, lanes=RTL_LANES)
    path = write_rtl(ctx.prog, ctx.out / "rtl", force=True)
    mem = ctx.prog.memory_bits()
    files = sorted(str(p.relative_to(path)) for p in path.rglob("*") if p.is_file())
    vbytes = (path / "csdformer_accel.v").stat().st_size if (path / "csdformer_accel.v").exists() else None
    st.figures = {"dir": str(path), "lanes": ctx.prog.lanes, "ops": len(ctx.prog.ops),
                  "spike_layers": len(ctx.prog.spike_layers), "memory_bits": mem,
                  "memory_kbit_total": sum(mem.values()) / 1024, "files": files, "verilog_bytes": vbytes}
    st.summary = (f"{len(ctx.prog.ops)} ops, {ctx.prog.lanes} lanes, on-chip memory "
                  f"{sum(mem.values()) / 1024:.0f} kbit, {len(files)} files")


def _stage_verify(ctx: _Ctx, st: Stage) -> None:
    rep = verify(ctx.prog, ctx.indices, ctx.images, delay=ctx.art.delay, progress=True)
    ctx.verify_report = rep
    models = rep.golden["models"]
    ops = list(models[0].per_op)
    per_op = {op: float(np.mean([m.per_op.get(op, 0) for m in models])) for op in ops}
    imgs = [{"index": c.index, "ok": bool(c.ok), "cycles": int(c.cycles), "model_cycles": int(c.model_cycles),
             "sops": int(c.sops), "spikes": int(c.spikes), "first_layer": c.first_layer, "details": list(c.details)}
            for c in rep.checks]
    st.figures = {"summary": rep.summary(), "passed": rep.passed, "failed": rep.failed, "delay": rep.delay,
                  "lanes": rep.lanes, "utilization": rep.utilization(), "build_s": rep.build_s, "sim_s": rep.sim_s,
                  "images": imgs, "mean_cycles": float(np.mean([c.cycles for c in rep.checks])),
                  "per_op_cycles_mean": per_op,
                  "cycles_title": f"Cycles per op (cycle model, mean over {len(models)} verified images, "
                                  f"{rep.lanes} lanes, D={rep.delay})"}
    st.summary = (f"{rep.summary()} of {len(rep.checks)} images; mean {st.figures['mean_cycles']:.0f} cycles/image; "
                  f"lane utilization {100 * rep.utilization():.1f} %")
    if rep.failed:
        bad = [c for c in rep.checks if not c.ok]
        st.status = "FAILED"
        st.reason = f"{rep.failed} image(s) differ from the golden model: " + "; ".join(c.line() for c in bad[:3])


def _board_command(ctx: _Ctx, bdir: Path) -> list[str]:
    return [sys.executable, "-m", "csdformer", "build", str(ctx.art_dir), "--board", ctx.args.board, "-o", str(bdir),
            "--json", "--force"]  # bdir holds this stage's build.stdout


def run_idle_limited(cmd: list[str], stdout, idle_s: float, lines: list[str], *, echo: bool = True,
                     poll_s: float = 1.0) -> tuple[int | None, bool]:
    """Run ``cmd`` (stdout to the file ``stdout``; its own session) and relay its stderr lines into
    ``lines`` (and, with ``echo``, onto our stderr, indented). It is stopped, with everything it
    started, only when it makes no progress: no stderr line for ``idle_s`` seconds; its total time
    is not limited. Returns (exit status, whether it was stopped for silence)."""
    poll_s = min(poll_s, idle_s / 4)
    proc = subprocess.Popen(cmd, stdout=stdout, stderr=subprocess.PIPE, text=True, start_new_session=True)
    last = [time.monotonic()]

    def pump():
        for ln in proc.stderr:
            last[0] = time.monotonic()
            lines.append(ln.rstrip("\n"))
            if echo:
                print(f"    {ln}", end="", file=sys.stderr, flush=True)

    th = threading.Thread(target=pump, daemon=True)
    th.start()
    stalled = False
    try:
        while True:
            try:
                rc = proc.wait(timeout=poll_s)
                break
            except subprocess.TimeoutExpired:
                if time.monotonic() - last[0] > idle_s:
                    stalled = True
                    _stop(proc)
                    rc = proc.returncode
                    break
    except BaseException:
        _stop(proc)
        raise
    th.join(timeout=5)
    if not th.is_alive():
        proc.stderr.close()
    return rc, stalled


def _stage_board(ctx: _Ctx, st: Stage) -> None:
    """``csdformer build`` in a child process (its own session, so that a build that stops making
    progress is stopped with everything it started); the build report it writes is read back."""
    board = ctx.args.board
    idle = float(ctx.args.board_timeout)
    bdir = ctx.out / f"board-{board}"
    (bdir / "report.json").unlink(missing_ok=True)
    cmd = _board_command(ctx, bdir)
    st.figures = {"command": shlex.join(cmd), "idle_limit_s": idle, "builds": []}
    lines: list[str] = []
    bdir.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    with open(bdir / "build.stdout", "w") as so:
        rc, timed_out = run_idle_limited(cmd, so, idle, lines)
    st.figures["exit_status"] = rc
    st.figures["log_tail"] = lines[-20:]
    rj = bdir / "report.json"
    if timed_out:
        last = next((ln for ln in reversed(lines) if ln.startswith("[build")), "no stage reached")
        st.status = "FAILED"
        st.reason = (f"{board} build made no progress (no output line) for {idle:g} s (--board-timeout) and was "
                     f"stopped after {time.monotonic() - t0:.0f} s (last stage line: {last.strip()}); "
                     "fit and timing unknown")
        st.summary = f"{board}: stopped, no progress for {idle:g} s"
        return
    if not rj.exists():
        st.status = "FAILED"
        tail = next((ln for ln in reversed(lines) if ln.strip()), "")
        st.reason = f"{board} build wrote no report (exit {rc}): {tail.strip()[:300]}"
        return
    rep = BuildReport.from_dict(json.loads(rj.read_text()))
    d = rep.to_dict()
    d["report_dir"] = str(bdir)
    st.figures["builds"] = [d]
    used = ", ".join(f"{r.name} {r.used if r.used is not None else '?'}/{r.available if r.available is not None else '?'}"
                     for r in rep.resources if r.name in ("LUT", "BRAM", "SPRAM", "DSP", "LC"))
    fmax = f", Fmax {rep.fmax_mhz:.1f} MHz" if rep.fmax_mhz is not None else ""
    ips = rep.images_per_s(rep.sync_mhz)
    rate = f", {ips:.1f} images/s at {rep.sync_mhz:.0f} MHz (cycle model)" if ips else ""
    st.summary = f"{board} ({rep.device}): {used}{fmax}{rate}"
    if not rep.ok:
        st.status = "FAILED"
        st.reason = f"{board}: {rep.verdict()}"


def _stop(proc: subprocess.Popen) -> None:
    """End the build child and what it started (its own process group), TERM then KILL."""
    for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 10)):
        if proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


_NEEDS = {"train": (), "convert": ("train",), "evaluate": ("convert",), "rtl": ("convert",),
          "verify": ("rtl", "evaluate"), "board": ("convert",)}
_RUN = {"train": _stage_train, "convert": _stage_convert, "evaluate": _stage_evaluate, "rtl": _stage_rtl,
        "verify": _stage_verify, "board": _stage_board}


def run_flow(args, cfg, out: Path) -> tuple[list[Stage], dict]:
    """Run every stage; return the stages and the report's meta data (the report is not written)."""
    ctx = _Ctx(args, cfg, out)
    stages = [Stage(name) for name in STAGES]
    by = {s.name: s for s in stages}
    prog = _Progress(len(stages))
    t0 = time.monotonic()
    meta = {"config": cfg.name, "command": _command_line(args, out),
            "started": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S"), "out": str(out),
            "no_train": bool(args.no_train), "images": args.images, "seed": args.seed, "board": args.board}
    for i, s in enumerate(stages[:-1], 1):
        if s.name == "board" and args.board == "none":
            s.status, s.reason = "skipped", "--board none"
            prog.say(i, s.name, "skipped (--board none)")
            continue
        # train "skipped" under --no-train still provides the artifact
        blocked = [n for n in _NEEDS[s.name] if by[n].status not in ("ok",)
                   and not (n == "train" and args.no_train and by[n].status == "skipped")]
        if blocked:
            s.status, s.reason = "skipped", f"needs {', '.join(blocked)}"
            prog.say(i, s.name, f"skipped ({s.reason})")
            continue
        prog.say(i, s.name, "start")
        ts = time.monotonic()
        try:
            s.status = "ok"
            _RUN[s.name](ctx, s)
        except KeyboardInterrupt:
            raise
        except Exception as e:
            s.status, s.reason = "FAILED", _reason(e)
            s.figures["traceback"] = traceback.format_exc().splitlines()[-12:]
        s.seconds = time.monotonic() - ts
        prog.say(i, s.name, f"{s.status} in {s.seconds:.1f} s" + (f": {s.reason}" if s.status == "FAILED" else ""))
    if ctx.art is not None:
        meta.update(artifact=str(ctx.art_dir), T=ctx.art.T, delay=ctx.art.delay)
    rep = stages[-1]
    n = len(stages)
    prog.say(n, rep.name, "start")
    ts = time.monotonic()
    rep.status = "ok"
    rep.summary = f"{out}/report.md, report.json and plots"
    rep.seconds = time.monotonic() - ts  # updated after writing
    meta["total_seconds"] = time.monotonic() - t0
    return stages, meta


def _command_line(args, out: Path) -> str:
    """The command line that this run amounts to (every option spelled out)."""
    parts = ["csdformer", "flow", args.config] + (["--no-train"] if args.no_train else [])
    parts += ["--force"] if args.force else []
    parts += ["-o", str(out), "--images", str(args.images), "--seed", str(args.seed), "--board", args.board]
    if args.board != "none":
        parts += ["--board-timeout", f"{args.board_timeout:g}"]
    return shlex.join(parts)


def flow_command(args) -> int:
    cfg, name = _check_args(args)
    out = Path(args.out_dir) if args.out_dir else Path("runs") / f"flow-{name}"
    if out.exists() and not out.is_dir():
        raise CsdformerError(f"-o: {out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not args.force:
        raise CsdformerError(f"{out}: already exists (use --force to replace it, or -o another folder)")
    out.mkdir(parents=True, exist_ok=True)
    for stale in ("report.md", "report.json", "accuracy.png", "raster.png", "cycles.png", "resources.png"):
        (out / stale).unlink(missing_ok=True)
    t0 = time.monotonic()
    stages, meta = run_flow(args, cfg, out)
    ts = time.monotonic()
    paths = write_report(out, stages, meta)
    stages[-1].seconds = time.monotonic() - ts
    meta["total_seconds"] = time.monotonic() - t0
    paths = write_report(out, stages, meta)  # again, with the report stage's own time and the total
    failed = [s for s in stages if s.status == "FAILED"]
    print(f"[flow {len(stages)}/{len(stages)} report] ok (total {meta['total_seconds']:.0f} s)", file=sys.stderr)
    w = max(len(s.name) for s in stages)
    for s in stages:
        extra = s.reason if s.status != "ok" else s.summary
        print(f"{s.name:<{w}}  {s.status:<7}  {s.seconds:7.1f} s  {extra}")
    print(f"report: {paths['md']}")
    if failed:
        print(f"FAILED: {', '.join(s.name for s in failed)} (see {paths['md']})")
        return 1
    return 0
