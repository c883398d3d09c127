"""``csdformer run``: classify test images on the FPGA over its UART link.

``csdformer run ARTIFACT --port DEV [--baud B] [--images N] [--seed S] [--delay D] [--check]``
draws ``N`` images (seeded) from the artifact's data set's test split, sends them to the device
one at a time and reports accuracy, images/s and cycles; ``--check`` also runs the golden model
(:func:`csdformer.sim.runner.run`) on the same images and reports how many answers agree
(logits and class), exiting 1 if any differs. The device must report the artifact's shape and model
id (INFO); while it reports none (0: still reading its model after reset, as the ULX3S does while
it copies a streamed model from flash into its SDRAM: up to about 2 s for a full flash) it is
asked again for ``--load-wait`` seconds. A request the link cannot complete (after retries) stops
the run: the results so far are reported, then the error (one line, exit status 2).
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from .. import CsdformerError
from ..artifact import load, model_id, resolve_artifact
from ..datasets import load as load_dataset
from ..sim.runner import predict, run_batches
from .runtime import Device, RunStopped, run_images

__all__ = ["add_run_parser", "run_command", "wait_for_model", "LOAD_WAIT_S"]

#: Seconds ``csdformer run`` asks again while the device reports no model: the ULX3S copies a
#: streamed model from its flash into its SDRAM after reset at 16 cycles a byte (0.1 s for
#: Fashion-MNIST, about 2.1 s for the 13 MB a flash holds past the model's offset, at 100 MHz).
LOAD_WAIT_S = 3.0
POLL_S = 0.1


def wait_for_model(dev, info, want: int, wait_s: float):
    """``info``, or, while it reports model id 0 (none loaded yet) and ``want`` is not 0, the
    device's INFO asked again every :data:`POLL_S` for up to ``wait_s`` seconds."""
    deadline = time.monotonic() + wait_s
    while info.model_id == 0 and want != 0 and time.monotonic() < deadline:
        time.sleep(POLL_S)
        info = dev.info()
    return info


def add_run_parser(subparsers) -> argparse.ArgumentParser:
    """Register the ``run`` command on ``subparsers`` (an ``add_subparsers()`` result)."""
    r = subparsers.add_parser("run")  # its one-line help: csdformer/cli.py
    r.add_argument("artifact", help="artifact folder, or a shipped model name")
    r.add_argument("--port", required=True, help="serial device or pyserial URL (e.g. /dev/ttyUSB1)")
    r.add_argument("--baud", type=int, default=115200, help="baud rate (default 115200)")
    r.add_argument("--images", type=int, default=100, help="number of test images (default 100)")
    r.add_argument("--seed", type=int, default=0, help="seed of the image draw (default 0)")
    r.add_argument("--delay", type=int, help="DIF delay D (default: the artifact's)")
    r.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for each answer (default 5)")
    r.add_argument("--retries", type=int, default=3,
                   help="retries of a request without a valid answer (default 3, with backoff)")
    r.add_argument("--model-id", type=lambda v: int(v, 0), dest="model_id",
                   help="the model id the device must report (default: the artifact's, "
                        "csdformer.artifact.model_id)")
    r.add_argument("--load-wait", type=float, default=LOAD_WAIT_S, dest="load_wait", metavar="SECONDS",
                   help=f"while the device reports no model yet (model id 0: it is still reading it after reset), "
                        f"ask again for this long (default {LOAD_WAIT_S:g})")
    r.add_argument("--check", action="store_true", help="compare every answer with the golden model")
    r.set_defaults(fn=run_command)
    return r


def _pick(art, n: int, seed: int):
    x, y = load_dataset(art.input.dataset, "test")
    if n < 1:
        raise CsdformerError(f"--images: must be >= 1, got {n}")
    idx = np.random.default_rng(seed).choice(len(x), size=min(n, len(x)), replace=False)
    return x[idx], y[idx]


def expected_model_id(art, lanes: int | None = None) -> int:
    """The model id a device running ``art`` reports (read from its flash image's header):
    :func:`csdformer.artifact.model_id`, the same on any board, lane count or fabric."""
    return model_id(art)


def check_device(art, info, model_id: int | None) -> str:
    """Refuse a device whose INFO does not fit ``art`` (shape, or model id when ``model_id`` is
    given); returns a note on the model id check for the report."""
    want = (int(np.prod(art.input.shape)), art.num_classes, art.T)
    if (info.n_pixels, info.num_classes, info.T) != want:
        raise CsdformerError(f"--port: the device runs a model with {info.n_pixels} pixels, "
                             f"{info.num_classes} classes, T={info.T}; {art.name} has {want[0]}, "
                             f"{want[1]}, T={want[2]}")
    if info.model_id != model_id:
        what = ("no model is loaded yet (a device that reads its model from flash reports 0 until it has; "
                "--load-wait asks again for longer)"
                if info.model_id == 0 else "another model (or other weights) is loaded")
        raise CsdformerError(f"--port: the device reports model id 0x{info.model_id:08x}, {art.name} with "
                             f"{info.lanes} lanes is 0x{model_id:08x}: {what}")
    return "model id checked"


def run_command(args: argparse.Namespace) -> int:
    art = load(resolve_artifact(args.artifact))
    delay = art.delay if args.delay is None else args.delay
    if not 0 <= delay <= art.T - 1:
        raise CsdformerError(f"--delay: must be in 0..T-1 = 0..{art.T - 1}, got {delay}")
    if args.retries < 0:
        raise CsdformerError(f"--retries: must be >= 0, got {args.retries}")
    if getattr(args, "load_wait", 0) < 0:
        raise CsdformerError(f"--load-wait: must be >= 0, got {args.load_wait:g}")
    x, y = _pick(art, args.images, args.seed)
    stopped = None
    with Device(args.port, args.baud, timeout=args.timeout, retries=args.retries) as dev:
        mid = expected_model_id(art) if args.model_id is None else args.model_id
        info = wait_for_model(dev, dev.info(), mid, getattr(args, "load_wait", LOAD_WAIT_S))
        id_note = check_device(art, info, mid)
        t0 = time.monotonic()
        try:
            ans = run_images(dev, x, delay, progress=sys.stderr.isatty())
        except RunStopped as e:
            ans, stopped = e.answers, e
        dt = time.monotonic() - t0
        link = dev.stats
    n = len(ans.predictions)
    rc = 0
    if n:
        acc = float(np.mean(ans.predictions == y[:n]))
        print(f"{art.name} on the device (model id 0x{info.model_id:08x}, {id_note}, lanes={info.lanes}), D={delay}: "
              f"accuracy {acc * 100:.2f} % over {n} images ({n / max(dt, 1e-9):.1f} images/s over the "
              f"link), cycles per image mean {ans.cycles.mean():.0f} min {ans.cycles.min()} max {ans.cycles.max()}"
              + (f"; link: {link['retries']} retries, {link['late']} late answers dropped"
                 if link["retries"] or link["late"] else ""))
        if args.check:
            gold = np.concatenate([r.logits for r in run_batches(art, x[:n], delay=delay)])
            same_logits = np.all(ans.logits == gold, axis=1)
            same_class = ans.predictions == predict(gold)
            print(f"check against the golden model: logits equal for {int(same_logits.sum())}/{n} images, "
                  f"classes equal for {int(same_class.sum())}/{n}")
            if not same_logits.all():
                i = int(np.argmin(same_logits))
                print(f"first difference: image {i}: device {ans.logits[i].tolist()} golden {gold[i].tolist()}")
                rc = 1
    if stopped is not None:
        raise CsdformerError(f"run stopped after {n} of {len(y)} images (their results are above): {stopped}")
    return rc
