"""The fabric: what a bitstream is built for, apart from the model it runs.

The accelerator's RTL depends on a :class:`~csdformer.hw.program.Program` only through its
*structure*: lanes, window, image and class counts, the width of every datapath and memory, the
depth of every memory, and the op register's field shapes. The model itself (op values, weights,
biases, thresholds, initial potentials) is data in the flash image
(:mod:`csdformer.hw.flash_image`). A :class:`Fabric` is that structure, so one bitstream runs
every artifact that fits it: :meth:`Fabric.problems` says what does not fit, naming it, and
``compile_program(artifact, lanes, fabric=...)`` compiles an artifact *into* a fabric (its RTL is
then the fabric's, bit for bit). :attr:`Fabric.fabric_id` is stored in the flash image's header,
and the build cache finds a bitstream by it.

:meth:`Fabric.of` takes a program's structure; with ``headroom`` every value-dependent width gets
one more bit (acc, cur, mem, sum, bias, threshold, v0, and the op fields that come from trained
values: the attention shift) and the weight width is the artifact's ``weight_bits``, so that a
retrained model of the same shape fits.
"""

from __future__ import annotations

import json
import zlib
from dataclasses import asdict, dataclass

from amaranth.hdl import Shape, signed, unsigned
from amaranth.lib import data

__all__ = ["Fabric", "FieldShape"]

HEADROOM_WIDTHS = ("acc", "cur", "mem", "sum", "bias", "threshold", "v0")
# The op fields that depend on trained values (the rest are addresses and sizes: the shape's).
HEADROOM_FIELDS = (("sink", "shift"),)


@dataclass(frozen=True)
class FieldShape:
    group: str
    name: str
    width: int
    signed: bool
    lanes: int = 0  # an array of this many lanes (``bmul``), else 0

    def shape(self):
        s = signed(self.width) if self.signed else unsigned(self.width)
        return data.ArrayLayout(s, self.lanes) if self.lanes else s

    def holds(self, values) -> bool:
        lo = -(1 << (self.width - 1)) if self.signed else 0
        hi = (1 << (self.width - 1)) - 1 if self.signed else (1 << self.width) - 1
        return all(lo <= v <= hi for v in values)


@dataclass(frozen=True)
class Fabric:
    """The structure of one accelerator design (module docstring)."""

    lanes: int
    T: int
    input_shape: tuple[int, int, int]
    pixel_bits: int
    num_classes: int
    widths: tuple[tuple[str, int], ...]
    depths: tuple[tuple[str, int], ...]
    fields: tuple[FieldShape, ...]
    single_port: tuple[str, ...] = ()
    # The limits the program was tiled for (hw/program.Tile): ("weight", words), ("acc", words);
    # an artifact compiled into this fabric is tiled for the same, so its ops match the op register.
    tile_limits: tuple[tuple[str, int], ...] = ()
    resident: bool = False  # every op's weights on chip at once (Program.resident)

    @classmethod
    def of(cls, program, *, headroom: bool = False) -> "Fabric":
        widths = dict(program.natural_widths)
        if headroom:
            for k in HEADROOM_WIDTHS:
                widths[k] += 1
            widths["weight"] = max(widths["weight"], program.artifact.weight_bits)
        fields = []
        for group, name, shape in program.natural_fields():
            lanes = 0
            if isinstance(shape, data.ArrayLayout):
                lanes, shape = shape.length, shape.elem_shape
            s = Shape.cast(shape)
            extra = int(headroom and (group, name) in HEADROOM_FIELDS)
            fields.append(FieldShape(group, name, s.width + extra, s.signed, lanes))
        return cls(program.lanes, program.T, tuple(program.input_shape), program.pixel_bits, program.num_classes,
                   tuple(sorted(widths.items())), tuple(sorted(program.natural_depths.items())), tuple(fields),
                   tuple(program.single_port),
                   tuple(sorted((k, v) for k, v in program.tile_limits.items() if v is not None)), program.resident)

    # ---- what an artifact must fit ---------------------------------------------------------
    def problems(self, program) -> list[str]:
        """What of ``program`` (compiled for its own needs) does not fit this fabric: one short
        phrase each, naming the quantity, the artifact's value and the fabric's."""
        out = []
        for key, mine, theirs in (("lanes", self.lanes, program.lanes), ("T", self.T, program.T),
                                  ("input shape", tuple(self.input_shape), tuple(program.input_shape)),
                                  ("classes", self.num_classes, program.num_classes),
                                  ("single-port memories", tuple(self.single_port), tuple(program.single_port)),
                                  ("resident weights", self.resident, program.resident)):
            if mine != theirs:
                out.append(f"{key} {theirs} (the bitstream's: {mine})")
        if program.pixel_bits > self.pixel_bits:
            out.append(f"pixel width {program.pixel_bits} bits (the bitstream's: {self.pixel_bits})")
        W, D = dict(self.widths), dict(self.depths)
        for k, v in sorted(program.natural_widths.items()):
            if v > W.get(k, 0):
                out.append(f"{k} width {v} bits (the bitstream's: {W.get(k, 0)})")
        for k, v in sorted(program.natural_depths.items()):
            if v > D.get(k, 0):
                what = {"weight": "largest op's weight buffer", "ops": "ops"}.get(k, f"{k} memory")
                out.append(f"{what} {v} words (the bitstream's: {D.get(k, 0)})")
        mine = {(f.group, f.name): f for f in self.fields}
        values = program.field_values()
        for (group, name), vs in sorted(values.items()):
            f = mine.get((group, name))
            if f is None or not f.holds(vs):
                out.append(f"op field {group}.{name} value {max(vs, key=abs)} (the bitstream's field: "
                           + (f"{'signed' if f.signed else 'unsigned'} {f.width} bits)" if f else "absent)"))
        return out

    # ---- identity --------------------------------------------------------------------------
    def to_json(self) -> dict:
        d = asdict(self)
        d["fields"] = [asdict(f) for f in self.fields]
        if not self.resident:  # absent when false: the fabrics (and ids) from before it existed
            del d["resident"]
        return d

    @classmethod
    def from_json(cls, d: dict) -> "Fabric":
        return cls(d["lanes"], d["T"], tuple(d["input_shape"]), d["pixel_bits"], d["num_classes"],
                   tuple((k, v) for k, v in d["widths"]), tuple((k, v) for k, v in d["depths"]),
                   tuple(FieldShape(**f) for f in d["fields"]), tuple(d["single_port"]),
                   tuple((k, v) for k, v in d.get("tile_limits", ())), bool(d.get("resident", False)))

    @property
    def fabric_id(self) -> int:
        """CRC-32 of the canonical JSON: equal fabrics, equal RTL."""
        return zlib.crc32(json.dumps(self.to_json(), sort_keys=True).encode())
