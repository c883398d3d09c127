"""The ``csdformer`` command line.

Every user-facing failure is a :class:`csdformer.CsdformerError`: printed as one line on stderr,
exit status 2. Commands that need torch import it lazily, so ``eval`` runs without it.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from importlib import resources
from pathlib import Path

from . import CsdformerError, __version__


def shipped_models() -> list[str]:
    d = resources.files("csdformer").joinpath("models")
    return sorted(p.name for p in d.iterdir() if p.joinpath("manifest.json").is_file())


def resolve_artifact(spec: str) -> Path:
    """A path to an artifact folder, or the name of a shipped model (``digits``)."""
    p = Path(spec)
    if not p.exists() and spec in shipped_models():
        return Path(str(resources.files("csdformer").joinpath("models", spec)))
    return p


def _cmd_train(args: argparse.Namespace) -> int:
    from .quantize import config as cfgmod
    from .quantize.train import train

    cfg = cfgmod.load(args.config)
    if args.epochs is not None:
        cfg.train.epochs = args.epochs
        cfgmod.validate(cfg)
    res = train(cfg, out=args.out, resume=args.resume, progress=not args.quiet, device=args.device)
    print(f"trained {cfg.name}: test accuracy (QANN) {res['test_acc']:.4f} in {res['train_seconds']:.0f}s; "
          f"checkpoint {res['checkpoint']}")
    return 0


def _cmd_convert(args: argparse.Namespace) -> int:
    from .artifact import save
    from .datasets import load as load_dataset
    from .quantize.convert import convert
    from .quantize.evaluate import golden_accuracies, torch_accuracies
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


def format_metrics(m: dict) -> str:
    snn = "  ".join(f"D={d}: {v:.4f}" for d, v in m.get("snn", {}).items())
    lines = [
        f"float {m['float']:.4f}  qann {m['qann']:.4f}  int-qann {m['int_qann']:.4f}  (n={m.get('n')})",
        f"snn   {snn}",
    ]
    if "snn_equals_int_qann" in m:
        lines.append(f"snn(D=T-1) predictions equal to int-qann: {m['snn_equals_int_qann'] * 100:.2f} %")
    return "\n".join(lines)


def _cmd_eval(args: argparse.Namespace) -> int:
    from .artifact import load
    from .datasets import load as load_dataset
    from .sim.runner import evaluate

    art = load(resolve_artifact(args.artifact))
    if args.mode == "qann" and args.delay is not None:
        raise CsdformerError("--delay: not used with --mode qann (the count domain has no delay)")
    delay = art.delay if args.delay is None else args.delay
    if args.mode == "snn" and not 0 <= delay <= art.T - 1:
        raise CsdformerError(f"--delay: must be in 0..T-1 = 0..{art.T - 1}, got {delay}")
    x, y = load_dataset(args.data, args.split, args.root)
    if tuple(x.shape[1:]) != art.input.shape:
        raise CsdformerError(f"--data: {args.data} images are {tuple(x.shape[1:])}, the artifact reads {art.input.shape}")
    if args.limit is not None:
        x, y = x[: args.limit], y[: args.limit]
    t0 = time.time()
    res = evaluate(art, x, y, mode=args.mode, delay=delay if args.mode == "snn" else None,
                   progress=not args.json and sys.stderr.isatty())
    dt = time.time() - t0
    out = {
        "artifact": art.name,
        "data": args.data,
        "split": args.split,
        "mode": args.mode,
        "delay": delay if args.mode == "snn" else None,
        "n": res["n"],
        "accuracy": res["accuracy"],
        "seconds": round(dt, 3),
        "predictions": [int(p) for p in res["predictions"]],
    }
    if args.json:
        print(json.dumps(out))
    else:
        what = f"SNN D={delay}" if args.mode == "snn" else "integer QANN"
        print(f"{art.name} on {args.data}/{args.split} ({what}): accuracy {res['accuracy'] * 100:.2f} % "
              f"over {res['n']} images ({res['n'] / max(dt, 1e-9):.0f} images/s)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="csdformer", description=__doc__.splitlines()[0])
    p.add_argument("--version", action="version", version=f"csdformer {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train the QANN of a config (a YAML file or a built-in name: digits, fashion_mnist)")
    t.add_argument("config")
    t.add_argument("--out", help="run folder (default: the config's train.out)")
    t.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    t.add_argument("--epochs", type=int, help="override train.epochs")
    t.add_argument("--device", help="torch device (default: cuda if present, else cpu)")
    t.add_argument("--quiet", action="store_true", help="no progress output")
    t.set_defaults(fn=_cmd_train)

    c = sub.add_parser("convert", help="convert a checkpoint to a spiking model artifact")
    c.add_argument("checkpoint", help="checkpoint.pt or a run folder holding one")
    c.add_argument("out_dir")
    c.add_argument("--delay", type=int, help="default delay D stored in the artifact (default T-1)")
    c.add_argument("--name", help="artifact name (default: the config's name)")
    c.add_argument("--force", action="store_true", help="replace OUT_DIR if it exists")
    c.add_argument("--no-eval", action="store_true", help="skip measuring accuracies on the test split")
    c.set_defaults(fn=_cmd_convert)

    e = sub.add_parser("eval", help="run an artifact through the golden model on a data set")
    e.add_argument("artifact", help="artifact folder, or a shipped model name (" + ", ".join(shipped_models()) + ")")
    e.add_argument("--data", required=True, help="digits, fashion_mnist, cifar10 or cifar100")
    e.add_argument("--split", default="test", choices=("train", "test"))
    e.add_argument("--root", help="data folder (Fashion-MNIST, CIFAR)")
    e.add_argument("--delay", type=int, help="DIF delay D for the SNN (default: the artifact's)")
    e.add_argument("--mode", choices=("snn", "qann"), default="snn")
    e.add_argument("--limit", type=int, help="first N images only")
    e.add_argument("--json", action="store_true", help="print one JSON object")
    e.set_defaults(fn=_cmd_eval)

    from .cli_hw import add_parsers as add_hw_parsers

    add_hw_parsers(sub)
    from .boards.cli_build import add_build_parser

    add_build_parser(sub)
    from .firmware.cli_run import add_run_parser

    add_run_parser(sub)
    from .flow import add_flow_parser; add_flow_parser(sub)  # noqa: E702
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.fn(args)
    except CsdformerError as e:
        print(f"csdformer: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("csdformer: interrupted", file=sys.stderr)
        return 130
