# amaranth: UnusedElaboratable=no
"""Whole-network verification of the bare accelerator, its model streamed over the ``bus`` ports by
a cocotb-side model of the weight stream (``sim/benches/accelerator_bus.py``).

For models whose flash image is too big to simulate as a ROM in the design (the paper-size
``fashion_mnist-4-384``: 9.4 MB): the simulated design is :class:`~csdformer.hw.accelerator.
Accelerator` alone; the bench answers its ``bus`` with :class:`~csdformer.hw.weightstream.RomStream`'s
timing (``byte_cycles=1``) cycle for cycle, so the cycle model takes ``RomStream(image).timing``.
Judging, cycle budget and report are :mod:`csdformer.sim.verify`'s (:func:`~csdformer.sim.verify.
golden_reference`, :func:`~csdformer.sim.verify.compare`, :func:`~csdformer.sim.verify.cycle_budget`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from .verify import VerifyReport, compare, cycle_budget, dump_ranges, golden_reference

__all__ = ["BusVerifyReport", "verify_bus", "stream_layout", "MODES"]

MODES = ("records", "exact")


@dataclass
class BusVerifyReport(VerifyReport):
    golden_s: float = 0.0  # the golden model and the cycle model, all images
    sim_cycles: int = 0  # clock cycles simulated (reset, loads, images, read-back)
    bench_s: float = 0.0  # the bench's own wall time inside the simulator
    vm_hwm_mb: float | None = None  # the simulator process's peak resident memory
    stream: dict = field(default_factory=dict)  # the weight-stream model's counts

    @property
    def cycles_per_s(self) -> float:
        return self.sim_cycles / self.bench_s if self.bench_s else 0.0


def stream_layout(program, base: int = 0) -> dict:
    """The bench's ``stream`` meta: the header and tables' read, and each op record's address,
    length and weight-word count, from ``program`` (the image's counts are checked by the bench)."""
    from ..hw.flash_image import record_bytes, records_offset

    at = base + records_offset(program)
    records = []
    for op in program.ops:
        n = record_bytes(program, op)
        records.append([at, n, 0 if op.weights is None else len(op.weights)])
        at += n
    return {"base": base, "tables_end": records_offset(program), "records": records}


def verify_bus(program, indices, images: np.ndarray, *, delay: int, image: bytes | None = None,
               mode: str = "records", sim: str | None = None, progress: bool = False,
               budget_cycles: int | None = None, corrupt: dict | None = None,
               waves: bool = False, heartbeat_cycles: int | None = None) -> BusVerifyReport:
    """Run ``images`` ``(N, C, H, W)`` through the bare accelerator of ``program``, its model read
    from ``image`` (default: the program's own flash image) by the bench's weight-stream model
    (``mode``: see ``sim/benches/accelerator_bus.py``), and judge every image as
    :func:`csdformer.sim.verify.verify` does. ``heartbeat_cycles``: how often the bench writes a
    progress line to ``heartbeat.txt`` in its test directory."""
    from .. import CsdformerError
    from ..hw.accelerator import Accelerator
    from ..hw.flash_image import build_image
    from ..hw.weightstream import RomStream
    from .benchlib.runner import run_bench

    if not 0 <= delay <= program.T - 1:
        raise CsdformerError(f"--delay: must be in 0..T-1 = 0..{program.T - 1}, got {delay}")
    if mode not in MODES:
        raise CsdformerError(f"mode: {mode!r}; one of {', '.join(MODES)}")
    flash = build_image(program) if image is None else bytes(image)
    # StreamTiming("rom", 2, 1): the timing the bench's model answers with (this RomStream is only
    # asked for it, never elaborated: hence the linter option on this file's first line)
    timing = RomStream(b"", byte_cycles=1).timing
    t0 = time.monotonic()
    golden = golden_reference(program, images, delay, timing=timing)
    golden_s = time.monotonic() - t0
    acc = Accelerator(program)
    pixels = np.transpose(images, (0, 2, 3, 1)).reshape(len(images), -1)  # (y, x, c) order
    res = run_bench(acc, "csdformer_accel_bus", "csdformer.sim.benches.accelerator_bus",
                    data={"images": pixels.astype(np.int64), "delays": np.full(len(images), delay),
                          "flash": np.frombuffer(flash, dtype=np.uint8)},
                    meta={"num_classes": program.num_classes, "logit_width": acc.logit_width,
                          "dump": dump_ranges(program), "indices": [int(i) for i in indices],
                          "budget_cycles": cycle_budget(program, golden, pixels.shape[1], timing)
                          if budget_cycles is None else int(budget_cycles),
                          "stream": dict(stream_layout(program), mode=mode),
                          **({"heartbeat_cycles": int(heartbeat_cycles)} if heartbeat_cycles else {})},
                    sim=sim, corrupt=corrupt, tag=f"verify-bus-d{delay}", waves=waves, progress=progress)
    if "budget_cycles" in res.result:
        raise CsdformerError("verify: " + res.result["error"])
    if "hw_npz" not in res.result:
        raise CsdformerError("verify: the simulation did not finish: " + res.summary()[-2000:])
    if res.result.get("stream_error"):
        raise CsdformerError("verify: " + res.result["error"])
    with np.load(res.result["hw_npz"]) as z:
        hw = {k: z[k] for k in z.files}
    checks = compare(program, golden, hw, indices)
    return BusVerifyReport(checks, delay, program.lanes, build_s=res.built.build_s, sim_s=res.wall_s,
                           golden=golden, hw=hw, golden_s=golden_s, sim_cycles=int(res.result.get("sim_cycles", 0)),
                           bench_s=float(res.result.get("bench_wall_s") or 0.0),
                           vm_hwm_mb=res.result.get("vm_hwm_mb"), stream=res.result.get("stream") or {})
