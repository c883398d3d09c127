"""The layer program: an artifact compiled for the whole-network accelerator.

The accelerator (:mod:`csdformer.hw.accelerator`) runs a fixed list of *ops*, each over the
window's frames, on shared memories. This module decides everything that does not depend on an
image: which layers fuse into one op, where each tensor lives, the address-generator constants of
each op, the ROM contents (weights, biases, thresholds) and every width. The RTL only reads a
:class:`Program`; the cycle model (:mod:`csdformer.hw.netmodel`) reads the same one.

Layouts (``P`` = lanes). Every tensor is ``rows × cols`` with the columns padded to whole groups
of ``P`` (``G = ceil(cols / P)`` words a row, row-major): grids ``(C, H, W)`` as rows ``y·W + x``
and columns ``C`` (so a grid and its flattened tokens are the same words), tokens ``(N, C)`` as
they are, attention scores ``(heads, N, N)`` as rows ``h·N + i``. Spike tensors keep all ``T``
frames (one bit a neuron) in SPK; currents that must be kept (the residual stream) keep all ``T``
frames in CUR; a synaptic layer feeding one DIF never stores its current (it is fused: one frame
of current in ACC, integrated at once). The ``k`` operand of ``q·kᵀ`` gets a transposed copy
(rows = channels) so that a lane word holds one channel over ``P`` tokens.

Ops (``Op.src`` / ``Op.sink``):

- ``syn``: event-driven scatter of a spike frame through a conv / linear / head: every spike adds
  its weight row (``K·K`` taps × ``G_out`` words) into ACC.
- ``img``: the encoding conv: every set bit ``b`` of a pixel is an event adding ``w << b``.
- ``tdec``: TDEC matmul row scatter: every element of ``a`` with ``Acum(t) > 0`` adds
  ``a(t)·Bcum(t)[k,:] + Acum(t−1)·b(t)[k,:]`` to its output row.
- ``cur``: no scatter; the sink reads a stored current.
- ``maxpool`` / ``transpose``: spike-to-spike ops with their own passes (the max-pool counting its
  input itself).

Sinks: ``dif`` (integrate ACC << shift and/or a stored current, fire, reset; ``T + D`` steps),
``store`` (CUR ← ACC [+ stored current]: a residual add), ``logits`` (ACC sums all frames).
Where the units are not compact (:attr:`Program.store_dif`) a store is fused with the DIF layer
that reads the stored current (the quantizer after a residual add): one ``dif`` op whose sink
also stores (``store``), writing CUR ``sto`` words from the stored input's, in the same passes,
so no op reads the current back.
"""

from __future__ import annotations


from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
from amaranth.hdl import signed, unsigned
from amaranth.lib import data, enum

from ..artifact import Artifact, Layer
from ..artifact.schema import bounds as artifact_bounds
from ..artifact.schema import signed_bits
from .common import FitError, HwParamError, unsigned_bits

__all__ = ["Program", "Op", "Tile", "Tensor", "Src", "Sink", "compile_program", "TARGETS", "SINGLE_PORT_OK", "FIELDS"]

# Memories that may be single-port: only the sink touches them, so a half-rate sink suffices.
SINGLE_PORT_OK = ("cur", "mem", "weight")  # weight: each buffer slot its own single-port RAM

SYNAPTIC = ("encode_conv", "conv", "linear", "head")

# On-chip memory a target offers, in bits (block RAM + SPRAM), for the "too large" check.
TARGETS: dict[str, int] = {
    "ice40up5k": 30 * 4096 + 4 * 256 * 1024,
    "ecp5-25f": 56 * 18432,
    "ecp5-85f": 208 * 18432,
    "unlimited": 1 << 62,
}


@dataclass
class Tensor:
    """Where one tensor lives: memory (``spk`` or ``cur``), base word, geometry."""

    name: str
    memory: str  # "spk" | "cur"
    rows: int
    cols: int
    lanes: int
    shape: tuple[int, ...]
    base: int = 0
    transposed_of: str | None = None
    grid: bool = False  # shape (C, H, W) stored as rows y·W + x, columns C

    @property
    def groups(self) -> int:
        return -(-self.cols // self.lanes)

    @property
    def words(self) -> int:
        """Words of one frame."""
        return self.rows * self.groups

    def to_words(self, x: np.ndarray) -> np.ndarray:
        """``(..., *shape)`` natural values → ``(..., rows, groups·P)`` in this layout (zero pad)."""
        lead = x.shape[: x.ndim - len(self.shape)]
        if self.grid:
            m = np.moveaxis(x.reshape(lead + (self.shape[0], -1)), -2, -1)  # grid (C,H,W) → (HW, C)
        else:
            m = x.reshape(lead + (self.rows, self.cols))
        out = np.zeros(lead + (self.rows, self.groups * self.lanes), dtype=x.dtype)
        out[..., : self.cols] = m
        return out

    def from_words(self, m: np.ndarray) -> np.ndarray:
        """Inverse of :meth:`to_words`."""
        lead = m.shape[:-2]
        m = m[..., : self.cols]
        if self.grid:
            return np.moveaxis(m, -1, -2).reshape(lead + self.shape)
        return m.reshape(lead + self.shape)


class Src(enum.Enum, shape=3):
    """What an op's frames start with: a scatter (``SYN``, ``IMG``, ``TDEC``), a stored current
    for the sink (``CUR``), or a spike-to-spike op with passes of its own."""

    NONE = 0
    SYN = 1
    IMG = 2
    TDEC = 3
    CUR = 4
    MAXPOOL = 5
    TRANSPOSE = 6


class Sink(enum.Enum, shape=2):
    """What an op does with its current: integrate and fire (``DIF``), store it to CUR (``STORE``,
    the residual add), or sum every frame into the logits (``LOGITS``)."""

    NONE = 0
    DIF = 1
    STORE = 2
    LOGITS = 3


SCATTER_SRC = (Src.SYN, Src.IMG, Src.TDEC)

# The op fields each phase unit reads, by group: the hardware's op register is a StructLayout of
# these (:attr:`Program.layout`, widths from the values), so a field the compiler sets that is not
# declared here fails when the program is compiled, and one the hardware reads that is not declared
# fails when it is elaborated.
FIELDS: dict[str, tuple[str, ...]] = {
    # frame addressing (the sequencer): base of frame 1 and the step to the next frame
    "frame": ("src", "src_step", "b", "b_step", "cur", "cur_step", "out", "out_step"),
    "scatter": ("img", "tdec", "words_m1", "n0_m1", "n1_m1", "e_base", "e_j0", "e_j1", "e_j2", "b_base", "b_j0",
                "b_j1", "b_j2", "fa_j0", "fa_j1", "fa_j2", "fw_j0", "fw_j1", "fw_j2", "fa_c", "fa_r", "fa_cr", "fw_c",
                "fw_r", "fw_cr", "f0_m1", "f1_m1", "f2_m1",
                "pad", "hout", "wout", "check", "last_lanes", "acum", "bcum", "bmul"),
    "bias": ("has_bias", "base", "words", "groups_m1"),
    "cumulate": ("use_b", "base", "words"),
    "maxpool": ("out_words", "k_m1", "taps", "cum", "prev", "e_j0", "e_j1", "e_j2", "fa_j0", "fa_j1",
                "n0_m1", "n1_m1"),
    "transpose": ("rows", "groups", "row_groups", "row_groups_m1", "in_step", "out_step"),
    "sink": ("dif", "use_acc", "use_cur", "shift", "prm_base", "prm_scalar", "words", "groups_m1", "skip",
             "store", "sto"),
}
SOURCE_GROUP = {Src.SYN: "scatter", Src.IMG: "scatter", Src.TDEC: "scatter", Src.MAXPOOL: "maxpool",
                Src.TRANSPOSE: "transpose"}


@dataclass(frozen=True)
class Tile:
    """The output lane groups ``[first, first + groups)`` of a synaptic op whose weight block is
    larger than the weight buffer: tile ``index`` of ``count``. Each tile is an op of its own over
    all frames (its DIF neurons are independent of the other tiles'), so every weight is still
    loaded once an image; its current (ACC) and potentials (MEM) are compact (``groups`` words a
    row), its output words are those of its groups in the layer's tensor (the sink skips the
    others)."""

    index: int
    count: int
    first: int
    groups: int


@dataclass
class Op:
    """One op of the program. ``f`` holds the compiler's integer facts about it (geometry, address
    constants, the cycle model's fan-out); :meth:`Program.fields` picks what the hardware loads
    when the op starts, by the groups of :data:`FIELDS`. ``tile``: the op is one output tile of
    its layer (:class:`Tile`); ``label`` names it apart from its sibling tiles."""

    name: str  # the artifact layer whose output it makes
    src: Src
    sink: Sink
    layers: tuple[str, ...]  # the artifact layers it covers
    f: dict = field(default_factory=dict)  # integer facts (address constants, sizes, flags)
    bmul: list[int] = field(default_factory=list)  # lane index b → address offset of its row
    refs: dict = field(default_factory=dict)  # field → tensor whose base it holds (set by allocation)
    weights: np.ndarray | None = None  # (words, P) int: the op's weight block (scatter SYN / IMG ops)
    tile: Tile | None = None

    @property
    def label(self) -> str:
        """The op's name, with ``[i/n]`` for tile ``i`` of ``n`` (unique in a program)."""
        return self.name if self.tile is None else f"{self.name}[{self.tile.index + 1}/{self.tile.count}]"


@dataclass
class Program:
    """A compiled artifact: ops, tensors, the model's tables, widths, memory depths.

    ``widths`` / ``depths`` are what the hardware is built with: the program's own needs
    (``natural_widths`` / ``natural_depths``), or those of the ``fabric`` it was compiled into
    (:mod:`csdformer.hw.fabric`). ``weights`` is every op's block, concatenated (``op.f["w_base"]``
    is a block's first word there); the hardware holds one block at a time per buffer slot, so the
    scatter addresses a block from 0, or with ``resident`` weights all of them at once, each from its
    ``w_base`` (added to the op word's ``b_base``)."""

    artifact: Artifact
    lanes: int
    T: int
    ops: list[Op]
    tensors: dict[str, Tensor]
    spike_layers: list[str]  # artifact spike layers, verified through the debug port
    weights: np.ndarray  # (words, P) int
    biases: np.ndarray  # (words, P) int
    thresholds: np.ndarray  # (words, P) int
    v0: np.ndarray  # (words, P) int
    widths: dict[str, int]
    depths: dict[str, int]
    input_shape: tuple[int, int, int]
    pixel_bits: int
    num_classes: int
    single_port: tuple[str, ...] = ()  # memories built single-port (SPRAM); see compile_program
    natural_widths: dict = field(default_factory=dict)
    natural_depths: dict = field(default_factory=dict)
    fabric: "Fabric | None" = None
    tile_limits: dict = field(default_factory=dict)  # "weight" / "acc" → the words it was tiled for (or None)
    # Every op's weights held on chip at once (``op.f["w_base"]`` on), loaded once after reset;
    # else two buffer slots that the loader refills for every image (see compile_program).
    resident: bool = False

    @property
    def op_slots(self) -> int:
        """Op words the staging RAM holds: every op's (resident: as many as the fabric's ops), else
        two (the current op's and the next one's)."""
        return self.depths["ops"] if self.resident else 2

    @property
    def compact(self) -> bool:
        """Whether the units are built for few logic cells rather than for a clock over wide
        routing: CUR or MEM single-port, the iCEBreaker's configuration (its logic cells nearly all
        used, its clock 30 MHz), against the ECP5 builds (dual-port memories, a 100 MHz floor).
        Decided by the memories; it decides :attr:`sink_gap`, :attr:`acc_buffers`, the scatter's
        word queue and walks (:func:`csdformer.hw.scatter.skid`, :mod:`csdformer.hw.scatter_walk`:
        with the wide ones each step's increment has its adder, from registers), the sink's ACC
        stage (:func:`csdformer.hw.sink.acc_stage`) and the model loader's state encoding (one-hot
        only where not compact: its state decode was a ULX3S critical path; on the iCEBreaker the
        extra flip-flops left nextpnr no legal placement)."""
        return _compact(self.single_port)

    @property
    def pool_counts(self) -> bool:
        """Whether the max-pool counts its input itself (:mod:`csdformer.hw.maxpool`: ``K·K`` cycles
        an output word, no cumulative-count pass before it, no stored previous maxes; its windows
        may not overlap) rather than after :mod:`csdformer.hw.cumulate`'s pass (``K·K + 1``): where
        the units are not compact (its SPK read port and count writes; the iCEBreaker's logic cells
        are nearly all used: with it, 5,133 of 5,280 and 28.2 MHz). Decided by the memories, as
        :attr:`store_dif` is."""
        return not self.compact

    @property
    def store_dif(self) -> bool:
        """Whether a store is fused with the DIF layer that reads its current (module docstring):
        where the units are not compact (the sink's second CUR write cursor; the iCEBreaker's
        logic cells are nearly all used). Decided by the memories, as :attr:`sink_tail` is."""
        return not self.compact

    @property
    def sink_gap(self) -> int:
        """Cycles between the sink's words: 2 when a memory the sink reads and writes
        (``cur``, ``mem``) is single-port (reads and writes then take alternate cycles), else 1."""
        return 2 if self.compact else 1

    @property
    def acc_buffers(self) -> int:
        """ACC's buffers: 2 (a double buffer: the sink of step ``t − 1`` reads and clears one while
        the scatter of step ``t`` accumulates into the other, so the two run side by side; the
        buffer is a frame's ``bank``), or 1 where CUR or MEM is single-port, the iCEBreaker's
        configuration, whose block RAMs and logic cells are nearly all used. Decided by the
        memories, as :attr:`sink_gap` is."""
        return 1 if self.compact else 2

    @property
    def sink_tail(self) -> bool:
        """Whether a DIF op's fire-only sink passes (steps ``T < t ≤ T + D``: no current, the
        neurons only fire) run as the sink's tail, beside the next op's first step, while the
        sequencer goes on (:mod:`csdformer.hw.sequencer`): where the units are not compact (the
        tail holds a copy of the sink's op fields and its own frame; the iCEBreaker's logic cells
        are nearly all used). Decided by the memories, as :attr:`acc_buffers` is."""
        return not self.compact

    def port_shape(self, name: str) -> tuple[int, int]:
        """(address range, word width) of a unit's port on memory ``name``: :meth:`memory_shape`,
        but ACC's address holds its buffer above the word (a bit more, with two buffers)."""
        depth, width = self.memory_shape(name)
        if name == "acc" and self.acc_buffers > 1:
            depth = self.acc_buffers << max(1, (depth - 1).bit_length())
        return depth, width

    @property
    def n_pixels(self) -> int:
        c, h, w = self.input_shape
        return c * h * w

    MEMORIES = ("spk", "cur", "acc", "mem", "cnt", "img", "weight", "bias", "threshold", "v0")

    def memory_shape(self, name: str) -> tuple[int, int]:
        """(depth, word width) of on-chip memory ``name`` (:data:`MEMORIES`): a word holds ``P`` lanes,
        but SPK's (a bit a lane) and IMG's (one pixel)."""
        P, w, d = self.lanes, self.widths, self.depths
        if name == "spk":
            return d["spk"], P
        if name == "img":
            return d["img"], w["pixel"]
        return d["param" if name in ("threshold", "v0") else name], P * w[name]

    def memory_bits(self) -> dict[str, int]:
        """Bits of each on-chip memory; thresholds and ``v0`` together as ``param``; ACC's buffers
        (:attr:`acc_buffers`); the weight buffer's two slots (resident: every op's weights, once) and the op staging RAM
        (:attr:`op_slots` op words) as ``weight`` and ``op``."""
        bits = {n: d * w for n, (d, w) in ((n, self.memory_shape(n)) for n in self.MEMORIES)}
        bits["param"] = bits.pop("threshold") + bits.pop("v0")
        bits["acc"] *= self.acc_buffers
        if not self.resident:
            bits["weight"] *= 2
        bits["op"] = self.op_slots * 8 * -(-self.layout.size // 8)
        return bits

    def describe(self) -> dict:
        """A JSON-able description (ports, memories, parameters, tensor map, ops)."""
        return {
            "lanes": self.lanes,
            "T": self.T,
            "input_shape": list(self.input_shape),
            "pixel_bits": self.pixel_bits,
            "num_classes": self.num_classes,
            "widths": dict(self.widths),
            "depths": dict(self.depths),
            "resident": self.resident,  # every op's weights on chip (else two slots, refilled an image)
            "memory_bits": self.memory_bits(),
            "tensors": {n: {"memory": t.memory, "base": t.base, "rows": t.rows, "cols": t.cols,
                            "groups": t.groups, "words_per_frame": t.words, "shape": list(t.shape),
                            "transposed_of": t.transposed_of} for n, t in self.tensors.items()},
            "ops": [{"name": o.label, "src": o.src.name.lower(), "sink": o.sink.name.lower(), "layers": list(o.layers)}
                    for o in self.ops],
        }

    # ---- the typed op program ---------------------------------------------------------------
    def fields(self, op: Op) -> dict:
        """What the hardware loads when ``op`` starts, by the groups of :data:`FIELDS` (the source
        group of its kind only: the groups share bits, :attr:`layout`)."""
        f, P = op.f, self.lanes
        frame = {"src": f.get("src_base", 0), "src_step": f.get("src_wpf", 0), "b": f.get("b_spk", 0),
                 "b_step": f.get("b_wpf", 0), "cur": f.get("cur_base", 0), "cur_step": f.get("cur_wpf", 0),
                 "out": f.get("out_base", 0), "out_step": f.get("out_wpf", 0)}
        out = {"src": op.src, "sink": op.sink, "frame": frame}
        if op.src in SCATTER_SRC:
            sc = {k: f[k] for k in ("e_base", "e_j0", "e_j1", "e_j2", "b_base", "b_j0", "b_j1", "b_j2", "fa_j0",
                                    "fa_j1", "fa_j2", "fw_j0", "fw_j1", "fw_j2", "pad", "hout", "wout", "check",
                                    "last_lanes")}
            sc.update({k: f.get(k, 0) for k in ("acum", "bcum")})  # TDEC only
            # A conv's tap skips (:class:`~csdformer.hw.scatter_walk.TapWalk`); none without the check
            sc.update({k: f.get(k, 0) if f["check"] else 0 for k in ("fa_c", "fa_r", "fa_cr", "fw_c", "fw_r", "fw_cr")})
            if self.resident and op.weights is not None:  # the block's rows where it is held
                sc["b_base"] += f["w_base"]
            sc.update(img=int(op.src is Src.IMG), tdec=int(op.src is Src.TDEC), words_m1=f["words"] - 1,
                      n0_m1=f["n0"] - 1, n1_m1=f["n1"] - 1, f0_m1=f["f0"] - 1, f1_m1=f["f1"] - 1,
                      f2_m1=f["f2"] - 1, bmul=[int(v) for v in op.bmul] if op.bmul else [0] * P)
            out["source"] = {"scatter": sc}
            out["bias"] = {"has_bias": f["has_bias"], "base": f.get("bias_base", 0), "words": f["acc_words"],
                           "groups_m1": f["acc_groups"] - 1}
        elif op.src is Src.MAXPOOL:
            out["source"] = {"maxpool": {
                "out_words": f["sink_words"], "k_m1": f["K"] - 1, "taps": f["taps"],
                "cum": f["cum"], "prev": f["prev"], "e_j0": f["e_j0"], "e_j1": f["e_j1"], "e_j2": f["e_j2"],
                "fa_j0": f["fa_j0"], "fa_j1": f["fa_j1"], "n0_m1": f["n0"] - 1, "n1_m1": f["n1"] - 1}}
        elif op.src is Src.TRANSPOSE:
            out["source"] = {"transpose": {
                "rows": f["rows"], "groups": f["groups"], "row_groups": f["row_groups"],
                "row_groups_m1": f["row_groups"] - 1, "in_step": f["tr_in_step"], "out_step": f["tr_out_step"]}}
        if op.src is Src.TDEC:
            out["cumulate"] = {"use_b": 1, "base": f["bcum"], "words": f["b_wpf"]}
        elif op.src is Src.MAXPOOL and not self.pool_counts:
            out["cumulate"] = {"use_b": 0, "base": f["cum"], "words": f["in_words"]}
        if op.sink in (Sink.DIF, Sink.STORE):
            out["sink"] = op.sink
            out["sink_fields"] = {"dif": int(op.sink is Sink.DIF), "use_acc": f["use_acc"], "use_cur": f["use_cur"],
                                  "shift": f["shift"], "prm_base": f.get("prm_base", 0),
                                  "prm_scalar": f.get("prm_scalar", 0), "words": f["sink_words"],
                                  "groups_m1": f["sink_groups"] - 1, "skip": f.get("skip", 0),
                                  "store": int("sto_base" in f),
                                  "sto": f["sto_base"] - f["cur_base"] if "sto_base" in f else 0}
        return out

    def field_values(self) -> dict[tuple[str, str], list[int]]:
        """Every value each op field takes over the program, by ``(group, field)``."""
        values: dict[tuple[str, str], list[int]] = {}
        for op in self.ops:
            fl = self.fields(op)
            groups = [("frame", fl["frame"])] + list(fl.get("source", {}).items())
            groups += [(g, fl[g]) for g in ("bias", "cumulate") if g in fl]
            groups += [("sink", fl["sink_fields"])] if "sink_fields" in fl else []
            for group, d in groups:
                for k, v in d.items():
                    if k not in FIELDS[group]:
                        raise HwParamError(f"op {op.name!r}: field {group}.{k} does not exist")
                    values.setdefault((group, k), []).extend(v if isinstance(v, list) else [v])
        return values

    def natural_fields(self) -> list[tuple[str, str, object]]:
        """``(group, field, shape)`` of every op field, as wide as this program's values need."""
        values = self.field_values()

        def shape(group, k):
            vs = values.get((group, k), [0])
            lo, hi = min(vs), max(vs)
            if (group, k) in (("sink", "skip"), ("sink", "store"), ("sink", "sto"), ("maxpool", "prev")) and lo == hi == 0:
                return unsigned(0)  # no output tiles, no fused store, no stored maxes: built without them
            return signed(signed_bits(lo, hi)) if lo < 0 else unsigned(max(1, unsigned_bits(hi)))

        return [(g, k, data.ArrayLayout(shape(g, k), self.lanes) if k == "bmul" else shape(g, k))
                for g in FIELDS for k in FIELDS[g]]

    @cached_property
    def layout(self) -> data.StructLayout:
        """The op register: ``src`` (:class:`Src`), ``sink`` (:class:`Sink`), ``frame``, ``source``
        (a union of the scatter, max-pool and transpose groups), ``bias``, ``cumulate`` and
        ``sink_fields``; each field as wide as the program's values need, or as the fabric's."""
        if self.fabric is not None:
            shapes = {(f.group, f.name): f.shape() for f in self.fabric.fields}
        else:
            shapes = {(g, k): s for g, k, s in self.natural_fields()}

        def struct(group):
            return data.StructLayout({k: shapes[(group, k)] for k in FIELDS[group]})

        return data.StructLayout({
            "src": Src, "sink": Sink, "frame": struct("frame"),
            "source": data.UnionLayout({g: struct(g) for g in ("scatter", "maxpool", "transpose")}),
            "bias": struct("bias"), "cumulate": struct("cumulate"), "sink_fields": struct("sink")})

    def encode(self, op: Op) -> int:
        """``op``'s fields as the bits of :attr:`layout` (a field that does not exist: HwParamError)."""
        fl = dict(self.fields(op))
        fl["sink_fields"] = fl.get("sink_fields", {})
        fl["bias"], fl["cumulate"] = fl.get("bias", {}), fl.get("cumulate", {})
        try:
            return self.layout.const(fl).as_bits()
        except (ValueError, TypeError) as e:
            raise HwParamError(f"op {op.name!r}: {e}") from None


def _compact(single_port) -> bool:
    """:attr:`Program.compact` of a program with these single-port memories."""
    return bool({"cur", "mem"} & set(single_port))


class _Compiler:
    def __init__(self, a: Artifact, lanes: int, weight_depth: int | None = None, acc_depth: int | None = None,
                 compact: bool = True):
        self.a, self.P, self.T = a, lanes, a.T
        # Not compact: each store fused with the DIF layer reading it (Program.store_dif), the
        # max-pool counting its input itself (Program.pool_counts)
        self.store_dif = self.pool_counts = not compact
        self.stored_with: dict[str, str] = {}  # DIF layer → the stored tensor whose op fires it
        self.weight_depth = weight_depth  # the weight buffer's words: larger blocks are tiled
        self.acc_depth = acc_depth  # ACC's and MEM's words: larger currents are tiled
        self.bias_base_of: dict[str, int] = {}  # layer → its first bias row
        self.prm_base_of: dict[str, int] = {}  # DIF layer → its first threshold / v0 row
        self.unsplit: list[HwParamError] = []  # blocks too large for the buffer that no tiling fits
        self.b = artifact_bounds(a)
        self.by_name = {layer.name: layer for layer in a.layers}
        self.consumers: dict[str, list[Layer]] = {}
        for layer in a.layers:
            for s in layer.inputs:
                self.consumers.setdefault(s, []).append(layer)
        self.tensors: dict[str, Tensor] = {}
        self.ops: list[Op] = []
        self.spk_top = 0
        self.cur_top = 0
        self.w_rows: list[np.ndarray] = []
        self.bias_rows: list[np.ndarray] = []
        self.th_rows: list[np.ndarray] = []
        self.v0_rows: list[np.ndarray] = []
        self.alias: dict[str, str] = {}  # flatten → its input

    # ---- helpers ----------------------------------------------------------------------------
    def err(self, layer: Layer, msg: str) -> HwParamError:
        return HwParamError(f"layer {layer.name!r} ({layer.kind}): {msg}")

    def layout(self, name: str) -> tuple[int, int, bool]:
        """(rows, cols, grid) of a layer's output tensor."""
        layer = self.by_name[name]
        shape = tuple(layer.shape)
        scores = layer.kind == "tdec_matmul" and layer.attrs["operands"] == "q_kT" or (
            layer.kind == "dif" and self.by_name[layer.inputs[0]].kind == "tdec_matmul"
            and self.by_name[layer.inputs[0]].attrs["operands"] == "q_kT")
        if scores:
            return shape[0] * shape[1], shape[2], False
        if len(shape) == 3:
            return shape[1] * shape[2], shape[0], True
        if len(shape) == 2:
            return shape[0], shape[1], False
        return 1, shape[0], False

    def tensor(self, name: str, memory: str) -> Tensor:
        """Place layer ``name``'s output (all ``T`` frames) at the top of ``memory`` (spk or cur)."""
        rows, cols, grid = self.layout(name)
        top = memory + "_top"
        t = Tensor(name, memory, rows, cols, self.P, tuple(self.by_name[name].shape), base=getattr(self, top), grid=grid)
        setattr(self, top, getattr(self, top) + t.words * self.T)
        self.tensors[name] = t
        return t

    def resolve(self, name: str) -> str:
        while name in self.alias:
            name = self.alias[name]
        return name

    def users(self, name: str) -> list[Layer]:
        out = []
        for c in self.consumers.get(name, []):
            out.extend(self.users(c.name) if c.kind == "flatten" else [c])
        return out

    def lane_rows(self, arr: np.ndarray, groups: int) -> np.ndarray:
        """A per-column vector → ``groups`` words of ``P`` lanes (zero pad)."""
        out = np.zeros(groups * self.P, dtype=np.int64)
        out[: arr.size] = arr.reshape(-1)
        return out.reshape(groups, self.P)

    # ---- compile ----------------------------------------------------------------------------
    def run(self) -> None:
        a = self.a
        # Which current layers are fused into the op of their single consumer.
        self.fused_into: dict[str, str] = {}
        for layer in a.layers:
            if layer.kind in SYNAPTIC[:-1] + ("tdec_matmul",):
                users = self.users(layer.name)
                direct = self.consumers.get(layer.name, [])
                if len(direct) == 1 and direct[0].kind in ("dif", "add") and len(users) == 1:
                    self.fused_into[layer.name] = direct[0].name
        for layer in a.layers:
            if layer.kind == "add":
                prods = [s for s in layer.inputs if self.fused_into.get(s) == layer.name]
                if len(prods) != 1:
                    raise self.err(layer, "the accelerator adds a synaptic layer's current to a stored one; "
                                          "this add has " + ("two stored inputs" if not prods else "two fused inputs"))
        # Spike tensors first, so every op knows every address.
        self.spike_layers = [layer.name for layer in a.layers if layer.kind in ("dif", "maxpool")]
        for name in self.spike_layers:
            self.tensor(name, "spk")
        for layer in a.layers:
            if layer.kind == "tdec_matmul" and layer.attrs["operands"] == "q_kT":
                k = self.tensors[layer.inputs[1]]
                t = Tensor(k.name + ".T", "spk", k.cols, k.rows, self.P, k.shape, base=self.spk_top,
                           transposed_of=k.name)
                self.spk_top += t.words * self.T
                self.tensors[t.name] = t
        for layer in a.layers:
            if layer.kind == "flatten":
                self.alias[layer.name] = layer.inputs[0]
            elif layer.kind in SYNAPTIC + ("tdec_matmul",) and layer.name not in self.fused_into \
                    and layer.kind != "head":
                self.tensor(layer.name, "cur")
            elif layer.kind == "add":
                self.tensor(layer.name, "cur")
        for layer in a.layers:
            self.emit(layer)

    def emit(self, layer: Layer) -> None:
        k = layer.kind
        if k in SYNAPTIC + ("tdec_matmul",):
            if layer.name in self.fused_into:
                return  # emitted with its consumer
            if k == "head":
                self.emit_producer(layer, sink=Sink.LOGITS, out=layer.name, cur_a=None)
            else:
                self.emit_store(layer, layer.name, cur_a=None)
        elif k == "dif":
            src = layer.inputs[0]
            if layer.name in self.stored_with:
                return  # emitted with the store of its current (emit_store)
            if self.fused_into.get(src) == layer.name:
                self.emit_producer(self.by_name[src], sink=Sink.DIF, out=layer.name, cur_a=None, dif=layer)
            else:
                op = Op(layer.name, Src.CUR, Sink.DIF, (layer.name,))
                self.sink_fields(op, self.tensors[layer.name], dif=layer, cur_a=self.resolve(src), use_acc=False)
                self.ops.append(op)
            self.emit_transposes(layer)
        elif k == "add":
            prod = next(s for s in layer.inputs if self.fused_into.get(s) == layer.name)
            other = self.resolve(next(s for s in layer.inputs if s != prod) if layer.inputs[0] != layer.inputs[1] else prod)
            self.emit_store(self.by_name[prod], layer.name, cur_a=other)
        elif k == "maxpool":
            self.emit_maxpool(layer)

    def emit_transposes(self, dif: Layer) -> None:
        """The transposed copy of a DIF layer that is the ``k`` operand of ``q·kᵀ``, after its op."""
        for user in self.consumers.get(dif.name, []):
            if user.kind == "tdec_matmul" and user.attrs["operands"] == "q_kT" and user.inputs[1] == dif.name:
                self.emit_transpose(dif.name)
                break

    def emit_store(self, layer: Layer, out: str, *, cur_a: str | None) -> None:
        """The op(s) storing synaptic layer ``layer``'s current (``+ cur_a``: a residual add) as
        tensor ``out``; with :attr:`store_dif`, fused with the first DIF layer that reads ``out``
        (a ``dif`` op whose sink also stores: module docstring)."""
        q = next((u for u in self.users(out) if u.kind == "dif" and self.resolve(u.inputs[0]) == out), None)
        if not self.store_dif or q is None:
            self.emit_producer(layer, sink=Sink.STORE, out=out, cur_a=cur_a)
            return
        self.stored_with[q.name] = out
        self.emit_producer(layer, sink=Sink.DIF, out=q.name, cur_a=cur_a, dif=q, store=out)
        self.emit_transposes(q)

    # ---- producers (scatter sources) -------------------------------------------------------
    def emit_producer(self, layer: Layer, *, sink: Sink, out: str, cur_a: str | None, dif: Layer | None = None,
                      store: str | None = None) -> None:
        """The op(s) of synaptic layer ``layer`` into tensor ``out`` through ``sink`` (``cur_a``: a
        stored current added; ``dif``: the DIF layer; ``store``: the tensor a DIF op also stores its
        current to, :meth:`emit_store`)."""
        P = self.P
        for tile in self.tiles(layer, sink, self.tensors[out].rows if sink is not Sink.LOGITS else 1):
            covers = [layer.name] + [n for n in (store, out) if n is not None and n != layer.name]
            op = Op(out, {"encode_conv": Src.IMG, "tdec_matmul": Src.TDEC}.get(layer.kind, Src.SYN), sink,
                    tuple(covers), tile=tile)
            f = op.f
            if layer.kind == "tdec_matmul":
                acc_rows, acc_cols = self.tdec_fields(op, layer)
            else:
                acc_rows, acc_cols = self.syn_fields(op, layer)
            g_out = tile.groups if tile else -(-acc_cols // P)
            f["acc_words"] = acc_rows * g_out
            f["acc_groups"] = g_out
            if sink is Sink.LOGITS:
                f["num_classes"] = acc_cols
            if sink is Sink.DIF:
                self.sink_fields(op, self.tensors[out], dif=dif, cur_a=cur_a, use_acc=True,
                                 shift=layer.attrs.get("shift", 0) if layer.kind == "tdec_matmul" else 0,
                                 store=store)
            elif sink is Sink.STORE:
                self.sink_fields(op, self.tensors[out], dif=None, cur_a=cur_a, use_acc=True)
            self.ops.append(op)

    def tiles(self, layer: Layer, sink: Sink, rows: int) -> list[Tile | None]:
        """The output tiles of a synaptic layer of ``rows`` output rows: ``[None]`` when its weight
        block fits the weight buffer and its current (``rows`` × its lane groups) fits ACC and MEM
        (or there are no limits), else as few tiles of whole lane groups as fit, balanced."""
        if (self.weight_depth is None and self.acc_depth is None) or layer.kind not in SYNAPTIC:
            return [None]
        w = layer.arrays["weight"]
        groups = -(-w.shape[0] // self.P)
        per_group = int(np.prod(w.shape[1:]))  # words a lane group: cin · K · K
        wd = self.weight_depth or per_group * groups
        ad = self.acc_depth or rows * groups
        if per_group * groups <= wd and rows * groups <= ad:
            return [None]
        if sink not in (Sink.DIF, Sink.STORE) or per_group > wd:
            if per_group * groups > wd:
                what = "the head's block" if sink is Sink.LOGITS else f"one lane group's block ({per_group} words)"
                self.unsplit.append(FitError(f"layer {layer.name!r} ({layer.kind}): weights of {per_group * groups} "
                                             f"words do not fit the weight buffer of {wd} words, and {what} "
                                             "cannot be split"))
            return [None]  # (a current larger than ACC: the natural depth grows; a fabric's check names it)
        count = -(-groups // max(1, min(wd // per_group, ad // rows)))
        sizes = [groups // count + (i < groups % count) for i in range(count)]
        return [Tile(i, count, sum(sizes[:i]), n) for i, n in enumerate(sizes)]

    def syn_fields(self, op: Op, layer: Layer) -> tuple[int, int]:
        P, f = self.P, op.f
        w = layer.arrays["weight"].astype(np.int64)
        bias = layer.arrays["bias"].astype(np.int64)
        cout = w.shape[0]
        if layer.kind == "head":
            src = self.tensors[self.resolve(layer.inputs[0])]
            cin, K, pad, hin, win = w.shape[1], 1, 0, src.rows, 1
            w4 = w.reshape(cout, cin, 1, 1)
            hout = wout = 1
            acc_rows = 1
        elif layer.kind == "linear":
            src = self.tensors[self.resolve(layer.inputs[0])]
            cin, K, pad, hin, win = w.shape[1], 1, 0, src.rows, 1
            w4 = w.reshape(cout, cin, 1, 1)
            hout, wout = hin, 1
            acc_rows = hin
        else:
            if layer.attrs.get("stride", 1) != 1:
                raise self.err(layer, f"stride {layer.attrs['stride']} is not supported (stride 1 only; "
                                      "down-sampling is done by max-pool layers)")
            if w.shape[2] != w.shape[3]:
                raise self.err(layer, "non-square kernels are not supported")
            cin, K, pad = w.shape[1], w.shape[2], layer.attrs.get("padding", 0)
            w4 = w
            if layer.kind == "encode_conv":
                _, hin, win = self.a.input.shape
            elif layer.attrs.get("layout") == "tokens":
                hin, win = layer.attrs["grid"]
            else:
                hin, win = self.by_name[layer.inputs[0]].shape[1:]
            hout, wout = hin + 2 * pad - K + 1, win + 2 * pad - K + 1
            acc_rows = hout * wout
        g_all = -(-cout // P)
        # An output tile (op.tile) takes lane groups [g0, g0 + g_out) and their weights and biases;
        # its current in ACC is compact: g_out words a row.
        g0, g_out = (op.tile.first, op.tile.groups) if op.tile else (0, g_all)
        cols = min(cout, (g0 + g_out) * P) - g0 * P  # the real output columns it makes
        # Weight block rows: [ci][ky][kx][go] → P lanes of output channels.
        wpad = np.zeros((cin, K, K, g_all * P), dtype=np.int64)
        wpad[..., :cout] = np.transpose(w4, (1, 2, 3, 0))
        f["w_base"] = sum(len(r) for r in self.w_rows)
        op.weights = wpad[..., g0 * P:(g0 + g_out) * P].reshape(-1, P)
        self.w_rows.append(op.weights)
        if layer.name not in self.bias_base_of:
            self.bias_base_of[layer.name] = sum(len(r) for r in self.bias_rows)
            self.bias_rows.append(self.lane_rows(bias, g_all))
        f["bias_base"] = self.bias_base_of[layer.name] + g0
        f["has_bias"] = 1
        kkg = K * K * g_out
        if layer.kind == "encode_conv":
            f["src_base"], f["src_wpf"] = 0, 0
            n2, n1, n0 = hin, win, cin
            grp_step = kkg  # one pixel word per channel
            f["src_frames"] = 1
        else:
            src = self.tensors[self.resolve(layer.inputs[0])]
            if src.memory != "spk":
                raise self.err(layer, "a synaptic layer's input must be a spike tensor")
            if src.cols != cin or src.rows != hin * win:
                raise self.err(layer, f"input {src.name} has {src.rows}x{src.cols} words, expected {hin * win}x{cin}")
            f["src_base"], f["src_wpf"] = src.base, src.words
            op.refs["src_base"] = src.name
            n2, n1, n0 = hin, win, src.groups
            grp_step = P * kkg
            f["src_frames"] = self.T
        op.bmul = [b * kkg for b in range(P)]
        f.update(n2=n2, n1=n1, n0=n0, words=n2 * n1 * n0)
        # Event base E: the ACC word of output position (y + pad, x + pad), group 0.
        if layer.kind == "head":
            e_s = (0, 0, 0)
            e_base = 0
        else:
            e_s = (wout * g_out, g_out, 0)
            e_base = (pad * wout + pad) * g_out
        self.affine(f, "e", e_base, e_s, (n2, n1, n0))
        self.affine(f, "b", 0, (0, 0, grp_step), (n2, n1, n0))  # the op's block, from word 0
        # Fan-out (ky, kx, go): ACC offset −(ky·Wout + kx)·G + go, weight offset (ky·K + kx)·G + go.
        fo = (K, K, g_out)
        acc_s = (0, 0, 1) if layer.kind == "head" else (-wout * g_out, -g_out, 1)
        self.affine(f, "fa", 0, acc_s, fo)
        self.affine(f, "fw", 0, (K * g_out, g_out, 1), fo)
        self.skips(f, "fa", acc_s, fo)
        self.skips(f, "fw", (K * g_out, g_out, 1), fo)
        f.update(f2=K, f1=K, f0=g_out, fanout=K * K * g_out, pad=pad, hout=hout, wout=wout,
                 check=int(layer.kind != "head"), last_lanes=cols - (g_out - 1) * P, real_cols=cols)
        return acc_rows, cout

    def tdec_fields(self, op: Op, layer: Layer) -> tuple[int, int]:
        P, f = self.P, op.f
        heads = layer.attrs["heads"]
        a_t = self.tensors[layer.inputs[0]]
        if layer.attrs["operands"] == "q_kT":
            b_t = self.tensors[layer.inputs[1] + ".T"]
            n, c = a_t.rows, a_t.cols
            d = c // heads
            if d % P:
                raise self.err(layer, f"head dimension {d} must be a multiple of lanes {P}")
            dg, gn = d // P, b_t.groups
            n2, n1, n0 = n, heads, dg
            e = (0, (gn, n * gn, 0))
            bb = (0, (0, dg * P * gn, P * gn))
            op.bmul = [b * gn for b in range(P)]
            f0 = gn
            acc_rows, acc_cols = heads * n, n
            real = n
        else:
            b_t = self.tensors[layer.inputs[1]]
            n, c = b_t.rows, b_t.cols
            d = c // heads
            if d % P:
                raise self.err(layer, f"head dimension {d} must be a multiple of lanes {P}")
            dg, gc, gn = d // P, b_t.groups, a_t.groups
            n2, n1, n0 = heads, n, gn
            e = (0, (dg, gc, 0))
            bb = (0, (dg, 0, P * gc))
            op.bmul = [b * gc for b in range(P)]
            f0 = dg
            acc_rows, acc_cols = n, c
            real = d
        f.update(n2=n2, n1=n1, n0=n0, words=a_t.words, src_base=a_t.base, src_wpf=a_t.words, src_frames=self.T,
                 has_bias=0, b_spk=b_t.base, b_wpf=b_t.words, acum=0, bcum=a_t.words)
        op.refs.update(src_base=a_t.name, b_spk=b_t.name)
        self.affine(f, "e", e[0], e[1], (n2, n1, n0))
        self.affine(f, "b", bb[0], bb[1], (n2, n1, n0))
        self.affine(f, "fa", 0, (0, 0, 1), (1, 1, f0))
        self.affine(f, "fw", 0, (0, 0, 1), (1, 1, f0))
        f.update(f2=1, f1=1, f0=f0, fanout=f0, pad=0, hout=1, wout=1, check=0,
                 last_lanes=real - (f0 - 1) * P, real_cols=real, cnt_words=a_t.words + b_t.words)
        return acc_rows, acc_cols

    @staticmethod
    def affine(f: dict, key: str, base: int, strides: tuple[int, int, int], sizes: tuple[int, int, int]) -> None:
        """Base and the increments applied when counter level 0, 1 or 2 steps (inner ones wrap)."""
        s2, s1, s0 = strides
        n2, n1, n0 = sizes
        f[key + "_base"] = base
        f[key + "_j0"] = s0
        f[key + "_j1"] = s1 - (n0 - 1) * s0
        f[key + "_j2"] = s2 - (n1 - 1) * s1 - (n0 - 1) * s0

    @staticmethod
    def skips(f: dict, key: str, strides: tuple[int, int, int], sizes: tuple[int, int, int]) -> None:
        """A fan-out's skips over taps outside the output, from a level's first step: to the next
        level-1 position (``_c``, a column), to the next level-2 one (``_r``, a row), and from the last
        column to the next row (``_cr``)."""
        s2, s1, _ = strides
        f[key + "_c"], f[key + "_r"], f[key + "_cr"] = s1, s2, s2 - (sizes[1] - 1) * s1

    # ---- sinks -------------------------------------------------------------------------------
    def sink_fields(self, op: Op, out: Tensor, *, dif: Layer | None, cur_a: str | None, use_acc: bool,
                    shift: int = 0, store: str | None = None) -> None:
        f = op.f
        f["use_acc"] = int(use_acc)
        f["shift"] = shift
        for name in (cur_a, store):
            if name is not None and (self.tensors[name].memory != "cur" or self.tensors[name].words != out.words):
                raise HwParamError(f"layer {op.name!r}: stored tensor {name!r} does not match its output layout")
        if cur_a is not None:
            ct = self.tensors[cur_a]
            f["use_cur"], f["cur_base"], f["cur_wpf"] = 1, ct.base, ct.words
            op.refs["cur_base"] = ct.name
        elif store is not None:  # the frame's CUR address moves with the stored output (read, not used)
            f["use_cur"], f["cur_base"], f["cur_wpf"] = 0, 0, self.tensors[store].words
            op.refs["cur_base"] = store
        else:
            f["use_cur"], f["cur_base"], f["cur_wpf"] = 0, 0, 0
        if store is not None:  # written at the frame's CUR address + ``sto`` (Program.fields)
            f["sto_base"] = 0
            op.refs["sto_base"] = store
        f["out_base"], f["out_wpf"] = out.base, out.words
        op.refs["out_base"] = out.name
        # A tile walks its own groups of each row (compact in ACC and MEM) and skips the others'
        # words in the output (and stored input) tensor; its bases move to its first group
        # (:func:`_allocate`).
        g0, groups = (op.tile.first, op.tile.groups) if op.tile else (0, out.groups)
        f["sink_words"] = out.rows * groups
        f["sink_groups"] = groups
        f["skip"] = out.groups - groups
        f.setdefault("acc_words", out.words)
        if dif is not None:
            th, v0 = dif.arrays["threshold"].astype(np.int64), dif.arrays["v0"].astype(np.int64)
            if dif.name in self.prm_base_of:  # a later tile: the layer's rows are there
                f["prm_scalar"] = int(th.size == 1)
                f["prm_base"] = self.prm_base_of[dif.name] + (0 if th.size == 1 else g0)
                return
            f["prm_base"] = self.prm_base_of[dif.name] = sum(len(r) for r in self.th_rows)
            if th.size == 1:
                f["prm_scalar"] = 1
                self.th_rows.append(np.full((1, self.P), int(th.reshape(-1)[0])))
                self.v0_rows.append(np.full((1, self.P), int(v0.reshape(-1)[0])))
            else:
                if th.size != out.cols:
                    raise self.err(dif, f"threshold has {th.size} values; the accelerator takes one per channel "
                                        f"({out.cols}) or one for all")
                f["prm_scalar"] = 0
                # Padded lanes: threshold 1, v0 0, no current: they never fire.
                t_rows = self.lane_rows(th, out.groups)
                t_rows.reshape(-1)[th.size:] = 1
                self.th_rows.append(t_rows)
                self.v0_rows.append(self.lane_rows(v0, out.groups))

    def emit_transpose(self, name: str) -> None:
        src, dst = self.tensors[name], self.tensors[name + ".T"]
        op = Op(dst.name, Src.TRANSPOSE, Sink.NONE, (name,))
        # Blocks of P rows × P columns: read P words (rows rg·P + r, column group g), write P words
        # (rows g·P + l of the copy, column group rg).
        op.f.update(src_base=src.base, src_wpf=src.words, rows=src.rows, groups=src.groups,
                    row_groups=dst.groups, out_base=dst.base, out_wpf=dst.words,
                    tr_in_step=self.P * src.groups, tr_out_step=self.P * dst.groups)
        op.refs.update(src_base=src.name, out_base=dst.name)
        self.ops.append(op)

    def emit_maxpool(self, layer: Layer) -> None:
        src, dst = self.tensors[layer.inputs[0]], self.tensors[layer.name]
        K, s, pad = layer.attrs["kernel"], layer.attrs["stride"], layer.attrs["padding"]
        if pad:
            raise self.err(layer, f"padding {pad} is not supported (max-pool padding 0 only)")
        _, hin, win = self.by_name[layer.inputs[0]].shape
        _, hout, wout = layer.shape
        g = src.groups
        op = Op(layer.name, Src.MAXPOOL, Sink.NONE, (layer.name,))
        f = op.f
        if (hin - K) % s or (win - K) % s:
            raise self.err(layer, "the pooling windows must tile the input exactly")
        if s < K and self.pool_counts:  # it updates its input's counts in place, each once a step (hw/maxpool.py)
            raise self.err(layer, f"stride {s} is less than the kernel {K}: overlapping max-pool windows are "
                                  "not supported")
        f.update(src_base=src.base, src_wpf=src.words, in_words=src.words, out_base=dst.base, out_wpf=dst.words,
                 K=K, taps=K * K, n2=hout, n1=wout, n0=g, sink_words=dst.words, cum=0,
                 # compact: the previous step's maxes after the counts
                 prev=0 if self.pool_counts else src.words, cnt_words=src.words + (0 if self.pool_counts else dst.words))
        op.refs.update(src_base=src.name, out_base=dst.name)
        # Output word (oy, ox, g) → its first tap's input word (oy·s·Win + ox·s)·G + g; taps (ky, kx)
        # add (ky·Win + kx)·G.
        self.affine(f, "e", 0, (s * win * g, s * g, 1), (hout, wout, g))
        self.affine(f, "fa", 0, (0, win * g, g), (1, K, K))
        self.ops.append(op)


def _allocate(c: "_Compiler", keep_spikes: bool) -> None:
    """Place tensors in SPK and CUR by liveness: a tensor lives from the op that writes it to the
    last op that reads it, and its words are reused after that. ``keep_spikes`` keeps every spike
    tensor (the debug port can then read any layer after an image: what verification needs)."""
    ops = c.ops
    made, last = {}, {}
    for i, op in enumerate(ops):
        for key, name in op.refs.items():
            if key in ("out_base", "sto_base"):
                made.setdefault(name, i)
            else:
                last[name] = i
    top = {"spk": 0, "cur": 0}
    free: dict[str, list[tuple[int, int]]] = {"spk": [], "cur": []}
    for i, op in enumerate(ops):
        for name in [n for n, j in made.items() if j == i]:
            t = c.tensors[name]
            size = t.words * c.T
            pool = free[t.memory]
            fit = next((k for k, (b, n) in enumerate(pool) if n >= size), None)
            if fit is None:
                t.base, top[t.memory] = top[t.memory], top[t.memory] + size
            else:
                b, n = pool.pop(fit)
                t.base = b
                if n > size:
                    pool.append((b + size, n - size))
        for name, j in last.items():
            t = c.tensors[name]
            if j == i and not (keep_spikes and t.memory == "spk"):
                free[t.memory].append((t.base, t.words * c.T))
    for op in ops:
        for key, name in op.refs.items():
            # A tile's output (and stored input) starts at its first lane group.
            op.f[key] = c.tensors[name].base + (op.tile.first if op.tile and key in ("out_base", "cur_base", "sto_base")
                                                else 0)
    c.spk_top, c.cur_top = top["spk"], top["cur"]


def compile_program(artifact: Artifact, lanes: int = 8, *, target: str = "unlimited",
                    keep_spikes: bool = True, single_port: tuple[str, ...] = (), fabric=None,
                    weight_depth: int | None = None, acc_depth: int | None = None, resident: bool = False) -> Program:
    """Compile ``artifact`` for ``lanes`` lanes; raise :class:`HwParamError` before any RTL exists
    if the generator cannot build it (unknown kind, unsupported geometry, widths, memory).

    ``keep_spikes=False`` lets spike tensors share SPK words by liveness (smaller; for boards):
    the debug port then no longer holds every layer after an image. ``single_port`` names the
    memories among :data:`SINGLE_PORT_OK` to build as single-port RAMs (the iCE40UP5K's SPRAM);
    the sink then takes two cycles a word (:attr:`Program.sink_gap`). ``fabric``
    (:class:`~csdformer.hw.fabric.Fabric`) compiles the artifact into a bitstream's structure:
    what does not fit is refused, naming each quantity. ``weight_depth`` is the weight buffer's
    words and ``acc_depth`` ACC's and MEM's (default: the limits the fabric was tiled for, else
    none): a synaptic op with a larger block or current is split into output tiles (:class:`Tile`).
    ``resident`` holds every op's weights on chip at once (the weight memory is all of them, no
    tiles for weights; the loader reads the records once after reset, not for every image); with a
    ``fabric``, the fabric's choice."""
    single_port = tuple(single_port)
    if fabric is not None:
        resident = fabric.resident
    if not isinstance(resident, bool):
        raise HwParamError(f"resident: must be True or False, got {resident!r}")
    if resident and "weight" in single_port:
        raise HwParamError("resident: the weights are held in one memory; it cannot also be single-port (two slots)")
    if resident:
        weight_depth = None  # no weight tiles: every block is held whole
    tiling = fabric is None or any(f.group == "sink" and f.name == "skip" and f.width for f in fabric.fields)
    if fabric is not None and tiling:  # tiled as the fabric's own program was (a fabric without tiles: none)
        # (within its buffers: the same tiles for its own program, none larger for another)
        limits, fd = dict(fabric.tile_limits), dict(fabric.depths)
        if weight_depth is None and "weight" in limits:
            weight_depth = min(limits["weight"], fd["weight"])
        if acc_depth is None and "acc" in limits:
            acc_depth = min(limits["acc"], fd["acc"])
    for key, v in (("weight_depth", weight_depth), ("acc_depth", acc_depth)):
        if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 1):
            raise HwParamError(f"{key}: must be a positive number of words, got {v!r}")
    bad = [n for n in single_port if n not in SINGLE_PORT_OK]
    if bad or len(set(single_port)) != len(single_port):
        raise HwParamError(f"single_port: {list(single_port)!r}; each of {', '.join(SINGLE_PORT_OK)} at most once")
    if not isinstance(lanes, int) or isinstance(lanes, bool) or lanes < 1 or lanes > 64 or lanes & (lanes - 1):
        raise HwParamError(f"lanes: must be a power of two in 1..64, got {lanes!r}")
    if target not in TARGETS:
        raise HwParamError(f"target: unknown {target!r}; known: {', '.join(TARGETS)}")
    for layer in artifact.layers:
        if layer.kind not in SYNAPTIC + ("dif", "maxpool", "flatten", "add", "tdec_matmul"):
            raise HwParamError(f"layer {layer.name!r} ({layer.kind}): unknown layer kind for the accelerator")
    c = _Compiler(artifact, lanes, weight_depth, acc_depth, compact=_compact(single_port))
    c.run()
    # A block no tiling fits: refused below, after the memory check (with a fabric, its own check
    # names the buffer that is too small).
    unsplit = c.unsplit[0] if c.unsplit and fabric is None else None
    _allocate(c, keep_spikes)
    P, T = lanes, artifact.T
    b = c.b
    rows = lambda lst, w=None: np.concatenate(lst) if lst else np.zeros((1, P), dtype=np.int64)  # noqa: E731
    weights, biases = rows(c.w_rows), rows(c.bias_rows)
    th, v0 = rows(c.th_rows), rows(c.v0_rows)
    acc_bits = 2
    for op in c.ops:
        if op.src in SCATTER_SRC:
            layer = c.by_name[op.layers[0]]
            lb = b[layer.name]
            if layer.kind == "head":
                acc_bits = max(acc_bits, lb["total_bits"])
            elif layer.kind == "tdec_matmul":
                sh = layer.attrs["shift"]
                acc_bits = max(acc_bits, signed_bits(lb["frame"][0] >> sh, lb["frame"][1] >> sh))
            else:
                acc_bits = max(acc_bits, lb["frame_bits"])
    cur_bits = max([b[n]["frame_bits"] for n, t in c.tensors.items() if t.memory == "cur"] or [2])
    mem_bits = max([b[n]["potential_bits"] for n in c.spike_layers if c.by_name[n].kind == "dif"] or [2])
    widths = {
        "acc": acc_bits, "cur": cur_bits, "mem": mem_bits, "cnt": unsigned_bits(T),
        "weight": signed_bits(int(weights.min()), int(weights.max())),
        "bias": signed_bits(int(biases.min()), int(biases.max())),
        "threshold": unsigned_bits(int(th.max())) + 1, "v0": signed_bits(int(v0.min()), int(v0.max())),
        "pixel": unsigned_bits(artifact.input.max_value),
    }
    widths["sum"] = max(widths["mem"], widths["cur"], acc_bits + max((op.f.get("shift", 0) for op in c.ops), default=0)) + 2
    if widths["pixel"] > 8:
        raise HwParamError(f"input.max_value: {artifact.input.max_value} needs {widths['pixel']} bits; "
                           "the accelerator takes pixels of at most 8 bits")
    if widths["mem"] > 32 or widths["acc"] > 32 or widths["cur"] > 32:
        worst = max(("mem", "acc", "cur"), key=lambda k: widths[k])
        raise HwParamError(f"bounds: the {worst} width would be {widths[worst]} bits; the accelerator's limit is 32")
    c_in, h, w = artifact.input.shape
    depths = {
        "spk": max(c.spk_top, 1), "cur": max(c.cur_top, 1),
        "acc": max([op.f.get("acc_words", 1) for op in c.ops] + [1]),
        "mem": max([op.f.get("sink_words", 1) for op in c.ops if op.sink is Sink.DIF] + [1]),
        "cnt": max([op.f.get("cnt_words", 1) for op in c.ops] + [1]),
        "img": c_in * h * w,
        "weight": max(len(weights) if resident else max([len(op.weights) for op in c.ops if op.weights is not None] + [1]), 1),
        "bias": len(biases), "param": len(th), "ops": len(c.ops),
    }
    prog = Program(artifact=artifact, lanes=P, T=T, ops=c.ops, tensors=c.tensors, spike_layers=c.spike_layers,
                   weights=weights, biases=biases, thresholds=th, v0=v0, widths=widths, depths=depths,
                   input_shape=(c_in, h, w), pixel_bits=widths["pixel"], num_classes=artifact.num_classes,
                   single_port=single_port, natural_widths=dict(widths), natural_depths=dict(depths),
                   tile_limits={"weight": weight_depth, "acc": acc_depth}, resident=resident)
    if fabric is not None:
        problems = fabric.problems(prog)
        if problems:
            more = f" (and {len(problems) - 4} more)" if len(problems) > 4 else ""
            raise HwParamError(f"{artifact.name}: does not fit the bitstream's fabric "
                               f"{fabric.fabric_id:08x}: " + "; ".join(problems[:4]) + more)
        prog.fabric = fabric
        prog.widths, prog.depths = dict(fabric.widths), dict(fabric.depths)
        prog.pixel_bits = fabric.pixel_bits
    else:
        from .fabric import Fabric

        prog.fabric = Fabric.of(prog)  # its own structure, no headroom
    for op in prog.ops:
        prog.encode(op)  # every field declared and representable, before any RTL exists
    total = sum(prog.memory_bits().values())
    if total > TARGETS[target]:
        parts = ", ".join(f"{k} {v / 1024:.0f} kbit" for k, v in prog.memory_bits().items())
        raise FitError(f"memory: {total / 1024:.0f} kbit needed, target {target} has "
                       f"{TARGETS[target] / 1024:.0f} kbit ({parts})" + (f"; and {unsplit}" if unsplit else ""))
    if unsplit is not None:
        raise unsplit
    return prog
