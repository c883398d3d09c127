"""What the accelerator's phase units share: the sequencer's control port, the frame, lane words.

Every phase unit (:mod:`~csdformer.hw.scatter`, :mod:`~csdformer.hw.sink`,
:mod:`~csdformer.hw.maxpool`, :mod:`~csdformer.hw.transpose`, :mod:`~csdformer.hw.logits`) is
started by the :class:`~csdformer.hw.sequencer.Sequencer` through a :class:`PhaseControl` port:
``start`` is high for one cycle in the sequencer's dispatch state (the unit's first state follows
in the next cycle), ``done`` is high in the unit's last cycle (the sequencer leaves its wait state
in the same cycle), so a phase costs exactly its own cycles, :func:`cycles` of its module.
``op`` carries the unit's group of the op register (:data:`csdformer.hw.program.FIELDS`), ``frame``
the step's flags and the frame's base addresses.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Mux, Signal, Value, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from .common import unsigned_bits
from .memory import ReadPort, WritePort

__all__ = ["PhaseControl", "frame_layout", "addr_shape", "acc_addr", "lane_word", "lanes_of", "Counter", "cumulate", "lowest", "issue_pipe", "WriteCursor", "idle_state", "Walk", "RowWalk", "PhaseUnit"]


def addr_shape(program) -> signed:
    """Signed address arithmetic wide enough for every memory (with room for negative offsets)."""
    return signed(max(unsigned_bits(max(program.depths.values())) + 3, 8))


def frame_layout(program) -> data.StructLayout:
    """The step ``t`` of an op as its flags (``first``: t = 1, ``integrate``: t ≤ T, ``fire``:
    t > D), ``bank`` (the ACC buffer of this frame: ``t − 1`` mod 2 for an op whose sink runs beside
    the next step's scatter, else 0; :attr:`~csdformer.hw.program.Program.acc_buffers`) and the
    base address of this frame of each operand (``src``, ``b``, ``cur``, ``out``)."""
    A = addr_shape(program)
    return data.StructLayout({"first": 1, "integrate": 1, "fire": 1, "bank": 1, "src": A, "b": A, "cur": A,
                              "out": A})


def acc_addr(program, word, bank):
    """A unit's ACC address: ``word`` in buffer ``bank`` (the frame's), the buffer above the word's
    bits (:class:`~csdformer.hw.memory.AccBuffers`); ``word`` alone with one buffer."""
    if program.acc_buffers == 1:
        return word
    k = (program.port_shape("acc")[0] // program.acc_buffers - 1).bit_length()
    low = Value.cast(word)[:k]
    return Cat(low, Const(0, k - len(low)), bank)


class PhaseUnit(wiring.Component):
    """A phase unit of ``program``: ``ctl`` (:class:`PhaseControl` with the op group ``op`` and the
    ``ctl_extra`` members), a read port ``<name>`` for each memory in ``reads`` and a write port
    ``<name>_w`` for each in ``writes`` (shapes from :meth:`Program.port_shape`), and ``extra``
    members."""

    def __init__(self, program, op, *, reads=(), writes=(), extra=None, ctl_extra=None):
        self.program = program
        members = {"ctl": In(PhaseControl(program, op, ctl_extra))}
        members.update({n: Out(ReadPort(*program.port_shape(n))) for n in reads})
        members.update({f"{n}_w": Out(WritePort(*program.port_shape(n))) for n in writes})
        super().__init__(dict(members, **(extra or {})))


class PhaseControl(wiring.Signature):
    """The sequencer's port to one phase unit (seen from the sequencer): ``start``, ``done``,
    ``frame``, and ``op`` (the unit's field group) where the unit has one: it holds from a cycle
    before ``start`` until ``done`` (the sequencer's record, written before its OP_DECODE, so a unit
    may read a registered copy: :class:`~csdformer.hw.scatter.Scatter`); ``extra`` members
    (``name: (flow, shape)``) for a unit's own commands and strobes."""

    def __init__(self, program, op: data.Layout | None = None, extra: dict | None = None):
        members = {"start": Out(1), "done": In(1), "frame": Out(frame_layout(program))}
        if op is not None:
            members["op"] = Out(op)
        for name, (flow, shape) in (extra or {}).items():
            members[name] = flow(shape)
        super().__init__(members)


def lane_word(width: int, lanes: int, *, sign: bool = True) -> data.ArrayLayout:
    """A word of ``lanes`` lanes of ``width`` bits (lane 0 in the low bits)."""
    return data.ArrayLayout(signed(width) if sign else unsigned(width), lanes)


def lanes_of(word, width: int, lanes: int, *, sign: bool = True) -> data.View:
    """View a raw word as :func:`lane_word`."""
    return data.View(lane_word(width, lanes, sign=sign), word)


def cumulate(prev, spikes, width: int, lanes: int):
    """Cumulative spike counts one frame on: each lane of ``prev`` plus its spike bit."""
    prev = lanes_of(prev, width, lanes, sign=False)
    return Cat(*[(prev[i] + spikes[i])[:width] for i in range(lanes)])


class Counter:
    """A narrow counter that keeps an "at its last value" flag in a register beside it, so that a
    next-state choice on it needs no comparator (``limit`` is the last value, a field − 1). It
    counts down what is left to the last value (``left``), so the flag of the value after a step
    (``next_last``: one left) is a compare with a constant, one or two LUT levels, where ``value +
    1 == limit`` was an adder and a compare with the field (on the tap walk's path into ``done``:
    the iCEBreaker's critical path, 37.2 MHz)."""

    def __init__(self, name: str, width: int, limit):
        self.left = Signal(width, name=f"{name}_left")
        self.last = Signal(name=f"{name}_last")
        self.limit = limit

    @property
    def next_last(self):
        """Whether a step now reaches the last value."""
        return self.left == 1

    def restart(self) -> list:
        return [self.left.eq(self.limit), self.last.eq(self.limit == 0)]

    def step(self) -> list:
        return [self.left.eq(self.left - 1), self.last.eq(self.next_last)]


def lowest(m, x):
    """Index of the lowest set bit of ``x`` (0 when none), as a combinational signal of ``m``."""
    idx = Signal(range(max(len(x), 2)), name="lowest")
    for b in reversed(range(len(x))):
        with m.If(x[b]):
            m.d.comb += idx.eq(b)
    return idx


def issue_pipe(m, layout, depth: int, name: str) -> list:
    """A linear pass's issue pipeline: ``stages[1]`` is set (sync) by the state that issues a word
    and is cleared otherwise; ``stages[k]`` is that word ``k`` cycles after its read was issued,
    its data there at ``stages[3]`` (:data:`csdformer.hw.memory.Q_LATENCY`)."""
    stages = [None] + [Signal(layout, name=f"{name}{i}") for i in range(1, depth + 1)]
    m.d.sync += stages[1].eq(0)
    m.d.sync += [stages[i].eq(stages[i - 1]) for i in range(2, depth + 1)]
    return stages


class WriteCursor:
    """The address a linear pass writes, counted at the write end instead of carried down its
    issue pipeline: loaded with ``base`` when the pass issues its first word, one on with each
    write. A pass writes one word per word it issues, in order, so the cursor is the issued word's
    address (``base`` + its index) without a register a stage. The next pass's first issue comes
    no earlier than the previous pass's last write (which still sees the old cursor: the load
    wins that cycle, after the write has used it).

    ``fresh`` is set by :meth:`idle` (the unit's idle statements) and cleared by the first issue.
    ``skip``: words stepped over after a write, besides the one (an output tile's other groups)."""

    def __init__(self, m, name: str, shape, base, *, issue, write, skip=0):
        self.value = Signal(shape, name=name)
        self.fresh = Signal(name=f"{name}_fresh")
        with m.If(write):
            m.d.sync += self.value.eq(self.value + 1 + skip)
        with m.If(issue):
            m.d.sync += self.fresh.eq(0)
            with m.If(self.fresh):
                m.d.sync += self.value.eq(base)

    def idle(self) -> list:
        return [self.fresh.eq(1)]


def idle_state(m, ctl, then: str, stmts=()) -> None:
    """A phase unit's ``IDLE`` state: go to ``then`` on ``ctl.start``. ``stmts`` (sync) set the
    unit's registers up for its pass from the op's fields; they apply in every idle cycle, not
    only on ``start`` (the fields are loaded cycles before a start), so that ``start``, which
    comes from another unit's ``done`` through the sequencer, drives no register enables."""
    with m.State("IDLE"):
        m.d.sync += list(stmts)
        with m.If(ctl.start):
            m.next = then


class Walk:
    """A pass over ``words`` words, one a cycle: ``word`` and ``more`` (``word < words``, kept in
    a register beside it, so that a unit's ``done`` and its next state need no comparator)."""

    def __init__(self, words):
        self.words = words
        self.word = Signal(len(words), name="wi")  # up to ``words``: the pass ends there
        self.more = Signal(name="more")

    def restart(self) -> list:
        return [self.word.eq(0), self.more.eq(self.words != 0)]

    def step(self) -> list:
        return [self.word.eq(self.word + 1), self.more.eq(self.word + 1 < self.words)]


class RowWalk(Walk):
    """A :class:`Walk` with the ROM address of each word's parameters (bias, or threshold and
    ``v0``): one ROM word per lane group of a row, back to ``base`` after the row's last group
    (``scalar``: always ``base``). The address is a register, so no adder sits before the ROM."""

    def __init__(self, words, groups_m1, base, rom_depth: int, scalar=0):
        super().__init__(words)
        self.group = Signal(len(groups_m1), name="g")
        self.rom = Signal(range(max(rom_depth, 2)), name="ra")
        self.groups_m1, self.base, self.scalar = groups_m1, base, scalar

    def restart(self) -> list:
        return super().restart() + [self.group.eq(0), self.rom.eq(self.base)]

    @property
    def row_end(self):
        """The word is its row's last."""
        return self.group == self.groups_m1

    def step(self) -> list:
        row_end = self.row_end
        return super().step() + [self.group.eq(Mux(row_end, 0, self.group + 1)),
                                 self.rom.eq(Mux(row_end | self.scalar, self.base, self.rom + 1))]
