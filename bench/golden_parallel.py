"""The golden model over an artifact's whole test split in parallel processes: integer QANN and
the SNN at each delay, images split over ``--procs`` workers (one BLAS thread each).

    python bench/golden_parallel.py ARTIFACT --root DATA --procs 16 [--modes qann 3 0 1 2]
        [--deadline SECONDS] [--json OUT.json]

Passes run in the order given (the default: integer QANN, then D = T-1, then the other delays),
each over every image. With ``--deadline`` a pass that would start after that many seconds is
skipped and reported as not run. The accuracies, the count of images where SNN(D = T-1) and the
integer QANN predict differently, and the seconds of each pass are printed, written to
``--json``, and stored in the artifact's metrics (``int_qann``, ``snn``, ``snn_equals_int_qann``,
``n``), which is re-saved in place, as ``csdformer convert`` would have written them.
"""

from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_v] = "1"  # before numpy loads: one thread per worker process

import argparse  # noqa: E402
import json  # noqa: E402
import multiprocessing as mp  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

from csdformer.artifact import load, resolve_artifact, save  # noqa: E402
from csdformer.datasets import load as load_data  # noqa: E402
from csdformer.quantize.evaluate import format_metrics  # noqa: E402
from csdformer.sim.runner import evaluate  # noqa: E402

_STATE: dict = {}


def _init(path: str, root: str | None) -> None:
    art = load(path)
    x, _ = load_data(art.input.dataset, "test", root)
    _STATE.update(art=art, x=x)


def _work(job: tuple[str, int | None, int, int]) -> tuple[int, np.ndarray]:
    mode, delay, start, stop = job
    r = evaluate(_STATE["art"], _STATE["x"][start:stop], mode=mode, delay=delay, batch_size=stop - start)
    return start, r["predictions"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("artifact")
    ap.add_argument("--root", help="data folder")
    ap.add_argument("--procs", type=int, default=os.cpu_count())
    ap.add_argument("--chunk", type=int, default=25, help="images a task")
    ap.add_argument("--modes", nargs="+", help="'qann' and/or delays (default: qann, T-1, then 0..T-2)")
    ap.add_argument("--limit", type=int, help="first N test images only")
    ap.add_argument("--deadline", type=float, help="start no pass after this many seconds")
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args()
    path = resolve_artifact(args.artifact)
    art = load(path)
    _, y = load_data(art.input.dataset, "test", args.root)
    n = len(y) if args.limit is None else min(args.limit, len(y))
    y = y[:n]
    T = art.T
    modes = args.modes or ["qann", str(T - 1), *map(str, range(T - 1))]
    t_all = time.time()
    preds: dict[str, np.ndarray] = {}
    seconds: dict[str, float] = {}
    skipped = []
    with mp.get_context("fork").Pool(args.procs, _init, (str(path), args.root)) as pool:
        for m in modes:
            if args.deadline is not None and time.time() - t_all > args.deadline:
                skipped.append(m)
                continue
            mode, delay = ("qann", None) if m == "qann" else ("snn", int(m))
            jobs = [(mode, delay, s, min(s + args.chunk, n)) for s in range(0, n, args.chunk)]
            t0 = time.time()
            p = np.zeros(n, dtype=np.int64)
            for start, pr in pool.imap_unordered(_work, jobs):
                p[start : start + len(pr)] = pr
            seconds[m] = round(time.time() - t0, 1)
            preds[m] = p
            acc = float(np.mean(p == y))
            print(f"{'int-qann' if m == 'qann' else f'snn D={m}'}: accuracy {acc:.4f} over {n} images "
                  f"in {seconds[m]}s ({args.procs} processes)", flush=True)
    res: dict = {"n": n, "seconds": seconds, "skipped": skipped, "procs": args.procs}
    if "qann" in preds:
        res["int_qann"] = float(np.mean(preds["qann"] == y))
    res["snn"] = {m: float(np.mean(preds[m] == y)) for m in sorted(preds, key=str) if m != "qann"}
    if "qann" in preds and str(T - 1) in preds:
        diff = int(np.sum(preds[str(T - 1)] != preds["qann"]))
        res["snn_equals_int_qann"] = 1.0 - diff / n
        res["snn_differs_from_int_qann"] = diff
        print(f"snn(D={T - 1}) and int-qann predict differently on {diff} of {n} images", flush=True)
    res["predictions"] = {m: p.tolist() for m, p in preds.items()}
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f)
    if args.limit is None and not skipped:
        m = dict(art.metrics)
        m.update({k: res[k] for k in ("int_qann", "snn", "snn_equals_int_qann") if k in res})
        m["n"] = n
        art.metrics = m
        save(art, path, overwrite=True)
        if "float" in m:
            print(format_metrics(m))
    print(f"golden passes took {time.time() - t_all:.0f}s")


if __name__ == "__main__":
    main()
