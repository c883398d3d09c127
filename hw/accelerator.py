"""The whole-network spiking accelerator: one Amaranth component generated from a :class:`Program`.

A layer-by-layer machine: the program's ops run one after the other, each over the window's
frames, on shared memories (SPK spike frames, CUR stored currents, ACC one frame of current,
MEM membrane potentials, CNT cumulative counts, IMG the image; ROMs for weights, biases,
thresholds and initial potentials). Per op and frame:

``INIT`` (once per op: ACC ← bias) → ``BUPD`` (TDEC: ``Bcum += b(t)``) → ``SCAN_*``/``FANOUT``
(event-driven scatter into ACC: one lane word a cycle, read-modify-write in five stages with the
previous event's sum forwarded) → ``SINK`` (DIF integrate/fire/reset or store, one word a cycle,
or every other cycle when CUR and MEM are single-port; ACC cleared behind it); or ``MP1``/``MP2``
(TDEC max-pool) and ``TR`` (block transpose). After the head's frames, ``OUT`` streams the
logits and ``PRED`` the predicted class.

Built for a 100 MHz ECP5 clock: every RAM read is registered on both sides (a read issued in cycle
c is used in c + 3, :mod:`csdformer.hw.accel_mem`), and no adder or comparator sits between a
RAM and a decision or another RAM (see docs/accelerator.md).

The datapath only adds, compares, subtracts and shifts: the encoding layer adds ``w << b`` for
each set pixel bit ``b``; TDEC gates small counts by spikes. Op fields are constants, muxed by the
op index into registers when an op starts. Cycle counts follow :mod:`csdformer.hw.netmodel`
exactly. The layouts are those of :mod:`csdformer.hw.program`.
"""

from __future__ import annotations

import zlib

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .accel_mem import BankedMemory
from .common import one_hot_in_synthesis, unsigned_bits
from .program import Program

__all__ = ["Accelerator", "SRC", "SINK", "FIELDS", "DBG_LATENCY"]

DBG_LATENCY = 2  # cycles from dbg_addr to dbg_data (address register, then the RAM)
# Scatter pipeline depths (the cycle model, :mod:`csdformer.hw.netmodel`, counts them per frame):
SCAN_FILL = 5  # input words in flight: read issue to SCAN_LATCH (address, RAM, bank register, two scan stages)
SCAN_DRAIN = 3  # cycles after the last fan-out until the sink may read ACC (issue to write back: five stages)

SRC = {"none": 0, "syn": 1, "img": 2, "tdec": 3, "cur": 4, "maxpool": 5, "transpose": 6}
SINK = {"none": 0, "dif": 1, "store": 2, "logits": 3}

# Op fields loaded into registers when an op starts (absent ones are 0).
FIELDS = (
    "src_base", "src_wpf", "words", "n2", "n1", "n0",
    "e_base", "e_j0", "e_j1", "e_j2", "b_base", "b_j0", "b_j1", "b_j2",
    "fa_j0", "fa_j1", "fa_j2", "fw_j0", "fw_j1", "fw_j2", "f2", "f1", "f0",
    "pad", "hout", "wout", "check", "last_lanes", "has_bias", "bias_base", "acc_words", "acc_groups",
    "b_spk", "b_wpf", "acum", "bcum", "use_acc", "use_cur", "cur_base", "cur_wpf", "out_base", "out_wpf",
    "sink_words", "sink_groups", "shift", "prm_base", "prm_scalar",
    "in_words", "K", "taps", "cum", "prev", "rows", "groups", "row_groups", "tr_in_step", "tr_out_step",
)

FIELDS_M1 = ("words", "n0", "n1", "acc_groups", "sink_groups", "f0", "f1", "f2", "K", "row_groups")


def _lanes(word, width: int, n: int, *, sign: bool) -> list:
    out = [word[i * width:(i + 1) * width] for i in range(n)]
    return [v.as_signed() if sign else v for v in out]


def _pack(rows, width: int) -> list[int]:
    mask = (1 << width) - 1
    return [sum((int(v) & mask) << (i * width) for i, v in enumerate(r)) for r in rows]


class Accelerator(wiring.Component):
    """The accelerator for one compiled :class:`Program`.

    Ports: ``image`` (pixels in ``(y, x, c)`` order), ``logits`` (``num_classes`` beats),
    ``prediction`` (one beat, after the logits), ``delay`` (sampled with the first pixel), the
    performance counters ``cycles`` / ``spikes`` / ``sops`` of the last image (valid with
    ``prediction``), ``busy``, and the debug read port ``dbg_addr`` → ``dbg_data`` (one SPK word,
    :data:`DBG_LATENCY` cycles later, while idle): every spike layer's frames can be read back.
    """

    def __init__(self, program: Program):
        self.program = p = program
        self.lanes, self.T = p.lanes, p.T
        self.pixel_bits, self.n_pixels, self.num_classes = p.pixel_bits, p.n_pixels, p.num_classes
        self.logit_width = p.widths["acc"]
        self.class_bits = max(1, unsigned_bits(p.num_classes - 1))
        # Identifies the model a bitstream carries (the host checks it): CRC-32 of name and ROMs.
        crc = zlib.crc32(p.artifact.name.encode())
        for rom in (p.weights, p.biases, p.thresholds, p.v0):
            crc = zlib.crc32(rom.astype("<i8").tobytes(), crc)
        self.model_id = crc
        super().__init__({
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
        from .program import compile_program

        return cls(compile_program(artifact, lanes, **kw))

    # ------------------------------------------------------------------------------------------
    def elaborate(self, platform):  # noqa: C901 - one FSM, sectioned by phase
        m = Module()
        p, P, T = self.program, self.lanes, self.T
        W, D = p.widths, p.depths
        CW = W["cnt"]
        aw = max(unsigned_bits(max(D.values())) + 3, 8)  # signed address arithmetic width
        A = signed(aw)
        pb = max(1, (P - 1).bit_length())  # bits of a lane index

        # ---- memories ---------------------------------------------------------------------------
        # Spike, potential and count writes go through a register stage (their data comes out of
        # adders and compares): nothing reads a spike word for many cycles after it is written,
        # MEM's read port is transparent for the next frame of a one-word layer, CNT's for MP2
        # right after MP1. A read issued in cycle
        # c (its ``addr`` set) is used in cycle c + 3, from ``q`` (see accel_mem).
        # Single-port CUR / MEM (SPRAM): the half-rate sink's reads reach the RAM two cycles after
        # issue (even, counted from the first issue) and its registered writes five (odd): never
        # both in one cycle, and a frame's last write lands before the next frame's first read.
        sp = p.single_port
        spk = BankedMemory(m, "spk", P, D["spk"], registered_write=True)
        cur = BankedMemory(m, "cur", P * W["cur"], D["cur"], single_port="cur" in sp, registered_write="cur" in sp)
        mem = BankedMemory(m, "mem", P * W["mem"], D["mem"], single_port="mem" in sp,
                           transparent="mem" not in sp, registered_write=True)
        cnt = BankedMemory(m, "cnt", P * CW, D["cnt"], transparent=True, registered_write=True)
        img = BankedMemory(m, "img", W["pixel"], D["img"])
        wrom = BankedMemory(m, "wrom", P * W["weight"], D["weight"], init=_pack(p.weights, W["weight"]), rom=True)
        spk_r, cur_r, mem_r, cnt_r, img_r, w_r = spk, cur, mem, cnt, img, wrom
        spk_w, cur_w, mem_w, cnt_w, img_w = spk.w, cur.w, mem.w, cnt.w, img.w
        # ACC's reads are used raw (``data``, c + 2): the scatter forwards into its own register.
        acc_r = BankedMemory(m, "acc", P * W["acc"], D["acc"], transparent=True, read_q=False)  # forwarded below
        acc_w = acc_r.w
        b_r = BankedMemory(m, "brom", P * W["bias"], D["bias"], init=_pack(p.biases, W["bias"]), rom=True)
        t_r = BankedMemory(m, "trom", P * W["threshold"], D["param"], init=_pack(p.thresholds, W["threshold"]),
                           rom=True)
        v_r = BankedMemory(m, "vrom", P * W["v0"], D["param"], init=_pack(p.v0, W["v0"]), rom=True)
        spk_q, cur_q, mem_q, img_q, cnt_q = spk_r.q, cur_r.q, mem_r.q, img_r.q, cnt_r.q
        w_q, b_q, t_q, v_q = w_r.q, b_r.q, t_r.q, v_r.q
        acc_q = Signal(len(acc_r.data))  # with forwarding of the scatter's previous sum (below)

        # ---- op descriptor registers -------------------------------------------------------------
        ops = p.ops
        op = Signal(range(len(ops)))
        f = {name: Signal(A, name=f"f_{name}") for name in FIELDS}
        src = Signal(3)
        sink = Signal(2)
        bmul = [Signal(A, name=f"bmul{b}") for b in range(P)]
        # Counters compare against field − 1: those come decremented (no subtractor on the path).
        # The nested counters (groups, taps, positions) are narrow: their compares are short.
        nb = unsigned_bits(max([1] + [int(o.f.get(n, 0)) for o in ops
                                          for n in FIELDS_M1 + ("taps", "groups") if n != "words"]))
        m1 = {name: Signal(A if name == "words" else unsigned(nb), name=f"m1_{name}") for name in FIELDS_M1}

        src_is = {k: Signal(name=f"src_is_{k}") for k in SRC}  # one-hot copies: no decode on paths
        sink_is = {k: Signal(name=f"sink_is_{k}") for k in SINK}

        def load_op():
            stmts = [src.eq(Array(Const(SRC[o.src], 3) for o in ops)[op]),
                     sink.eq(Array(Const(SINK[o.sink], 2) for o in ops)[op])]
            stmts += [v.eq(Array(Const(int(o.src == k), 1) for o in ops)[op]) for k, v in src_is.items()]
            stmts += [v.eq(Array(Const(int(o.sink == k), 1) for o in ops)[op]) for k, v in sink_is.items()]
            for name in FIELDS:
                stmts.append(f[name].eq(Array(Const(int(o.f.get(name, 0)), A) for o in ops)[op]))
            for name in FIELDS_M1:
                stmts.append(m1[name].eq(Array(Const(max(int(o.f.get(name, 0)) - 1, 0), m1[name].shape())
                                               for o in ops)[op]))
            for b in range(P):
                stmts.append(bmul[b].eq(Array(Const(int(o.bmul[b]) if o.bmul else 0, A) for o in ops)[op]))
            return stmts

        # ---- state ------------------------------------------------------------------------------
        t = Signal(range(2 * T + 2))  # window step, 1-based
        dly = Signal(range(max(T, 2)))
        last_t = Signal(range(2 * T + 2))
        # FRAME's dispatch reads flags of t (set with t), not comparators: t == 1, t <= T, t > last_t
        t_first, t_in, t_over = Signal(), Signal(), Signal()
        pix = Signal(range(self.n_pixels + 1))
        cyc, spikes, sops = Signal(32), Signal(32), Signal(32)
        src_fb, b_fb, cur_fb, out_fb = (Signal(A, name=n) for n in ("src_fb", "b_fb", "cur_fb", "out_fb"))
        wi, ri = Signal(A), Signal(A)  # word index, next word to read
        gap = Signal()  # the sink's idle cycle after a word (Program.sink_gap == 2)
        g = Signal(unsigned(nb))  # group counter of a pass
        ra = Signal(A)  # ROM address of the pass (bias, thresholds): a register, no adder before the ROM
        c0, c1 = (Signal(unsigned(nb), name=n) for n in ("c0", "c1"))
        c2 = Signal(A)
        k0, k1, k2 = (Signal(unsigned(nb), name=n) for n in ("k0", "k1", "k2"))
        # "At its last value" flags of the scatter's counters, kept in registers beside them so
        # that the fan-out's and the word walk's next-state choices need no comparator.
        last = {n: Signal(name=f"last_{n}") for n in ("k0", "k1", "k2", "c0", "c1")}
        limit = {"k0": "f0", "k1": "f1", "k2": "f2", "c0": "n0", "c1": "n1"}
        ctr = {"k0": k0, "k1": k1, "k2": k2, "c0": c0, "c1": c1}

        def restart(*names):
            """Counters back to 0 (with their flags)."""
            return [s for n in names for s in (ctr[n].eq(0), last[n].eq(m1[limit[n]] == 0))]

        def step(n):
            """Counter ``n`` one up (with its flag)."""
            return [ctr[n].eq(ctr[n] + 1), last[n].eq(ctr[n] + 1 == m1[limit[n]])]
        E, B, FA, RO = (Signal(A, name=n) for n in ("E", "B", "FA", "RO"))
        mwidth = max(P, W["pixel"])
        mask = Signal(mwidth)
        evb = Signal(range(mwidth))  # the event being fanned out: the lowest set bit of mask
        nxt = Signal(range(mwidth))  # the event after it
        single = Signal()  # evb is the mask's last event
        abits = Signal(P)
        aprev = Signal(P * CW)
        fsm_idle = Signal()

        def lowest(x):
            """Index of the lowest set bit of ``x`` (0 when none)."""
            idx = Signal(range(mwidth), name="lowest")
            for b in reversed(range(mwidth)):
                with m.If(x[b]):
                    m.d.comb += idx.eq(b)
            return idx

        def lane_of(bit):
            return bit[:pb] if P > 1 else Const(0, 1)

        # Bb[b] = B + bmul[b]: the weight-row offset of lane b's event, kept by its own accumulator
        # so that starting an event is a mux, not an addition.
        Bb = [Signal(A, name=f"Bb{b}") for b in range(P)]

        def set_b(value_of):
            return [B.eq(value_of(B, 0))] + [Bb[b].eq(value_of(Bb[b], bmul[b])) for b in range(P)]

        def without(x, bit):
            return x & ~Cat(*[bit == b for b in range(mwidth)])

        def start_event(x, bit, following, is_last):
            """Make ``bit`` of word mask ``x`` the current event; ``following`` is the one after it
            (``is_last``: none), so the event after next is found while this one fans out."""
            m.d.sync += [mask.eq(x), evb.eq(bit), nxt.eq(following), single.eq(is_last),
                         RO.eq(Mux(src_is["img"], B, Array(Bb)[lane_of(bit)]))]

        last_word = wi == m1["words"]

        # Scan stages: a word's events, found from its registered read (c + 3) and registered
        # (c + 4), then whether there are any and the first one (c + 5): SCAN_LATCH decides from
        # flip-flops alone.
        sc_mask, sc_zero, sc_low = Signal(mwidth), Signal(), Signal(range(mwidth))
        sc_low2, sc_single = Signal(range(mwidth)), Signal()
        sc_anew, sc_aprev, sc_abits = Signal(P * CW), Signal(P * CW), Signal(P)
        word_mask = Signal(mwidth)
        a_prev = Signal(P * CW)
        m.d.comb += a_prev.eq(Mux(t == 1, 0, cnt_q))
        a_new = [(a_prev[i * CW:(i + 1) * CW] + spk_q[i])[:CW] for i in range(P)]
        with m.If(src_is["img"]):
            m.d.comb += word_mask.eq(img_q)
        with m.Elif(src_is["tdec"]):
            m.d.comb += word_mask.eq(Cat(*[v != 0 for v in a_new]))
        with m.Else():
            m.d.comb += word_mask.eq(spk_q)
        wm, wm_anew, wm_aprev, wm_abits = Signal(mwidth), Signal(P * CW), Signal(P * CW), Signal(P)
        m.d.sync += [wm.eq(word_mask), wm_anew.eq(Cat(*a_new)), wm_aprev.eq(a_prev), wm_abits.eq(spk_q)]
        wm_rest = Signal(mwidth)
        m.d.comb += wm_rest.eq(wm & (wm - 1))
        m.d.sync += [sc_low2.eq(lowest(wm_rest)), sc_single.eq(wm_rest == 0)]
        m.d.sync += [sc_mask.eq(wm), sc_zero.eq(wm == 0), sc_low.eq(lowest(wm)),
                     sc_anew.eq(wm_anew), sc_aprev.eq(wm_aprev), sc_abits.eq(wm_abits)]

        def advance(with_b=True):
            """Step the word counters (c2, c1, c0) and the address accumulators E (and B)."""
            m.d.sync += wi.eq(wi + 1)
            def step_b(j):
                return set_b(lambda acc, _: acc + f[j]) if with_b else []

            with m.If(~last["c0"]):
                m.d.sync += step("c0") + [E.eq(E + f["e_j0"])] + step_b("b_j0")
            with m.Elif(~last["c1"]):
                m.d.sync += restart("c0") + step("c1") + [E.eq(E + f["e_j1"])] + step_b("b_j1")
            with m.Else():
                m.d.sync += restart("c0", "c1") + [c2.eq(c2 + 1), E.eq(E + f["e_j2"])] + step_b("b_j2")

        # Scatter pipeline: issue (FANOUT) → s1 (RAMs read) → s2 (ACC[addr] += lanes, written).
        # Scatter pipeline: issue (FANOUT: weight / b / Bcum reads) → s1 (ACC read) → s2 (the addend
        # of each lane) → s3 (ACC[addr] += addend, written).
        # Scatter pipeline: issue (FANOUT: weight / b / Bcum reads) → s2 (ACC read issued) → s4 (the
        # addend of each lane, from the reads, registered once more) → s5 (ACC[addr] += addend,
        # written).
        sv = [None] + [Signal(name=f"s{i}_valid") for i in (1, 2, 3, 4, 5)]
        sa = [None] + [Signal(range(D["acc"]), name=f"s{i}_addr") for i in (1, 2, 3, 4, 5)]
        sl = [None] + [Signal(range(P + 1), name=f"s{i}_lanes") for i in (1, 2, 3, 4, 5)]
        sh = [None] + [Signal(range(max(mwidth, 2)), name=f"s{i}_shift") for i in (1, 2, 3, 4)]
        sg = [None] + [Signal(name=f"s{i}_a") for i in (1, 2, 3, 4)]
        sp = [None] + [Signal(CW, name=f"s{i}_prev") for i in (1, 2, 3, 4)]
        m.d.sync += sv[1].eq(0)
        for i in (2, 3, 4, 5):
            m.d.sync += [sv[i].eq(sv[i - 1]), sa[i].eq(sa[i - 1]), sl[i].eq(sl[i - 1])]
        for i in (2, 3, 4):
            m.d.sync += [sh[i].eq(sh[i - 1]), sg[i].eq(sg[i - 1]), sp[i].eq(sp[i - 1])]
        s1_valid, s1_addr, s1_shift, s1_a, s1_prev, s1_lanes = sv[1], sa[1], sh[1], sg[1], sp[1], sl[1]

        # Linear-pass pipeline (INIT, CUM, SINK, max-pool): issue → q1 → q2 (→ q3 for the sink).
        KIND = {"init": 1, "cum": 2, "sink": 3, "mp_first": 4, "mp_tap": 5, "mp_out": 6}
        # The data of a word issued in cycle c is there at q3 (c + 3).
        q1_kind, q2_kind, q3_kind = Signal(3), Signal(3), Signal(3)
        q1_w, q2_w, q3_w = Signal(A), Signal(A), Signal(A)  # word index (ACC / MEM address)
        q1_a, q2_a, q3_a = Signal(A), Signal(A), Signal(A)  # address of the word written (SPK / CUR / CNT)
        q1_a2, q2_a2, q3_a2 = Signal(A), Signal(A), Signal(A)  # second written address (previous max)
        q1_first, q2_first, q3_first = Signal(), Signal(), Signal()  # t == 1
        q1_fire, q2_fire, q3_fire = Signal(), Signal(), Signal()  # t > D: the DIF may fire
        q1_int, q2_int, q3_int = Signal(), Signal(), Signal()  # t <= T: a current arrives
        m.d.sync += [q1_kind.eq(0), q2_kind.eq(q1_kind), q2_w.eq(q1_w), q2_a.eq(q1_a), q2_a2.eq(q1_a2),
                     q2_first.eq(q1_first), q2_fire.eq(q1_fire), q2_int.eq(q1_int),
                     q3_kind.eq(q2_kind), q3_w.eq(q2_w), q3_a.eq(q2_a), q3_a2.eq(q2_a2),
                     q3_first.eq(q2_first), q3_fire.eq(q2_fire), q3_int.eq(q2_int)]

        def issue(kind, w, a=0, a2=0):
            m.d.sync += [q1_kind.eq(KIND[kind]), q1_w.eq(w), q1_a.eq(a), q1_a2.eq(a2), q1_first.eq(t == 1),
                         q1_fire.eq(t > dly), q1_int.eq(t <= T)]

        # Transposer block (P rows of P bits).
        tr_block = [Signal(P, name=f"tr_row{r}") for r in range(P)]
        tr_r = Signal(range(2 * P + 4))
        tr_rd, tr_wr, tr_row = Signal(A), Signal(A), Signal(A)
        tr_in0, tr_out0, tr_row0 = Signal(A), Signal(A), Signal(A)
        tr_valid, tr_valid2, tr_valid3 = Signal(), Signal(), Signal()
        tr_more = Signal()  # column groups left (c1 < groups)
        tr_idx, tr_idx2, tr_idx3 = (Signal(range(2 * P + 3), name=f"tr_idx{i}") for i in (1, 2, 3))

        best = Signal(signed(self.logit_width))
        best_i = Signal(range(max(self.num_classes, 2)))
        cls = Signal(range(self.num_classes + 1))
        lane_i = Signal(range(P + 1))
        out_sh = Signal(P * W["acc"])

        # The small ROMs (LUT logic) are addressed by ra alone, in every state: no state decode
        # in front of them. INIT reads biases, SINK thresholds and initial potentials.
        m.d.comb += [b_r.addr.eq(ra), t_r.addr.eq(ra), v_r.addr.eq(ra)]

        # ==== control FSM ==========================================================================
        with m.FSM(name="ctl") as fsm:
            m.d.comb += fsm_idle.eq(fsm.ongoing("IDLE"))
            with m.State("IDLE"):
                m.d.comb += [self.image.ready.eq(1), spk_r.addr.eq(self.dbg_addr)]
                with m.If(self.image.valid):
                    m.d.comb += [img_w.addr.eq(0), img_w.data.eq(self.image.payload), img_w.en.eq(1)]
                    m.d.sync += [pix.eq(1), dly.eq(self.delay), cyc.eq(1), spikes.eq(0), sops.eq(0), op.eq(0)]
                    m.next = "OP_START" if self.n_pixels == 1 else "LOAD"
            with m.State("LOAD"):
                m.d.comb += self.image.ready.eq(1)
                with m.If(self.image.valid):
                    m.d.comb += [img_w.addr.eq(pix), img_w.data.eq(self.image.payload), img_w.en.eq(1)]
                    m.d.sync += pix.eq(pix + 1)
                    with m.If(pix == self.n_pixels - 1):
                        m.next = "OP_START"
            with m.State("OP_START"):
                m.d.sync += load_op()
                m.d.sync += [t.eq(1), t_first.eq(1), t_in.eq(1), t_over.eq(0), wi.eq(0), g.eq(0)]
                m.next = "OP_SETUP"
            with m.State("OP_SETUP"):
                m.d.sync += [src_fb.eq(f["src_base"]), b_fb.eq(f["b_spk"]), cur_fb.eq(f["cur_base"]),
                             out_fb.eq(f["out_base"]), last_t.eq(Mux(sink_is["dif"], T + dly, T)),
                             ra.eq(f["bias_base"])]
                with m.If((src_is["syn"]) | (src_is["img"]) | (src_is["tdec"])):
                    m.next = "INIT"
                with m.Else():
                    m.next = "FRAME"
            # ---- INIT: ACC ← bias, one word a cycle --------------------------------------------
            with m.State("INIT"):
                with m.If(wi < f["acc_words"]):
                    issue("init", wi)
                    m.d.sync += [wi.eq(wi + 1), g.eq(Mux(g == m1["acc_groups"], 0, g + 1)),
                                 ra.eq(Mux(g == m1["acc_groups"], f["bias_base"], ra + 1))]
                with m.Else():
                    m.next = "FRAME"
            # ---- FRAME: reset the pass counters, dispatch this step's phases --------------------
            with m.State("FRAME"):
                m.d.sync += restart("c0", "c1", "k0", "k1", "k2")
                m.d.sync += [wi.eq(0), g.eq(0), c2.eq(0),
                             E.eq(f["e_base"]), FA.eq(0), ra.eq(f["prm_base"])]
                m.d.sync += set_b(lambda _, off: f["b_base"] + off)
                with m.If(t_over):
                    with m.If(sink_is["logits"]):
                        m.next = "OUT_RD"
                    with m.Else():
                        m.next = "OP_END"
                with m.Elif((src_is["tdec"]) & t_in):
                    m.next = "BUPD"
                with m.Elif((src_is["syn"]) & t_in | (src_is["img"]) & t_first):
                    m.next = "SCAN_RD"
                with m.Elif(src_is["maxpool"]):
                    m.next = "MP1"
                with m.Elif(src_is["transpose"]):
                    m.d.sync += [tr_r.eq(0), tr_in0.eq(0), tr_out0.eq(0), tr_row0.eq(0),
                                 tr_rd.eq(0), tr_wr.eq(0), tr_row.eq(0), tr_more.eq(f["groups"] != 0)]
                    m.next = "TR"
                with m.Elif(sink_is["logits"]):
                    m.next = "NEXT"
                with m.Else():
                    m.next = "SINK"
            with m.State("NEXT"):
                m.d.sync += [t.eq(t + 1), t_first.eq(0), t_in.eq(t < T), t_over.eq(t >= last_t),
                             src_fb.eq(src_fb + f["src_wpf"]), b_fb.eq(b_fb + f["b_wpf"]),
                             cur_fb.eq(cur_fb + f["cur_wpf"])]
                with m.If((~sink_is["dif"]) | (t > dly)):
                    m.d.sync += out_fb.eq(out_fb + f["out_wpf"])
                m.next = "FRAME"
            with m.State("OP_END"):
                m.d.sync += op.eq(op + 1)
                m.next = "OP_START"
            # ---- BUPD: Bcum(t) = Bcum(t−1) + b(t) -------------------------------------------------
            with m.State("BUPD"):
                m.d.comb += [spk_r.addr.eq(b_fb + wi), cnt_r.addr.eq(f["bcum"] + wi)]
                with m.If(wi < f["b_wpf"]):
                    issue("cum", wi, a=f["bcum"] + wi)
                    m.d.sync += wi.eq(wi + 1)
                with m.Else():
                    m.d.sync += wi.eq(0)
                    m.next = "SCAN_RD"
            # ---- SCAN / FANOUT: the event-driven scatter ---------------------------------------
            # Words stream in one a cycle, five in flight: SCAN_RD and SCAN_WAIT* issue the first
            # five reads, SCAN_LATCH looks at word wi (its events found in the scan stages
            # below) while issuing word wi + 5.
            def stream(index):
                """Issue the read of input word ``index`` (spikes, pixel, Acum) and step the stream."""
                m.d.comb += [spk_r.addr.eq(src_fb + index), img_r.addr.eq(index),
                             cnt_r.addr.eq(f["acum"] + index)]
                m.d.sync += ri.eq(index + 1)

            fill = ["SCAN_RD"] + [f"SCAN_WAIT{i}" for i in range(1, SCAN_FILL)] + ["SCAN_LATCH"]
            for i, (state, then) in enumerate(zip(fill, fill[1:])):
                with m.State(state):
                    stream(wi if i == 0 else ri)
                    m.next = then
            with m.State("SCAN_LATCH"):
                stream(ri)
                with m.If(src_is["tdec"]):
                    # Events: elements with Acum(t) > 0; Acum(t) is written back now.
                    m.d.comb += [cnt_w.addr.eq(f["acum"] + wi), cnt_w.data.eq(sc_anew), cnt_w.en.eq(1)]
                    m.d.sync += [abits.eq(sc_abits), aprev.eq(sc_aprev)]
                with m.If(sc_zero):
                    advance()
                    with m.If(last_word):
                        m.next = "DRAIN"
                with m.Else():
                    start_event(sc_mask, sc_low, sc_low2, sc_single)
                    m.next = "FANOUT"
            with m.State("FANOUT"):
                oy, ox = Signal(A), Signal(A)
                m.d.comb += [oy.eq(c2 + f["pad"] - k2), ox.eq(c1 + f["pad"] - k1)]
                inside = (f["check"] == 0) | ((oy >= 0) & (oy < f["hout"]) & (ox >= 0) & (ox < f["wout"]))
                m.d.comb += [w_r.addr.eq(RO),
                             spk_r.addr.eq(b_fb + RO), cnt_r.addr.eq(f["bcum"] + RO)]
                m.d.sync += [s1_valid.eq(inside), s1_addr.eq(E + FA), s1_shift.eq(evb),
                             s1_a.eq(Array(abits[i] for i in range(P))[lane_of(evb)]),
                             s1_prev.eq(Array(aprev[i * CW:(i + 1) * CW] for i in range(P))[lane_of(evb)]),
                             s1_lanes.eq(Mux(last["k0"], f["last_lanes"], P))]
                with m.If(~last["k0"]):
                    m.d.sync += step("k0") + [FA.eq(FA + f["fa_j0"]), RO.eq(RO + f["fw_j0"])]
                with m.Elif(~last["k1"]):
                    m.d.sync += restart("k0") + step("k1") + [FA.eq(FA + f["fa_j1"]), RO.eq(RO + f["fw_j1"])]
                with m.Elif(~last["k2"]):
                    m.d.sync += restart("k0", "k1") + step("k2") + [FA.eq(FA + f["fa_j2"]), RO.eq(RO + f["fw_j2"])]
                with m.Else():
                    # This event is done: the next one in the word, or the next word.
                    m.d.sync += restart("k0", "k1", "k2") + [FA.eq(0)]
                    with m.If(single):
                        advance()
                        with m.If(last_word):
                            m.next = "DRAIN"
                        with m.Else():
                            m.next = "SCAN_RD"
                    with m.Else():
                        rest = Signal(mwidth)  # the mask without this event
                        rest2 = Signal(mwidth)  # … and without the next
                        m.d.comb += [rest.eq(without(mask, evb)), rest2.eq(without(rest, nxt))]
                        start_event(rest, nxt, lowest(rest2), rest2 == 0)
            # DRAIN: the scatter's last sums land (ACC reads are transparent).
            drain = ["DRAIN"] + [f"DRAIN{i}" for i in range(1, SCAN_DRAIN)]
            for state, then in zip(drain, drain[1:]):
                with m.State(state):
                    m.next = then
            with m.State(drain[-1]):
                m.d.sync += [wi.eq(0), g.eq(0), ra.eq(f["prm_base"])]
                with m.If(sink_is["logits"]):
                    m.next = "NEXT"
                with m.Else():
                    m.next = "SINK"
            # ---- SINK: DIF or store, one word a cycle --------------------------------------------
            with m.State("SINK"):
                m.d.comb += [acc_r.addr.eq(wi), cur_r.addr.eq(cur_fb + wi), mem_r.addr.eq(wi)]
                with m.If(gap):  # half rate (single-port memories): a cycle without a read
                    m.d.sync += gap.eq(0)
                with m.Elif(wi < f["sink_words"]):
                    issue("sink", wi, a=out_fb + wi)
                    m.d.sync += [wi.eq(wi + 1), g.eq(Mux(g == m1["sink_groups"], 0, g + 1)),
                                 ra.eq(Mux((g == m1["sink_groups"]) | (f["prm_scalar"] != 0), f["prm_base"], ra + 1))]
                    if p.sink_gap == 2:
                        m.d.sync += gap.eq(1)
                with m.Else():
                    m.next = "NEXT"
            # ---- MP1 / MP2: TDEC max-pool ------------------------------------------------------
            with m.State("MP1"):
                m.d.comb += [spk_r.addr.eq(src_fb + wi), cnt_r.addr.eq(f["cum"] + wi)]
                with m.If(wi < f["in_words"]):
                    issue("cum", wi, a=f["cum"] + wi)
                    m.d.sync += wi.eq(wi + 1)
                with m.Else():
                    m.d.sync += [wi.eq(0), k0.eq(0), k1.eq(0), FA.eq(0)]
                    m.next = "MP1_WAIT"
            with m.State("MP1_WAIT"):  # the last Ccum write lands before MP2 reads it
                m.next = "MP2"
            with m.State("MP2"):
                # Per output word: K·K tap reads of Ccum, then one read of the previous max.
                with m.If(wi < f["sink_words"]):
                    with m.If(k0 < f["taps"]):
                        m.d.comb += cnt_r.addr.eq(f["cum"] + E + FA)
                        with m.If(k0 == 0):
                            issue("mp_first", wi)
                        with m.Else():
                            issue("mp_tap", wi)
                        m.d.sync += k0.eq(k0 + 1)
                        with m.If(k1 == m1["K"]):
                            m.d.sync += [k1.eq(0), FA.eq(FA + f["fa_j1"])]
                        with m.Else():
                            m.d.sync += [k1.eq(k1 + 1), FA.eq(FA + f["fa_j0"])]
                    with m.Else():
                        m.d.comb += cnt_r.addr.eq(f["prev"] + wi)
                        issue("mp_out", wi, a=out_fb + wi, a2=f["prev"] + wi)
                        m.d.sync += [k0.eq(0), k1.eq(0), FA.eq(0)]
                        advance(with_b=False)
                with m.Else():
                    m.next = "NEXT"
            # ---- TR: block transpose of one frame ----------------------------------------------
            with m.State("TR"):
                # Block (row group c0, column group c1): steps 0..P−1 read rows, which land in the
                # block registers at steps 3..P+2 (from the registered read), steps P+3..2P+2 write
                # the P columns as rows of the copy.
                with m.If(tr_more):  # c1 < groups, kept in a register
                    m.d.sync += tr_r.eq(tr_r + 1)
                    with m.If(tr_r < P):
                        m.d.comb += spk_r.addr.eq(src_fb + tr_rd)
                        m.d.sync += [tr_rd.eq(tr_rd + f["groups"]), tr_row.eq(tr_row + 1)]
                    m.d.sync += [tr_valid.eq((tr_r < P) & (tr_row < f["rows"])), tr_idx.eq(tr_r),
                                 tr_valid2.eq(tr_valid), tr_idx2.eq(tr_idx), tr_valid3.eq(tr_valid2),
                                 tr_idx3.eq(tr_idx2)]
                    with m.If((tr_r >= 3) & (tr_r <= P + 2)):
                        for r in range(P):
                            with m.If(tr_idx3 == r):
                                m.d.sync += tr_block[r].eq(Mux(tr_valid3, spk_q, 0))
                    with m.If(tr_r > P + 2):
                        lane = (tr_r - P - 3)[:pb] if P > 1 else Const(0, 1)
                        col = Array(Cat(*[tr_block[r][i] for r in range(P)]) for i in range(P))[lane]
                        m.d.comb += [spk_w.addr.eq(out_fb + tr_wr), spk_w.data.eq(col), spk_w.en.eq(1)]
                        m.d.sync += tr_wr.eq(tr_wr + f["row_groups"])
                    with m.If(tr_r == 2 * P + 2):
                        m.d.sync += tr_r.eq(0)
                        with m.If(c0 == m1["row_groups"]):
                            m.d.sync += [c0.eq(0), c1.eq(c1 + 1), tr_more.eq(c1 + 1 < f["groups"]),
                                         tr_rd.eq(c1 + 1), tr_in0.eq(c1 + 1),
                                         tr_row.eq(0), tr_row0.eq(0),
                                         tr_wr.eq(tr_out0 - c0 + f["tr_out_step"]),
                                         tr_out0.eq(tr_out0 - c0 + f["tr_out_step"])]
                        with m.Else():
                            m.d.sync += [c0.eq(c0 + 1), tr_rd.eq(tr_in0 + f["tr_in_step"]),
                                         tr_in0.eq(tr_in0 + f["tr_in_step"]),
                                         tr_row.eq(tr_row0 + P), tr_row0.eq(tr_row0 + P),
                                         tr_wr.eq(tr_out0 + 1), tr_out0.eq(tr_out0 + 1)]
                with m.Else():
                    m.next = "NEXT"
            # ---- OUT / PRED: the logits, then the predicted class -----------------------------
            with m.State("OUT_RD"):
                m.d.comb += acc_r.addr.eq(wi)
                m.d.sync += lane_i.eq(0)
                m.next = "OUT_WAIT"
            with m.State("OUT_WAIT"):
                m.next = "OUT_WAIT2"
            with m.State("OUT_WAIT2"):
                m.d.sync += out_sh.eq(acc_r.data)
                m.next = "OUT_SEND"
            with m.State("OUT_SEND"):
                # The word's logits leave lane by lane from a shift register (no lane mux).
                val = out_sh[:W["acc"]].as_signed()
                m.d.comb += [self.logits.valid.eq(1), self.logits.payload.eq(val)]
                with m.If(self.logits.ready):
                    with m.If((cls == 0) | (val > best)):  # lowest index wins ties
                        m.d.sync += [best.eq(val), best_i.eq(cls)]
                    m.d.sync += [cls.eq(cls + 1), lane_i.eq(lane_i + 1), out_sh.eq(out_sh >> W["acc"])]
                    with m.If(cls == self.num_classes - 1):
                        m.d.sync += [cls.eq(0), self.cycles.eq(cyc + 1), self.spikes.eq(spikes),
                                     self.sops.eq(sops)]
                        m.next = "PRED"
                    with m.Elif(lane_i == P - 1):
                        m.d.sync += wi.eq(wi + 1)
                        m.next = "OUT_RD"
            with m.State("PRED"):
                m.d.comb += [self.prediction.valid.eq(1), self.prediction.payload.eq(best_i)]
                with m.If(self.prediction.ready):
                    m.next = "IDLE"

        one_hot_in_synthesis(fsm)
        m.d.comb += self.busy.eq(~fsm_idle)
        with m.If(~fsm_idle & ~fsm.ongoing("PRED")):
            m.d.sync += cyc.eq(cyc + 1)
        m.d.comb += self.dbg_data.eq(spk_r.data)

        # ==== scatter s1..s3: ACC[addr] += addend ====================================================
        with m.If(sv[2]):
            m.d.comb += acc_r.addr.eq(sa[2])
        # The weight ROM is seven banks deep: its bank select gets a cycle of its own (s4).
        w_qq, cnt_qq, spk_qq = Signal.like(w_q), Signal.like(cnt_q), Signal.like(spk_q)
        m.d.sync += [w_qq.eq(w_q), cnt_qq.eq(cnt_q), spk_qq.eq(spk_q)]
        acc_l = _lanes(acc_q, W["acc"], P, sign=True)
        w_l = _lanes(w_qq, W["weight"], P, sign=True)
        bc_l = _lanes(cnt_qq, CW, P, sign=False)
        addends, sums = [], []
        for ln in range(P):
            tdec_add = Mux(sg[4], bc_l[ln], 0) + Mux(spk_qq[ln], sp[4], 0)
            syn_add = Mux(src_is["img"], w_l[ln] << sh[4], w_l[ln])
            ad = Signal(signed(W["acc"]), name=f"addend{ln}")
            m.d.sync += ad.eq(Mux(src_is["tdec"], tdec_add, syn_add))
            s = Signal(signed(W["acc"]), name=f"sum{ln}")
            m.d.comb += s.eq(acc_l[ln] + ad)
            addends.append(ad)
            sums.append(s)
        # The event one cycle ahead read ACC before this sum was written: forward it. (Two cycles
        # ahead is covered by the read port's transparency.)
        forward = sv[4] & sv[5] & (sa[4] == sa[5])
        m.d.sync += acc_q.eq(Mux(forward, Cat(*sums), acc_r.data))
        with m.If(sv[5]):
            m.d.comb += [acc_w.addr.eq(sa[5]), acc_w.data.eq(Cat(*sums)), acc_w.en.eq(1)]
            m.d.sync += sops.eq(sops + sl[5])

        # ==== linear passes ==========================================================================
        with m.If(q2_kind == KIND["sink"]):  # ACC is cleared behind the sink (after its read)
            m.d.comb += [acc_w.addr.eq(q2_w), acc_w.data.eq(0), acc_w.en.eq(f["use_acc"] != 0)]
        with m.Switch(q3_kind):
            with m.Case(KIND["init"]):
                bias = []
                for i, v in enumerate(_lanes(b_q, W["bias"], P, sign=True)):
                    s = Signal(signed(W["acc"]), name=f"bias{i}")
                    m.d.comb += s.eq(Mux(f["has_bias"] != 0, v, 0))
                    bias.append(s)
                m.d.comb += [acc_w.addr.eq(q3_w), acc_w.data.eq(Cat(*bias)), acc_w.en.eq(1)]
            with m.Case(KIND["cum"]):  # Bcum(t) = Bcum(t−1) + b(t); Ccum likewise
                prev = Mux(q3_first, 0, cnt_q)
                new = [(prev[i * CW:(i + 1) * CW] + spk_q[i])[:CW] for i in range(P)]
                m.d.comb += [cnt_w.addr.eq(q3_a), cnt_w.data.eq(Cat(*new)), cnt_w.en.eq(1)]
        self._sink(m, f, sink_is, q3_kind == KIND["sink"], q3_w, q3_a, q3_first, q3_fire, q3_int,
                   acc_q, cur_q, mem_q, t_q, v_q, mem_w, cur_w, spk_w, spikes)

        # ==== max-pool ===============================================================================
        mp_max = Signal(P * CW)
        mp_now = [Signal(CW, name=f"mp_now{i}") for i in range(P)]
        cnt_l = _lanes(cnt_q, CW, P, sign=False)
        max_l = _lanes(mp_max, CW, P, sign=False)
        for i in range(P):
            m.d.comb += mp_now[i].eq(Mux(q3_kind == KIND["mp_first"], cnt_l[i],
                                         Mux(cnt_l[i] > max_l[i], cnt_l[i], max_l[i])))
        with m.If((q3_kind == KIND["mp_first"]) | (q3_kind == KIND["mp_tap"])):
            m.d.sync += mp_max.eq(Cat(*mp_now))
        with m.If(q3_kind == KIND["mp_out"]):
            prevmax = [Mux(q3_first, 0, v) for v in cnt_l]
            bits = Cat(*[max_l[i] > prevmax[i] for i in range(P)])
            m.d.comb += [spk_w.addr.eq(q3_a), spk_w.data.eq(bits), spk_w.en.eq(1),
                         cnt_w.addr.eq(q3_a2), cnt_w.data.eq(mp_max), cnt_w.en.eq(1)]
        return m

    def _sink(self, m, f, sink_is, go, w, a, first, fire_ok, integrate, acc_q, cur_q, mem_q, t_q, v_q,
              mem_w, cur_w, spk_w, spikes):
        """DIF (integrate, fire, reset by subtraction) or store of one word of P lanes, two stages.

        Stage q2 (``go``): the input current ``I`` (ACC << shift and/or a stored current), the
        potential before it ``v`` and ``v − θ``. Stage q3: ``v + I`` and ``v − θ + I`` side by
        side; fire where the latter is ≥ 0 (and ``t > D``), keep it as the new potential, else
        the former. Every frame-dependent flag travels with the word.
        """
        P, W = self.lanes, self.program.widths
        SW = W["sum"] + 1
        acc_l = _lanes(acc_q, W["acc"], P, sign=True)
        cur_l = _lanes(cur_q, W["cur"], P, sign=True)
        mem_l = _lanes(mem_q, W["mem"], P, sign=True)
        th_l = _lanes(t_q, W["threshold"], P, sign=True)
        v0_l = _lanes(v_q, W["v0"], P, sign=True)
        q4_go, q4_w, q4_a, q4_fire = Signal(), Signal.like(w), Signal.like(a), Signal()
        m.d.sync += [q4_go.eq(go), q4_w.eq(w), q4_a.eq(a), q4_fire.eq(fire_ok)]
        fire, vnew, stored = [], [], []
        for i in range(P):
            cur_in, v, vth = (Signal(signed(SW), name=f"{n}{i}") for n in ("in", "vb", "vth"))
            base = Mux(first, v0_l[i], mem_l[i])
            m.d.sync += [cur_in.eq(Mux(integrate, Mux(f["use_acc"] != 0, acc_l[i] << f["shift"][:5], 0)
                                       + Mux(f["use_cur"] != 0, cur_l[i], 0), 0)),
                         v.eq(base), vth.eq(base - th_l[i])]
            d = Signal(signed(SW), name=f"d{i}")
            m.d.comb += d.eq(vth + cur_in)
            fi = Signal(name=f"fire{i}")
            m.d.comb += fi.eq(q4_fire & (d >= 0))
            vn = Signal(signed(W["mem"]), name=f"vnew{i}")
            m.d.comb += vn.eq(Mux(fi, d, v + cur_in))
            fire.append(fi)
            vnew.append(vn)
            stored.append(cur_in[:W["cur"]])
        fired = Signal(P)
        m.d.sync += fired.eq(0)
        with m.If(fired != 0):  # counted a cycle later (off the sink's critical path)
            m.d.sync += spikes.eq(spikes + sum(fired[i] for i in range(P)))
        with m.If(q4_go):
            with m.If(sink_is["dif"]):
                m.d.comb += [mem_w.addr.eq(q4_w), mem_w.data.eq(Cat(*vnew)), mem_w.en.eq(1)]
                with m.If(q4_fire):
                    m.d.comb += [spk_w.addr.eq(q4_a), spk_w.data.eq(Cat(*fire)), spk_w.en.eq(1)]
                    m.d.sync += fired.eq(Cat(*fire))
            with m.Else():
                m.d.comb += [cur_w.addr.eq(q4_a), cur_w.data.eq(Cat(*stored)), cur_w.en.eq(1)]
