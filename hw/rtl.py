"""``csdformer rtl``: the accelerator's Verilog, memory images and JSON description, in one folder.

Everything is checked before anything is written (:func:`csdformer.hw.program.compile_program`
raises :class:`HwParamError` for an artifact the generator cannot build), and the folder is
written atomically: a temporary sibling renamed into place.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from amaranth.hdl import Value
from amaranth.lib import wiring

from .. import __version__
from .accelerator import Accelerator
from .common import HwParamError, verilog_text
from .netmodel import op_costs
from .program import Program

__all__ = ["TOP", "write_rtl", "describe"]

TOP = "csdformer_accel"


def _hex_lines(rows, width: int, lanes: int) -> str:
    digits = -(-width * lanes // 4)
    mask = (1 << width) - 1
    words = [sum((int(v) & mask) << (i * width) for i, v in enumerate(r)) for r in rows]
    return "".join(f"{w:0{digits}x}\n" for w in words)


def describe(acc: Accelerator, delay: int) -> dict:
    """Ports, memories, parameters, tensor map and the cycle model of one generated accelerator."""
    p: Program = acc.program
    ports = []
    for name, member in acc.signature.members.items():
        if member.is_port:
            ports.append({"name": name, "direction": "out" if member.flow == wiring.Out else "in",
                          "width": Value.cast(getattr(acc, name)).shape().width})
        else:
            for sub, m in member.signature.members.items():
                out = m.flow == wiring.Out  # an In member's signature is already flipped
                ports.append({"name": f"{name}__{sub}", "direction": "out" if out else "in",
                              "width": Value.cast(getattr(getattr(acc, name), sub)).shape().width})
    d = p.describe()
    W = p.widths
    mems = {
        "weights": ("weight", p.weights), "biases": ("bias", p.biases),
        "thresholds": ("threshold", p.thresholds), "v0": ("v0", p.v0),
    }
    costs = op_costs(p, delay)
    return {
        "generator": f"csdformer {__version__}",
        "top": TOP,
        "artifact": p.artifact.name,
        "parameters": {"lanes": p.lanes, "T": p.T, "delay_default": p.artifact.delay, "widths": W,
                       "pixel_bits": p.pixel_bits, "n_pixels": p.n_pixels, "num_classes": p.num_classes},
        "ports": ports,
        "memories": {"depths": d["depths"], "bits": d["memory_bits"],
                     "rom_images": {k: f"mem/{k}.hex" for k in mems}},
        "tensors": d["tensors"],
        "ops": [dict(o, **c) for o, c in zip(d["ops"], costs)],
        "cycle_model": {
            "delay": delay,
            "formula": "cycles = n_pixels + sum over ops of (fixed + per_event * events + per_live_word * live_words)",
            "min_cycles": p.n_pixels + sum(c["fixed"] for c in costs),
        },
    }


def write_rtl(program: Program, out_dir, *, force: bool = False, delay: int | None = None) -> Path:
    """Write ``<out_dir>/{csdformer_accel.v, accelerator.json, mem/*.hex}``; return the folder."""
    out = Path(out_dir)
    if out.exists() and not force:
        raise HwParamError(f"{out}: already exists (use --force to replace it)")
    delay = program.artifact.delay if delay is None else delay
    acc = Accelerator(program)
    text = verilog_text(acc, TOP)  # elaborate fully before touching the disk
    desc = describe(acc, delay)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        os.chmod(tmp, 0o755)
        (tmp / f"{TOP}.v").write_text(text)
        (tmp / "mem").mkdir()
        W, P = program.widths, program.lanes
        for key, width, rows in (("weights", W["weight"], program.weights), ("biases", W["bias"], program.biases),
                                 ("thresholds", W["threshold"], program.thresholds), ("v0", W["v0"], program.v0)):
            (tmp / "mem" / f"{key}.hex").write_text(_hex_lines(rows, width, P))
        (tmp / "accelerator.json").write_text(json.dumps(desc, indent=1) + "\n")
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out
