"""The whole-network spiking accelerator: the phase units of one :class:`Program`, composed.

A layer-by-layer machine: the :class:`~csdformer.hw.sequencer.Sequencer` runs the program's ops
one after the other, each over the window's steps, and starts the phase units over shared
memories (:mod:`csdformer.hw.memory`):

======================  =============================================================
memory                  holds (users)
======================  =============================================================
SPK                     every spike tensor, all ``T`` frames (sequencer's debug read,
                        scatter, cumulate, sink, max-pool, transposer)
CUR                     stored currents: the residual stream (sink)
ACC                     one frame of one layer's current (bias, scatter, sink, logits);
                        two buffers (``Program.acc_buffers``): a step's sink drains
                        one while the next step's scatter fills the other
MEM                     membrane potentials (sink)
CNT                     cumulative spike counts (cumulate, scatter's TDEC, max-pool)
IMG                     the image (sequencer writes, scatter reads)
weight buffer           two slots: the running op's weights (scatter) and the next op's
                        (loader); resident, every op's weights (loaded once)
op staging              the op words of the two slots, or resident every op's (loader
                        writes, sequencer reads)
bias, threshold, ``v0``  the model's tables (loader writes at reset; bias unit, sink)
======================  =============================================================

The model is data (:mod:`csdformer.hw.flash_image`): the
:class:`~csdformer.hw.loader.ModelLoader` reads it through the ``bus`` port
(:class:`~csdformer.hw.weightstream.WeightStream`: the board's flash, or on-chip memory), so the
RTL depends on the program's fabric only (:mod:`csdformer.hw.fabric`).

Phase units: :class:`~csdformer.hw.bias.Bias` (``ACC ← bias`` before an op's first frame),
:class:`~csdformer.hw.cumulate.Cumulate` (cumulative spike counts for TDEC and max-pool),
:class:`~csdformer.hw.scatter.Scatter` (event-driven accumulation, bit-plane encoding, TDEC gating), :class:`~csdformer.hw.sink.SinkArray` (DIF neurons or
the store of a current), :class:`~csdformer.hw.maxpool.MaxPool`,
:class:`~csdformer.hw.transpose.Transpose`, :class:`~csdformer.hw.logits.Logits` (logits and
argmax). Each unit's cycles come from its module's ``cycles``; :mod:`csdformer.hw.netmodel` sums
them. The datapath only adds, compares, subtracts and shifts.
"""

from __future__ import annotations

from amaranth.hdl import Module, signed, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out, connect, flipped

from .bias import Bias
from .loader import ModelLoader
from .common import unsigned_bits
from .cumulate import Cumulate
from .logits import Logits
from .maxpool import MaxPool
from .memory import AccBuffers, BankedMemory, WeightBuffer
from .flash_image import op_bytes
from .weightstream import WeightStream
from .program import Program, compile_program
from .scatter import Scatter
from .sequencer import DBG_LATENCY, Sequencer
from .sink import SinkArray
from .transpose import Transpose

__all__ = ["Accelerator", "DBG_LATENCY"]


class Accelerator(wiring.Component):
    """The accelerator for one compiled :class:`Program`.

    Ports: ``image`` (pixels in ``(y, x, c)`` order), ``logits`` (``num_classes`` beats),
    ``prediction`` (one beat, after the logits), ``delay`` (sampled with the first pixel), the
    performance counters ``cycles`` / ``spikes`` / ``sops`` of the last image (valid with
    ``prediction``), ``busy``, and the debug read port ``dbg_addr`` → ``dbg_data`` (one SPK word,
    :data:`DBG_LATENCY` cycles later, while idle): every spike layer's frames can be read back.
    The model: ``bus`` (the weight stream; the image at byte ``base``), ``model_id`` (from the
    image's header once loaded, else 0), ``ready`` (tables loaded), ``prefetched`` (both slots
    hold their records, or, resident, every record is in: an image started now waits for no
    weights), ``error`` (the image's header
    is not for this fabric).

    ``poison`` (simulation, the default): a memory read that meets a write of its word returns the
    word inverted (:class:`~csdformer.hw.memory.BankedMemory`), so the verification shows whether
    any phase unit uses such a read; a board build leaves it out and lets Yosys make that read
    undefined (:data:`~csdformer.hw.memory.COLLISION_ANY`). ``outreg``: the transparent
    memories' transparency after their bank registers, so that an ECP5 build can move every bank
    register into its block RAM (:mod:`csdformer.boards.outreg`); not where the units are compact
    (the iCE40: no output register). Off by default; the OrangeCrab's build sets it
    (:attr:`csdformer.boards.targets.Board.outreg`).
    """

    def __init__(self, program: Program, *, base: int = 0, poison: bool = True, outreg: bool = False):
        self.program = p = program
        self.poison, self.outreg = poison, outreg
        self.lanes, self.T = p.lanes, p.T
        self.pixel_bits, self.n_pixels, self.num_classes = p.pixel_bits, p.n_pixels, p.num_classes
        self.logit_width = p.widths["acc"]
        self.class_bits = max(1, unsigned_bits(p.num_classes - 1))
        self.base = base
        super().__init__({
            "bus": Out(WeightStream()),
            "model_id": Out(32), "ready": Out(1), "prefetched": Out(1), "error": Out(1),
            "image": In(stream.Signature(unsigned(self.pixel_bits))),
            "logits": Out(stream.Signature(signed(self.logit_width))),
            "prediction": Out(stream.Signature(unsigned(self.class_bits))),
            "delay": In(range(max(p.T, 2))),
            "cycles": Out(32),
            "spikes": Out(32),
            "sops": Out(32),
            "busy": Out(1),
            "dbg_addr": In(range(p.depths["spk"])),
            "dbg_data": Out(p.lanes),
        })

    @classmethod
    def from_artifact(cls, artifact, lanes: int = 8, **kw) -> "Accelerator":
        return cls(compile_program(artifact, lanes, **kw))

    def memories(self) -> dict[str, BankedMemory]:
        """The shared memories, with one port per user (see the module docstring)."""
        p = self.program
        P, W, D, sp = p.lanes, p.widths, p.depths, p.single_port
        poison = self.poison
        own = {"poison": poison, "outreg": self.outreg and not p.compact}  # (the class docstring)

        return {
            "spk": BankedMemory(P, D["spk"], readers=4 + p.pool_counts, writers=3, registered_write=True,
                                poison=poison),
            "cur": BankedMemory(P * W["cur"], D["cur"], single_port="cur" in sp, registered_write="cur" in sp,
                                poison=poison),
            "mem": BankedMemory(P * W["mem"], D["mem"], single_port="mem" in sp, transparent="mem" not in sp,
                                registered_write=True, **own),
            "cnt": BankedMemory(P * W["cnt"], D["cnt"], readers=3, writers=3, transparent=True, registered_write=True,
                                **own),
            "img": BankedMemory(W["pixel"], D["img"], poison=poison),
            # ACC's users 2 (the logits' reads, the bias pass's writes) work in buffer 0 only: the
            # head and an op's first frame keep buffer 0.
            "acc": (AccBuffers(P * W["acc"], D["acc"], buffers=p.acc_buffers, readers=3, writers=3, transparent=True,
                               first_only=(2,), **own)
                    if p.acc_buffers > 1 else BankedMemory(P * W["acc"], D["acc"], readers=3, writers=3, transparent=True,
                                                           **own)),
            "weight": WeightBuffer(P * W["weight"], D["weight"], single_port="weight" in sp, resident=p.resident,
                                   poison=poison),
            "op": BankedMemory(8, p.op_slots * op_bytes(p), poison=poison),
            "bias": BankedMemory(P * W["bias"], D["bias"], poison=poison),
            "threshold": BankedMemory(P * W["threshold"], D["param"], poison=poison),
            "v0": BankedMemory(P * W["v0"], D["param"], poison=poison),
        }

    def elaborate(self, platform):
        m = Module()
        p = self.program
        m.submodules.sequencer = seq = Sequencer(p)
        m.submodules.bias = bias = Bias(p)
        m.submodules.cumulate = cum = Cumulate(p)
        m.submodules.scatter = scatter = Scatter(p)
        m.submodules.sink = sink = SinkArray(p)
        m.submodules.maxpool = pool = MaxPool(p)
        m.submodules.transpose = tr = Transpose(p)
        m.submodules.logits = logits = Logits(p)
        m.submodules.loader = loader = ModelLoader(p, base=self.base)
        mem = self.memories()
        for name, unit in mem.items():
            m.submodules[f"{name}_mem"] = unit

        # Control: the sequencer starts each phase unit.
        connect(m, seq.bias, bias.ctl)
        connect(m, seq.cumulate, cum.ctl)
        connect(m, seq.scatter, scatter.ctl)
        connect(m, seq.sink, sink.ctl)
        connect(m, seq.maxpool, pool.ctl)
        connect(m, seq.transpose, tr.ctl)
        connect(m, seq.logits, logits.ctl)
        m.d.comb += [seq.sop.eq(scatter.sop), seq.fired.eq(sink.fired)]

        # The model: the loader fills the tables, the op staging RAM and the weight buffer's free slot.
        connect(m, loader.bus, flipped(self.bus))
        m.d.comb += [seq.full.eq(loader.full), seq.records_in.eq(loader.prefetched), loader.free.eq(seq.free),
                     mem["weight"].slot.eq(seq.slot),
                     mem["weight"].w_slot.eq(loader.weight_slot),
                     self.model_id.eq(loader.model_id), self.ready.eq(loader.ready),
                     self.prefetched.eq(loader.prefetched), self.error.eq(loader.error)]
        connect(m, scatter.weight, mem["weight"].read)
        connect(m, loader.weight_w, mem["weight"].write)
        connect(m, seq.op, mem["op"].read[0])
        for port, name in ((loader.op_w, "op"), (loader.bias_w, "bias"), (loader.threshold_w, "threshold"),
                           (loader.v0_w, "v0")):
            connect(m, port, mem[name].write[0])

        # Memory ports, one per user.
        for port, (name, i) in (
                (seq.spk, ("spk", 0)), (scatter.spk, ("spk", 1)), (cum.spk, ("spk", 2)), (tr.spk, ("spk", 3)),
                *([(pool.spk, ("spk", 4))] if p.pool_counts else []),  # a max-pool that counts its input
                (scatter.cnt, ("cnt", 0)), (pool.cnt, ("cnt", 1)), (cum.cnt, ("cnt", 2)), (scatter.img, ("img", 0)),
                (scatter.acc, ("acc", 0)), (sink.acc, ("acc", 1)), (logits.acc, ("acc", 2)),
                (bias.bias, ("bias", 0)), (sink.cur, ("cur", 0)),
                (sink.mem, ("mem", 0)), (sink.threshold, ("threshold", 0)), (sink.v0, ("v0", 0))):
            connect(m, port, mem[name].read[i])
        for port, (name, i) in (
                (sink.spk_w, ("spk", 0)), (pool.spk_w, ("spk", 1)), (tr.spk_w, ("spk", 2)),
                (scatter.cnt_w, ("cnt", 0)), (pool.cnt_w, ("cnt", 1)), (cum.cnt_w, ("cnt", 2)), (seq.img, ("img", 0)),
                (scatter.acc_w, ("acc", 0)), (sink.acc_w, ("acc", 1)), (bias.acc_w, ("acc", 2)), (sink.cur_w, ("cur", 0)),
                (sink.mem_w, ("mem", 0))):
            connect(m, port, mem[name].write[i])

        # The outside: image in, logits and prediction out, counters, the debug port.
        connect(m, flipped(self.image), seq.image)
        connect(m, logits.logits, flipped(self.logits))
        connect(m, logits.prediction, flipped(self.prediction))
        m.d.comb += [seq.delay.eq(self.delay), seq.dbg_addr.eq(self.dbg_addr), self.dbg_data.eq(seq.dbg_data),
                     self.busy.eq(seq.busy), self.cycles.eq(seq.cycles), self.spikes.eq(seq.spikes),
                     self.sops.eq(seq.sops)]
        return m
