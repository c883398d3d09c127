"""Whole-network verification: the accelerator's RTL against the golden model, image by image.

:func:`verify` builds the accelerator for an artifact, streams images through it in a cocotb
bench (``sim/benches/accelerator.py``) and compares, per image, the logits, the predicted class,
every spike layer's per-neuron counts and frames (read back through the debug port) with
:func:`csdformer.sim.runner.run`, and the performance counters with the cycle model
(:mod:`csdformer.hw.netmodel`): SOPs and spikes exactly, cycles within 5 %.
:func:`compare` is the judging half alone, so that it can be tested on recorded results.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..artifact import Artifact
from . import runner

__all__ = ["ImageCheck", "VerifyReport", "select_images", "golden_reference", "compare", "cycle_budget", "verify"]

CYCLE_TOLERANCE = 0.05
BUDGET_MARGIN = 2  # the bench's cycle budget: this many times the cycle model's cycles, plus I/O


@dataclass
class ImageCheck:
    index: int  # position in the data set's test split
    ok: bool
    first_layer: str | None  # the first artifact layer that differs (or "logits", "counters")
    details: list[str] = field(default_factory=list)
    cycles: int = 0
    model_cycles: int = 0
    sops: int = 0
    spikes: int = 0

    def line(self) -> str:
        where = f"first difference in layer {self.first_layer!r}" if self.first_layer else "ok"
        return f"image {self.index}: {where}" + (f" ({'; '.join(self.details)})" if self.details else "")


@dataclass
class VerifyReport:
    checks: list[ImageCheck]
    delay: int
    lanes: int
    build_s: float = 0.0
    sim_s: float = 0.0
    golden: dict | None = None  # what the checks were judged against (golden_reference)
    hw: dict | None = None  # what the hardware recorded (see sim/benches/accelerator.py)

    def utilization(self) -> float:
        """Ideal SOP cycles (SOPs / lanes) over the cycles the hardware spent, all images."""
        return sum(c.sops for c in self.checks) / self.lanes / max(1, sum(c.cycles for c in self.checks))

    @property
    def passed(self) -> int:
        return sum(c.ok for c in self.checks)

    @property
    def failed(self) -> int:
        return len(self.checks) - self.passed

    def summary(self) -> str:
        return f"{self.passed} passed, {self.failed} failed"


def select_images(artifact: Artifact, n: int, seed: int = 0, root=None) -> tuple[np.ndarray, np.ndarray]:
    """``n`` test-split images of the artifact's data set, chosen by ``seed``: (indices, images)."""
    from .. import CsdformerError
    from ..datasets import load as load_dataset

    name = artifact.input.dataset
    if not name:
        raise CsdformerError("artifact: input.dataset is not set; pass images explicitly")
    x, _ = load_dataset(name, "test", root)
    if n < 1 or n > len(x):
        raise CsdformerError(f"--images: must be in 1..{len(x)} (the {name} test split), got {n}")
    idx = np.sort(np.random.default_rng(seed).choice(len(x), size=n, replace=False))
    return idx, x[idx]


def golden_reference(program, images: np.ndarray, delay: int, timing=None) -> dict:
    """Golden logits, counts and frames of every spike layer, plus the cycle model per image
    (``timing``: the memory backend's, see :func:`csdformer.hw.netmodel.image_model`)."""
    from ..hw.netmodel import image_model, trace_layers

    res = runner.run(program.artifact, images, mode="snn", delay=delay, trace=trace_layers(program))
    models = [image_model(program, {k: v[:, i] for k, v in res.frames.items()}, images[i], delay, timing)
              for i in range(len(images))]
    return {"logits": res.logits, "prediction": res.predictions, "counts": res.counts, "frames": res.frames,
            "models": models}


def reference_result(program, pixels: bytes, delay: int, timing=None):
    """What the device must answer to an INFER of ``pixels`` (``(y, x, c)`` bytes): the golden
    class and logits and the cycle model's cycles (a :class:`csdformer.firmware.protocol.Result`);
    ``timing``: the memory backend's (see :func:`golden_reference`)."""
    from ..firmware.protocol import Result

    c, h, w = program.input_shape
    image = np.frombuffer(bytes(pixels), dtype=np.uint8).astype(np.int64)
    image = (image & ((1 << program.pixel_bits) - 1)).reshape(h, w, c).transpose(2, 0, 1)[None]
    g = golden_reference(program, image, delay, timing)
    return Result(int(g["prediction"][0]), int(g["models"][0].cycles), tuple(int(v) for v in g["logits"][0]))


def hw_frames(program, spk: np.ndarray) -> dict[str, np.ndarray]:
    """Debug-port words of each image ``(N, words)`` → each spike layer's frames ``(T, N, *shape)``."""
    P, T = program.lanes, program.T
    out, pos = {}, 0
    for name in program.spike_layers:
        t = program.tensors[name]
        n = T * t.words
        words = spk[:, pos:pos + n].astype(np.uint64)
        pos += n
        bits = ((words[..., None] >> np.arange(P, dtype=np.uint64)) & np.uint64(1)).astype(np.int64)
        m = bits.reshape(len(spk), T, t.rows, t.groups * P)
        out[name] = np.moveaxis(t.from_words(m), 1, 0)
    return out


def dump_ranges(program) -> list[list[int]]:
    return [[program.tensors[n].base, program.T * program.tensors[n].words] for n in program.spike_layers]


def compare(program, golden: dict, hw: dict, indices) -> list[ImageCheck]:
    """Judge recorded hardware results ``hw`` (logits, prediction, spk, cycles, spikes, sops)
    against ``golden`` (:func:`golden_reference`), one :class:`ImageCheck` per image."""
    frames = hw_frames(program, hw["spk"])
    order = [layer.name for layer in program.artifact.layers if layer.name in frames]
    checks = []
    for i, index in enumerate(indices):
        details, first = [], None
        for name in order:
            hc = frames[name][:, i].sum(axis=0)
            gc = golden["counts"][name][i]
            bad_counts = int(np.count_nonzero(hc != gc))
            bad_frames = int(np.count_nonzero(frames[name][:, i] != golden["frames"][name][:, i]))
            if bad_counts or bad_frames:
                first = first or name
                details.append(f"{name}: {bad_counts} neuron counts and {bad_frames} frame bits differ")
        if not np.array_equal(hw["logits"][i], golden["logits"][i]):
            first = first or "logits"
            details.append(f"logits {hw['logits'][i].tolist()} != golden {golden['logits'][i].tolist()}")
        if int(hw["prediction"][i]) != int(golden["prediction"][i]):
            first = first or "prediction"
            details.append(f"class {int(hw['prediction'][i])} != golden {int(golden['prediction'][i])}")
        mdl = golden["models"][i]
        cyc = int(hw["cycles"][i])
        for key, want in (("sops", mdl.sops), ("spikes", mdl.spikes)):
            if int(hw[key][i]) != want:
                first = first or "counters"
                details.append(f"{key} {int(hw[key][i])} != model {want}")
        if abs(cyc - mdl.cycles) > CYCLE_TOLERANCE * mdl.cycles:
            first = first or "counters"
            details.append(f"cycles {cyc} not within 5 % of the model's {mdl.cycles}")
        checks.append(ImageCheck(int(index), first is None, first, details, cyc, mdl.cycles,
                                 int(hw["sops"][i]), int(hw["spikes"][i])))
    return checks


def cycle_budget(program, golden: dict, n_pixels: int, timing=None) -> int:
    """The accelerator bench's cycle budget for the images of ``golden``: :data:`BUDGET_MARGIN`
    times the cycle model's cycles summed over the images, plus each image's pixel load, logits
    and debug-port read-back (and a little slack for reset and handshakes); with the memory
    backend's ``timing`` also :data:`BUDGET_MARGIN` times the model's reading before the first
    image (header and tables, then the first two records, or resident, every record)."""
    from ..hw.accelerator import DBG_LATENCY
    from ..hw.flash_image import records_offset
    from ..hw.loader import record_cycles

    readback = sum(words for _, words in dump_ranges(program)) + DBG_LATENCY
    io = n_pixels + program.num_classes + readback + 64
    startup = 0
    if timing is not None:
        first = program.ops if program.resident else program.ops[:2]
        startup = timing.read_cycles(records_offset(program)) + sum(record_cycles(program, op, timing) for op in first)
    return (BUDGET_MARGIN * (sum(int(m.cycles) for m in golden["models"]) + startup)
            + len(golden["models"]) * io + 64)


def verify(program, indices, images: np.ndarray, *, delay: int, sim: str | None = None, waves: bool = False,
           corrupt: dict | None = None, progress: bool = False, budget_cycles: int | None = None,
           backend: str = "rom", image: bytes | None = None, clock_hz: float = 50e6,
           lines: int = 4, sdram_part=None, outreg: bool = False) -> VerifyReport:
    """Run ``images`` ``(N, C, H, W)`` through the RTL of ``program`` and judge every image.
    ``progress``: plain lines on stderr (the simulator build's start and end, then one per image).
    ``budget_cycles``: the simulation's cycle budget (default :func:`cycle_budget`, from the cycle
    model); past it the run stops with a :class:`~csdformer.CsdformerError` naming the image.
    ``backend``: where the model is read from (:data:`csdformer.sim.testbed.BACKENDS`); ``image``:
    the flash image it holds (default: ``program``'s own); ``clock_hz``: the clock the QSPI reader
    is built for (its deselect gap and wake-up time); ``lines``: its data lines (4: quad reads, 1:
    single-line, the ULX3S's); ``sdram_part``: the part the SDRAM controller is built for
    (``backend="sdram"``; default the ULX3S's, which the SDRAM model always is); ``outreg``: the
    accelerator as a board with block-RAM output registers builds it."""
    from .. import CsdformerError
    from .benchlib.runner import run_bench
    from .testbed import Testbed

    if not 0 <= delay <= program.T - 1:
        raise CsdformerError(f"--delay: must be in 0..T-1 = 0..{program.T - 1}, got {delay}")
    acc = Testbed(program, backend=backend, image=image, clock_hz=clock_hz, lines=lines, sdram_part=sdram_part,
                  outreg=outreg)
    golden = golden_reference(program, images, delay, timing=acc.timing)
    pixels = np.transpose(images, (0, 2, 3, 1)).reshape(len(images), -1)  # (y, x, c) order
    res = run_bench(acc, "csdformer_accel", "csdformer.sim.benches.accelerator",
                    data={"images": pixels.astype(np.int64), "delays": np.full(len(images), delay)},
                    meta={"num_classes": program.num_classes, "logit_width": acc.logit_width,
                          "dump": dump_ranges(program), "indices": [int(i) for i in indices],
                          "budget_cycles": cycle_budget(program, golden, pixels.shape[1], acc.timing) + acc.start_cycles
                          if budget_cycles is None else int(budget_cycles)},
                    sim=sim, corrupt=corrupt, tag=f"verify-d{delay}", waves=waves, progress=progress)
    if "budget_cycles" in res.result:  # the bench's one-line message: image and budget
        raise CsdformerError("verify: " + res.result["error"])
    if "hw_npz" not in res.result:
        raise CsdformerError("verify: the simulation did not finish: " + res.summary()[-2000:])
    with np.load(res.result["hw_npz"]) as z:
        hw = {k: z[k] for k in z.files}
    checks = compare(program, golden, hw, indices)
    return VerifyReport(checks, delay, program.lanes, build_s=res.built.build_s, sim_s=res.wall_s, golden=golden, hw=hw)
