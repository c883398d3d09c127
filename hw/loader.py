"""The model loader: reads the flash image (:mod:`csdformer.hw.flash_image`) through the weight
stream and fills the accelerator's on-chip copies of the model.

At reset it reads the header (magic, version and fabric id checked; the op count and model id
kept) and the tables (biases, thresholds, ``v0``) into their RAMs. Then, forever, it loads the op
records in program order, wrapping to the first after the last: record ``j`` into buffer slot
``j mod 2`` (its op word into the op staging RAM, its weights into the weight buffer), each as
one read that starts when the slot is free (``free`` pulses from the sequencer when the op that
held it ends) and takes a byte whenever one comes, so its time is the backend's
:class:`~csdformer.hw.weightstream.StreamTiming` exactly: the next op's weights load while the
current op runs (double buffering), and each weight is read once per image.

A header that is not for this fabric sets ``error`` and loads nothing (the host sees no model:
model id 0). Cycles of a record: :func:`record_cycles`.

Where each record goes, and when an op's record is in, is :class:`~csdformer.hw.loader_places.RecordPlaces`'s
(two slots, or with resident weights a place of its own for every record, each read once).
"""

from __future__ import annotations

from amaranth.hdl import Array, Cat, Const, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .common import one_hot_in_synthesis
from .flash_image import COUNT_BYTES, FABRIC_AT, HEADER_BYTES, MAGIC, MODEL_AT, OPS_AT, VERSION, op_bytes, \
    record_bytes, records_offset, table_specs, word_bytes
from .loader_places import RecordPlaces
from .memory import WritePort
from .weightstream import ADDR_BITS, WeightStream

__all__ = ["ModelLoader", "record_cycles", "input_stage", "FULL_DELAY"]

FULL_DELAY = 2  # cycles from a record's last byte to its slot's ``full`` flag


def input_stage(program) -> int:
    """1 where the loader registers the stream's beat and byte before it uses them: the ECP5
    builds (not compact), where the reader and the loader, which writes memories all over the
    chip, sit far apart (the reader's ``pending`` → ``valid`` → the loader's word count was a
    ULX3S critical path, 92.1 MHz, 9.4 of 10.9 ns routing); 0 on the iCEBreaker, whose logic cells
    are nearly all used. Every byte comes that much later, so a record's time does too."""
    return 0 if program.compact else 1


def record_cycles(program, op, timing) -> int:
    """Cycles from a record's ``cmd`` handshake to its slot's ``full`` flag."""
    return timing.read_cycles(record_bytes(program, op)) + input_stage(program) + FULL_DELAY


class ModelLoader(wiring.Component):
    """See the module docstring. ``base``: the image's byte address in the external memory.

    Ports: ``bus`` (:class:`WeightStream`), write ports ``bias_w``, ``threshold_w``, ``v0_w``,
    ``weight_w`` (the slot ``weight_slot``'s words from 0), ``op_w`` (the op staging
    RAM: slot ``s`` from byte ``s·op_bytes``); ``full`` (a slot holds its record), ``free``
    (pulses: the op in that slot ended); ``ready`` (tables loaded), ``prefetched`` (the records an
    image starts with are in: the first two, or resident, all), ``error``, ``model_id``."""

    def __init__(self, program, *, base: int = 0):
        self.program = p = program
        self.base = base
        self.op_bytes = op_bytes(p)
        D = p.depths
        P, W = p.lanes, p.widths
        super().__init__({
            "bus": Out(WeightStream()),
            "bias_w": Out(WritePort(*p.memory_shape("bias"))),
            "threshold_w": Out(WritePort(*p.memory_shape("threshold"))),
            "v0_w": Out(WritePort(*p.memory_shape("v0"))),
            "weight_w": Out(WritePort(D["weight"], P * W["weight"])), "weight_slot": Out(1),
            "op_w": Out(WritePort(p.op_slots * self.op_bytes, 8)),
            "full": Out(2), "free": In(2),
            "ready": Out(1), "prefetched": Out(1), "error": Out(1), "model_id": Out(32),
        })

    def elaborate(self, platform):
        m = Module()
        p, bus, OB = self.program, self.bus, self.op_bytes
        P, W, D = p.lanes, p.widths, p.depths
        tables = table_specs(p)
        wb = word_bytes(P, W["weight"])
        kmax = max([wb] + [-(-bits // 8) for _, _, bits in tables])
        word = Signal(8 * kmax)
        bi = Signal(range(max(kmax, HEADER_BYTES, OB, COUNT_BYTES) + 1))  # byte in the word / field
        wi = Signal(range(max([D["weight"]] + [n for _, n, _ in tables]) + 1))  # word in the table / block
        n_ops = Signal(range(max(D["ops"], 2) + 1))
        mid = Signal(32)
        nw = Signal(range(D["weight"] + 1))  # the record's weight words left (a fitting image's counts fit)
        m.submodules.places = places = RecordPlaces(p)
        m.d.comb += [places.n_ops.eq(n_ops), places.free.eq(self.free), places.ready.eq(self.ready),
                     self.full.eq(places.full), self.prefetched.eq(places.prefetched),
                     self.weight_slot.eq(places.slot), self.model_id.eq(mid)]
        start = self.base + records_offset(p)
        raddr = Signal(ADDR_BITS, init=start)
        beat, byte = Signal(), Signal(8)
        m.d.comb += bus.data.ready.eq(1)
        if input_stage(p):  # (a byte of the old read in the cycle of a new read's cmd is not the new read's)
            m.d.sync += [beat.eq(bus.data.valid & ~(bus.cmd.valid & bus.cmd.ready)), byte.eq(bus.data.payload)]
        else:
            m.d.comb += [beat.eq(bus.data.valid), byte.eq(bus.data.payload)]
        # A word's bytes land in ``word`` (little-endian); it is written the cycle after its last.
        pend, pend_mem = Signal(), Signal(range(4))
        pend_addr = Signal(range(max([D["weight"], 2] + [n for _, n, _ in tables])))
        with m.If(beat):
            m.d.sync += word.word_select(bi, 8).eq(byte)
        m.d.sync += pend.eq(0)
        writes = (self.bias_w, self.threshold_w, self.v0_w, self.weight_w)
        for i, port in enumerate(writes):  # the loader is each of these memories' only writer
            m.d.comb += [port.addr.eq(pend_addr), port.data.eq(word), port.en.eq(pend & (pend_mem == i))]

        def take_word(mem: int, k: int, addr, last, then, also=()):
            """Collect a ``k``-byte word; on its last byte, write it to ``writes[mem]`` at ``addr``
            (and run ``also``)."""
            with m.If(beat):
                with m.If(bi == k - 1):
                    m.d.sync += [bi.eq(0), pend.eq(1), pend_mem.eq(mem), pend_addr.eq(addr), wi.eq(wi + 1), *also]
                    with m.If(last):
                        m.d.sync += wi.eq(0)
                        m.next = then
                with m.Else():
                    m.d.sync += bi.eq(bi + 1)

        with m.FSM(name="loader") as fsm:
            with m.State("INIT"):
                m.d.comb += [bus.cmd.valid.eq(1), bus.cmd.payload.eq(self.base)]
                with m.If(bus.cmd.ready):
                    m.d.sync += bi.eq(0)
                    m.next = "HEADER"
            with m.State("HEADER"):
                self._header(m, bi, beat, byte, n_ops, mid)
            for t, (name, n, bits) in enumerate(tables):
                with m.State(f"TABLE{t}"):
                    take_word(t, -(-bits // 8), wi, wi == n - 1, f"TABLE{t + 1}" if t + 1 < len(tables) else "TABLES_DONE")
            with m.State("TABLES_DONE"):
                m.d.sync += self.ready.eq(1)
                m.next = "IDLE"
            with m.State("IDLE"):
                m.d.comb += [bus.cmd.valid.eq(places.open), bus.cmd.payload.eq(raddr)]
                with m.If(bus.cmd.valid & bus.cmd.ready):
                    m.d.sync += [bi.eq(0), wi.eq(0)]
                    m.next = "COUNT"
            with m.State("COUNT"):
                self._count(m, bi, beat, byte, raddr, nw)
            with m.State("OPWORD"):
                m.d.comb += [self.op_w.addr.eq(places.op_base + bi), self.op_w.data.eq(byte), self.op_w.en.eq(beat)]
                with m.If(beat):
                    m.d.sync += [raddr.eq(raddr + 1), bi.eq(bi + 1)]
                    with m.If(bi == OB - 1):
                        m.d.sync += bi.eq(0)
                        with m.If(nw == 0):
                            m.next = "DONE"
                        with m.Else():
                            m.next = "WEIGHTS"
            with m.State("WEIGHTS"):
                with m.If(beat):
                    m.d.sync += raddr.eq(raddr + 1)
                    m.d.comb += places.word.eq(bi == wb - 1)  # its last byte: the word is written
                take_word(3, wb, places.weight_addr, nw == 1, "DONE", [nw.eq(nw - 1)])  # nw: the words still to come
            with m.State("DONE"):
                m.d.comb += places.done.eq(1)
                if not p.resident:  # streamed: after the last record, the first again
                    with m.If(places.last):
                        m.d.sync += raddr.eq(start)
                m.next = "IDLE"
            with m.State("ERROR"):
                m.d.sync += [self.error.eq(1), mid.eq(0)]
        if not p.compact:  # one flip-flop a state: DONE's pulse is a flip-flop, not a decode that
            one_hot_in_synthesis(fsm)  # the placer puts between its far users (a ULX3S critical path)
        return m

    def _header(self, m, bi, beat, byte, n_ops, mid):
        """The HEADER state: the magic and version, then the ops, the fabric id, the model id
        (flash_image's offsets); the first, and the fabric id where there is one, checked."""
        p = self.program
        fab = (p.fabric.fabric_id if p.fabric is not None else 0).to_bytes(4, "little")
        want = bytearray(MODEL_AT + 4)
        want[:OPS_AT], want[FABRIC_AT:FABRIC_AT + 4] = bytearray(MAGIC) + VERSION.to_bytes(2, "little"), fab
        want = Array(Const(b, 8) for b in want)
        check = bi < OPS_AT
        if p.fabric is not None:
            check |= (bi >= FABRIC_AT) & (bi < FABRIC_AT + 4)
        with m.If(beat):
            m.d.sync += bi.eq(bi + 1)
            with m.If(check & (byte != want[bi[:(len(want) - 1).bit_length()]])):
                m.next = "ERROR"
            with m.If(bi == OPS_AT):
                m.d.sync += n_ops.eq(byte)
            with m.If(bi == OPS_AT + 1):
                m.d.sync += n_ops.eq(Cat(n_ops[:8], byte))
            with m.If((bi >= MODEL_AT) & (bi < MODEL_AT + 4)):  # the model id, shifted in
                m.d.sync += mid.eq(Cat(mid[8:], byte))
            with m.If(bi == HEADER_BYTES - 1):
                m.d.sync += bi.eq(0)
                m.next = "TABLE0"

    def _count(self, m, bi, beat, byte, raddr, nw):
        """The COUNT state: a record's weight-word count (little-endian) into ``nw``."""
        with m.If(beat):
            m.d.sync += [raddr.eq(raddr + 1), bi.eq(bi + 1)]
            for k in range(COUNT_BYTES):
                if 8 * k < len(nw):
                    with m.If(bi == k):
                        m.d.sync += nw[8 * k:].eq(byte)
            with m.If(bi == COUNT_BYTES - 1):
                m.d.sync += bi.eq(0)
                m.next = "OPWORD"
