"""One phase unit of the accelerator over the product's memories, in the Amaranth simulator.

A :class:`PhaseRig` builds a unit's test harness the way :class:`~csdformer.hw.accelerator.Accelerator`
builds the machine: the memories are ``Accelerator(program).memories()`` (the product's widths,
depths, banks, transparency, registered writes, single-port RAMs), each of the unit's read and
write ports (``spk``, ``acc_w``, ...: the memory is the port's name without ``_w``) ``connect``\\ ed
to a port of its memory. The test then plays the sequencer: :meth:`PhaseRig.start` sets the
unit's op group (:meth:`Program.encode`), the step's frame (:func:`frame`, as
:mod:`csdformer.hw.sequencer` computes it), pulses ``start`` and counts the unit's cycles until
``done`` (inclusive: a phase's cost, the unit module's ``cycles``); :meth:`PhaseRig.window` runs
a window's steps, ``helpers`` (units started before it, e.g. the bias pass or the cumulative
counts) included. :func:`case` gives a shipped artifact's program and one image's golden frames
(the whole-network runner's trace: the golden inputs). Memories are preloaded and
read back directly (:meth:`PhaseRig.load`, :meth:`PhaseRig.dump`; :meth:`PhaseRig.load_tensor`,
:meth:`PhaseRig.read_tensor` in a :class:`~csdformer.hw.program.Tensor`'s layout), and
:func:`compare` judges a result against its golden slice, naming the first word that differs.

Corrupted-RTL variant: ``PhaseRig(..., flip=Flip("acc_w", n, b))`` inverts bit ``b`` of the data
of the unit's ``n``-th write (0-based) on that port (on a read port: of what reads of word ``n``
return), in hardware between the unit and its memory; a test asserts that its comparison then
fails.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import data
from amaranth.lib.wiring import connect
from amaranth.sim import Simulator

from ...hw.accelerator import Accelerator
from ...hw.memory import DATA_LATENCY, Q_LATENCY, ReadPort, WeightBuffer, WritePort
from ...hw.program import Program, Sink, Tensor, compile_program

__all__ = ["PhaseRig", "Flip", "frame", "steps", "acc_tensor", "op_named", "compare", "pack", "unpack", "Case", "case", "simulate"]


@dataclass(frozen=True)
class Flip:
    """Invert bit ``bit`` of the data on the unit's memory port ``port``: of its ``n``-th write
    (0-based) on a write port; of every read of word ``n`` (``data`` and ``q``) on a read port."""

    port: str
    n: int
    bit: int


def steps(program: Program, op, delay: int) -> int:
    """The steps the sequencer runs ``op`` for: ``T + D`` for a DIF op, else ``T``."""
    return program.T + delay if op.sink is Sink.DIF else program.T


def frame(program: Program, op, t: int, delay: int) -> dict:
    """``ctl.frame`` in step ``t`` (1-based) of ``op``, as the sequencer sets it (OP_START,
    OP_SETUP, NEXT): ``first`` (t = 1), ``integrate`` (t ≤ T), ``fire`` (t > D), the frame bases
    one step on per step; ``out`` moves on only after a step that fired, for a DIF op; ``bank``, the
    ACC buffer: ``t − 1`` mod 2 where the op's sink runs beside the next step's scatter
    (:func:`csdformer.hw.sequencer.lags`), else 0."""
    from ...hw.sequencer import lags

    fr = program.fields(op)["frame"]
    moved = max(0, t - 1 - delay) if op.sink is Sink.DIF else t - 1
    return {"first": int(t == 1), "integrate": int(t <= program.T), "fire": int(t > delay),
            "bank": (t - 1) % 2 if lags(op, program) else 0,
            "src": fr["src"] + (t - 1) * fr["src_step"], "b": fr["b"] + (t - 1) * fr["b_step"],
            "cur": fr["cur"] + (t - 1) * fr["cur_step"], "out": fr["out"] + moved * fr["out_step"]}


def acc_tensor(program: Program, op) -> Tensor:
    """The layout of ``op``'s current in ACC: its output tensor's, or for the head one row of
    ``num_classes`` columns."""
    if op.sink is Sink.LOGITS:
        return Tensor(op.name, "acc", 1, program.num_classes, program.lanes, (program.num_classes,))
    return program.tensors[op.name]


def simulate(top, *benches) -> None:
    """Simulate ``top`` with a 1 MHz clock until each async testbench in ``benches`` has returned."""
    sim = Simulator(top)
    sim.add_clock(1e-6)
    for b in benches:
        sim.add_testbench(b)
    sim.run()


def op_named(program: Program, name: str):
    """The op called ``name`` (or labelled so: ``rpe_add[2/4]`` is a tile)."""
    return next(op for op in program.ops if name in (op.name, op.label))


def tile_words(program: Program, op, m: np.ndarray) -> np.ndarray:
    """Words ``(..., rows, groups·P)`` of ``op``'s output tensor → the lanes of its tile (all of
    them for an op without tiles), as the tile's compact current in ACC keeps them."""
    if op.tile is None:
        return m
    P, t = program.lanes, op.tile
    return m[..., t.first * P:(t.first + t.groups) * P]


def pack(values: np.ndarray, width: int) -> list[int]:
    """``(n, P)`` lane values → ``n`` words (lane 0 in the low bits; signed values two's complement)."""
    mask = (1 << width) - 1
    out = []
    for row in np.asarray(values).reshape(len(values), -1).tolist():
        w = 0
        for i, v in enumerate(row):
            w |= (int(v) & mask) << (i * width)
        out.append(w)
    return out


def unpack(words, width: int, lanes: int, *, signed: bool) -> np.ndarray:
    """Inverse of :func:`pack`: ``n`` words → int64 ``(n, lanes)``."""
    mask, out = (1 << width) - 1, np.empty((len(words), lanes), dtype=np.int64)
    for n, w in enumerate(words):
        for i in range(lanes):
            v = (int(w) >> (i * width)) & mask
            out[n, i] = v - (1 << width) if signed and v >> (width - 1) else v
    return out


def compare(what: str, got: np.ndarray, want: np.ndarray, tensor=None) -> None:
    """Assert ``got == want`` bit-exactly; on a difference, name ``what`` and the first differing
    element (and, given the tensor, its word and lane in the memory layout)."""
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape, f"{what}: shape {got.shape}, golden {want.shape}"
    bad = np.argwhere(got != want)
    if len(bad):
        idx = tuple(int(i) for i in bad[0])
        where = ""
        if tensor is not None:  # the element's word and lane in the tensor's layout
            mark = np.zeros(want.shape, dtype=np.int64)
            mark[idx] = 1
            m = tensor.to_words(mark)
            hit = np.argwhere(m.reshape(m.shape[:-2] + (-1,)) != 0)[0]
            flat = int(hit[-1])
            where = f" (word {flat // tensor.lanes} of the frame, lane {flat % tensor.lanes})"
        raise AssertionError(f"{what}: {len(bad)} of {want.size} differ; first at {idx}{where}: "
                             f"got {got[idx]}, golden {want[idx]}")


@dataclass
class Case:
    """A shipped artifact compiled for a lane count, one test image and its golden frames."""

    artifact: object
    program: Program
    image: np.ndarray  # (C, H, W)
    frames: dict[str, np.ndarray]  # every layer's golden frames (T, *shape), at the artifact's delay

    @property
    def delay(self) -> int:
        return self.artifact.delay


@functools.lru_cache(maxsize=None)
def case(name: str, lanes: int, single_port: tuple[str, ...] = (), image: int = 0,
         weight_depth: int | None = None) -> Case:
    """The shipped artifact ``name`` at ``lanes`` lanes and test image ``image`` of its data set,
    through the whole-network golden runner (``csdformer.sim.runner.run``, every layer traced);
    ``weight_depth``: the weight buffer's words (larger ops are split into output tiles)."""
    from ... import artifact as A
    from ...datasets import load as load_data
    from ..runner import run

    art = A.load(A.resolve_artifact(name))
    program = compile_program(art, lanes, single_port=single_port, weight_depth=weight_depth)
    x = load_data(name, "test")[0][image]
    res = run(art, x[None], delay=art.delay, trace=tuple(layer.name for layer in art.layers))
    return Case(art, program, x, {k: v[:, 0] for k, v in res.frames.items()})


class PhaseRig:
    """``unit`` (a phase unit of ``program``) over the product's memories; see the module docstring."""

    def __init__(self, program: Program, unit, *, helpers=(), flip: Flip | None = None):
        self.program, self.unit, self.flip = program, unit, flip
        accelerator = Accelerator(program)
        memories = accelerator.memories()
        self.top = m = Module()
        self.memories: dict = {}
        used = {"read": {}, "write": {}}  # memory → ports taken (one port per user, as the accelerator)
        for i, u in enumerate((unit,) + tuple(helpers)):
            m.submodules[f"unit{i}"] = u
            for name, member in u.signature.members.items():
                sig = member.signature if member.is_signature else None
                if not isinstance(sig, (ReadPort, WritePort)):
                    continue
                key = name[:-2] if name.endswith("_w") else name
                if key not in self.memories:
                    self.memories[key] = m.submodules[key] = memories[key]
                kind = "read" if isinstance(sig, ReadPort) else "write"
                n = used[kind][key] = used[kind].get(key, -1) + 1
                ports = getattr(self.memories[key], kind)
                port, mem_port = getattr(u, name), ports if isinstance(self.memories[key], WeightBuffer) else ports[n]
                if u is unit and flip is not None and flip.port == name:
                    (self._flipped_read if kind == "read" else self._flipped_write)(m, port, mem_port)
                else:
                    connect(m, port, mem_port)
        for x in [accelerator] + [v for k, v in memories.items() if k not in self.memories]:
            x._MustUse__silence = True  # made for their memories' shapes only
        if flip is not None and flip.port not in unit.signature.members:
            raise ValueError(f"flip: the unit has no port {flip.port!r}")
        self._model_op = None  # the op whose weights the weight buffer's slot 0 holds
        self.clock = Signal(32, name="clock")  # cycles since the start of the simulation
        m.d.sync += self.clock.eq(self.clock + 1)

    def _flipped_write(self, m, port, mem_port) -> None:
        n = Signal(32, name="writes")
        m.d.sync += n.eq(n + port.en)
        now = port.en & (n == self.flip.n)
        m.d.comb += [mem_port.addr.eq(port.addr), mem_port.en.eq(port.en),
                     mem_port.data.eq(port.data ^ Mux(now, 1 << self.flip.bit, 0))]

    def _flipped_read(self, m, port, mem_port) -> None:
        a = [port.addr] + [Signal.like(port.addr, name=f"raddr{i}") for i in range(1, Q_LATENCY + 1)]
        m.d.sync += [a[i].eq(a[i - 1]) for i in range(1, Q_LATENCY + 1)]
        m.d.comb += mem_port.addr.eq(port.addr)
        for member, lat in (("data", DATA_LATENCY), ("q", Q_LATENCY)):
            m.d.comb += getattr(port, member).eq(getattr(mem_port, member) ^
                                                 Mux(a[lat] == self.flip.n, 1 << self.flip.bit, 0))

    # ---- running ------------------------------------------------------------------------------
    def run(self, *benches) -> None:
        """Simulate the async testbenches ``bench(ctx)`` (the test's, stream consumers, stub units)
        side by side until each has returned (a wait for a unit should end by :meth:`timeout`)."""
        simulate(self.top, *benches)

    async def window(self, ctx, op, delay: int, *, units=(None,), before=None, after=None) -> list[int]:
        """Run steps ``1 .. T`` of ``op`` as the sequencer does: per step ``before(ctx, t)``, then
        each of ``units`` (``None``: the unit under test) started and waited for, then the writes
        drained and ``after(ctx, t)``. Returns every phase's cycles."""
        cycles = []
        for t in range(1, self.program.T + 1):
            if before is not None:
                before(ctx, t)
            for u in units:
                cycles.append(await self.start(ctx, op, t, delay, unit=u))
            await self.drain(ctx)
            if after is not None:
                after(ctx, t)
        return cycles

    def timeout(self, cycles: int = 10**6):
        """A condition for ``until``: the simulation is ``cycles`` cycles old."""
        return self.clock >= cycles

    def op_const(self, op, ctl=None) -> data.Const:
        """The group of the op register for ``op`` (:meth:`Program.encode`) that control port
        ``ctl`` (default: the unit's) carries: the member of :attr:`Program.layout` (or of its
        ``source`` union) whose layout is that of ``ctl.op``."""
        full = data.Const(self.program.layout, self.program.encode(op))
        shape = (ctl or self.unit.ctl).op.shape()
        groups = [getattr(full, k) for k, _ in full.shape() if k not in ("src", "sink", "frame")]
        for g in groups + [getattr(full.source, k) for k, _ in full.source.shape()]:
            if g.shape() == shape:
                return g
        raise ValueError(f"no op field group has the layout {shape!r}")

    async def start(self, ctx, op=None, t: int | None = None, delay: int = 0, *, unit=None, limit: int = 10**6,
                    bank: int = 0, **extra) -> int:
        """Set ``op``'s group and step ``t``'s frame (when given, in ACC buffer ``bank``: a unit's
        test runs every frame in one buffer, which the rig loads and reads back; the buffers'
        alternation is the sequencer's, tests/test_sequencer.py) and ``extra`` control members
        (``cmd=...``), pulse ``start`` of ``unit`` (default: the unit under test; else one of the
        ``helpers``), ``op`` a cycle before ``start`` as the sequencer does; return its cycles until
        ``done``, inclusive. One
        more cycle passes after ``done`` (the sequencer's ``NEXT``) before this returns."""
        ctl = (unit or self.unit).ctl
        if op is not None and op is not self._model_op:
            self.load_model(ctx, op)
        if op is not None and "op" in ctl.signature.members:
            ctx.set(ctl.op, self.op_const(op, ctl))
            await ctx.tick()  # the sequencer's record is in a cycle before any start (PhaseControl)
        if t is not None:
            ctx.set(ctl.frame, dict(frame(self.program, op, t, delay), bank=bank))
        for k, v in extra.items():
            ctx.set(getattr(ctl, k), v)
        ctx.set(ctl.start, 1)
        await ctx.tick()
        ctx.set(ctl.start, 0)
        c0 = ctx.get(self.clock)
        done, = await ctx.tick().sample(ctl.done).until(ctl.done | self.timeout(c0 + limit))
        n = ctx.get(self.clock) - c0
        assert done, f"{type(unit or self.unit).__name__}: no done within {limit} cycles"
        await ctx.tick()
        return n

    async def drain(self, ctx, cycles: int = 8) -> None:
        """Let the writes still in flight after the last ``done`` land (before reading back)."""
        await ctx.tick().repeat(cycles)

    # ---- memories -----------------------------------------------------------------------------
    def load_model(self, ctx, op) -> None:
        """What the model loader would have put on chip for ``op``: the tables (biases,
        thresholds, ``v0``) and ``op``'s weights in the weight buffer's slot 0."""
        p = self.program
        for name, rows in (("bias", p.biases), ("threshold", p.thresholds), ("v0", p.v0)):
            if name in self.memories:
                self.load(ctx, name, 0, pack(rows, self.width(name)))
        if "weight" in self.memories and op.weights is not None:
            self.load(ctx, "weight", 0, pack(op.weights, self.width("weight")))
        self._model_op = op

    def _cells(self, name: str, base: int, n: int):
        mem = self.memories[name]
        mem = getattr(mem, "ram", mem)  # the weight buffer: its RAM (slot 0 first)
        banks = mem.banks
        if mem.single_port:
            ram = banks[0].ram
            return [(ram, a) for a in range(base, base + n)]
        bd = banks[0].depth
        return [(banks[a // bd], a % bd) for a in range(base, base + n)]

    def load(self, ctx, name: str, base: int, words) -> None:
        """Write ``words`` into memory ``name`` from word ``base`` on (directly, no port)."""
        for (ram, a), w in zip(self._cells(name, base, len(words)), words):
            ctx.set(ram.data[a], int(w))

    def dump(self, ctx, name: str, base: int, n: int) -> list[int]:
        """``n`` words of memory ``name`` from word ``base`` on."""
        return [ctx.get(ram.data[a]) for ram, a in self._cells(name, base, n)]

    def width(self, name: str) -> int:
        """Bits of one lane of memory ``name``."""
        return self.memories[name].width // (1 if name == "img" else self.program.lanes)

    def load_tensor(self, ctx, name: str, base: int, tensor, values: np.ndarray) -> None:
        """``values (frames, *shape)`` into memory ``name`` in ``tensor``'s layout, frame after frame."""
        m = tensor.to_words(np.asarray(values))
        self.load(ctx, name, base, pack(m.reshape(-1, self.program.lanes), self.width(name)))

    def read_tensor(self, ctx, name: str, base: int, tensor, frames: int = 1, *, signed: bool = True,
                    raw: bool = False) -> np.ndarray:
        """``frames`` frames of ``tensor`` from memory ``name`` → ``(frames, *shape)`` (``raw``: the
        words' lanes, ``(frames, rows, groups·P)``, padding included)."""
        P, n = self.program.lanes, tensor.words * frames
        v = unpack(self.dump(ctx, name, base, n), self.width(name), P, signed=signed)
        m = v.reshape(frames, tensor.rows, tensor.groups * P)
        return m if raw else tensor.from_words(m)
