"""``csdformer rtl``: the accelerator's Verilog, the model's flash image and a JSON description,
in one folder.

The Verilog depends on the fabric only (:mod:`csdformer.hw.fabric`); the model is ``model.bin``
(:mod:`csdformer.hw.flash_image`), which the accelerator reads through its ``bus`` port.

Everything is checked before anything is written (:func:`csdformer.hw.program.compile_program`
raises :class:`HwParamError` for an artifact the generator cannot build), and the folder is
written atomically: a temporary sibling renamed into place.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from amaranth.hdl import Value
from amaranth.lib import wiring

from .. import __version__
from .accelerator import Accelerator
from .common import HwParamError, replacing_folder, verilog_text
from .flash_image import build_image
from .netmodel import min_cycles, op_costs
from .program import Program

__all__ = ["TOP", "write_rtl", "describe"]

TOP = "csdformer_accel"


def describe(acc: Accelerator, delay: int) -> dict:
    """Ports, memories, parameters, tensor map and the cycle model of one generated accelerator."""
    p: Program = acc.program
    ports = []

    def walk(prefix, members, obj, flip):
        for name, member in members.items():
            if member.is_port:
                out = (member.flow == wiring.Out) != flip
                ports.append({"name": prefix + name, "direction": "out" if out else "in",
                              "width": Value.cast(getattr(obj, name)).shape().width})
            else:  # an In member's signature is already flipped
                walk(f"{prefix}{name}__", member.signature.members, getattr(obj, name), False)

    walk("", acc.signature.members, acc, False)
    d = p.describe()
    W = p.widths
    costs = op_costs(p, delay)
    return {
        "generator": f"csdformer {__version__}",
        "top": TOP,
        "artifact": p.artifact.name,
        "parameters": {"lanes": p.lanes, "T": p.T, "delay_default": p.artifact.delay, "widths": W,
                       "pixel_bits": p.pixel_bits, "n_pixels": p.n_pixels, "num_classes": p.num_classes},
        "ports": ports,
        "memories": {"depths": d["depths"], "bits": d["memory_bits"],
                     "flash_image": "model.bin", "fabric_id": f"{p.fabric.fabric_id:08x}",
                     "collisions": "a read of a memory that is not transparent, in the cycle its word is written, "
                                   "is never used (verified): synthesis may make it undefined "
                                   "(Yosys: COLLISION_X_MASK on the bank<b> read ports)"},
        "tensors": d["tensors"],
        "ops": [dict(o, **c) for o, c in zip(d["ops"], costs)],
        "cycle_model": {
            "delay": delay,
            "formula": "cycles = n_pixels + sum over ops of (fixed + fanout + per_live_word * live_words "
                       "- sum over steps t = 2..T of min(frame_fixed + fanout_t + per_live_word * live_words_t, "
                       "beside) + held); fanout: per_event cycles an event, less a conv's taps outside the output "
                       "(hw.scatter.tap_cycles); held: the cycles an op's FRAME waits for the tail of the op "
                       "before (its fire-only sink passes), max(0, tail of that op - 1 - front - step 1's "
                       "fanout and live-word cycles where the op scatters spikes), with its records in time",
            "min_cycles": min_cycles(p, delay),
        },
    }


def write_rtl(program: Program, out_dir, *, force: bool = False, delay: int | None = None) -> Path:
    """Write ``<out_dir>/{csdformer_accel.v, accelerator.json, fabric.json, model.bin}``; return the folder."""
    out = Path(out_dir)
    if out.exists() and not force:
        raise HwParamError(f"{out}: already exists (use --force to replace it)")
    delay = program.artifact.delay if delay is None else delay
    # Without the simulation's collision poison: the verification (poisoned) shows that no read that
    # meets a write of its word is used, so a user's synthesis may leave it undefined.
    acc = Accelerator(program, poison=False)
    text = verilog_text(acc, TOP)  # elaborate fully before touching the disk
    desc = describe(acc, delay)
    with replacing_folder(out) as tmp:
        os.chmod(tmp, 0o755)
        (tmp / f"{TOP}.v").write_text(text)
        (tmp / "model.bin").write_bytes(build_image(program))
        (tmp / "fabric.json").write_text(json.dumps(program.fabric.to_json(), indent=1) + "\n")
        (tmp / "accelerator.json").write_text(json.dumps(desc, indent=1) + "\n")
    return out
