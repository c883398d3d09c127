"""Cycle model of the whole-network accelerator: the phase units' cycles summed over the op program.

Given the golden model's spike frames of one image, :func:`image_model` returns the cycles the
accelerator (:mod:`csdformer.hw.accelerator`) spends per op and in total, the synaptic operations
(SOPs: one addition of a weight, or of a count in TDEC, into a real output neuron) and the spikes
its DIF layers fire. An op's cycles are the sequencer's (:func:`csdformer.hw.sequencer.cycles`)
plus those of each phase unit it runs, each from the unit's own module: ``bias.cycles``,
``cumulate.cycles``, ``scatter.cycles`` (which needs the op's input events and live words, counted
here from the golden frames), ``sink.cycles``, ``maxpool.cycles``, ``transpose.cycles``,
``logits.cycles``; the image load costs one cycle a pixel.

With a memory backend's timing (:class:`~csdformer.hw.weightstream.StreamTiming`) the model
also runs the model loader (:mod:`csdformer.hw.loader`) beside the ops: record ``k`` (op ``k``'s
op word and weights) starts loading when the loader has finished record ``k − 1`` and op ``k − 2``
has freed its slot, and takes :func:`~csdformer.hw.loader.record_cycles`; op ``k`` waits in
``OP_START`` until its record is in. Images start with the first two records in (the loader runs
ahead while the accelerator is idle). :attr:`ImageModel.wait_cycles` is the time spent waiting
on weights; :attr:`ImageModel.bound` names which bound holds. With resident weights
(``Program.resident``) the records are read once after reset, before the first image: an image
neither waits nor loads.

A DIF op's fire-only sink passes run as the sink's tail after the op's end, beside the next op
(:func:`~csdformer.hw.sequencer.tail_cycles`); the ops are laid out in time (:func:`_schedule`)
and an op whose held ``FRAME`` comes before the tail is done waits for it.

The accelerator's own counters (``cycles``, ``sops``, ``spikes``) are held to this model exactly
by the verification bench.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import bias, cumulate, logits, maxpool, scatter, sequencer, sink, transpose
from .loader import record_cycles
from .sequencer_op import prefetch_cycles
from .program import SCATTER_SRC, Op, Program, Sink, Src

__all__ = ["ImageModel", "image_model", "trace_layers", "scatter_events", "frame_events", "op_costs", "min_cycles"]


@dataclass
class ImageModel:
    cycles: int
    sops: int
    spikes: int
    per_op: dict[str, int] = field(default_factory=dict)
    sops_per_op: dict[str, int] = field(default_factory=dict)
    wait_cycles: int = 0  # cycles ops waited for their records (weights)
    load_cycles: int = 0  # cycles the loader spent reading records (all ops of the image)

    @property
    def bound(self) -> str:
        """``"memory"`` when loading the image's records takes longer than computing it, else
        ``"compute"``."""
        return "memory" if self.load_cycles > self.cycles - self.wait_cycles else "compute"

    def utilization(self, lanes: int) -> float:
        """Ideal SOP cycles (SOPs / lanes) over the cycles spent."""
        return self.sops / lanes / self.cycles


def trace_layers(program: Program) -> tuple[str, ...]:
    """The artifact layers whose golden frames the model needs (every spike tensor)."""
    return tuple(program.spike_layers)


def _bits(program: Program, name: str, frames: np.ndarray) -> np.ndarray:
    """Golden frames ``(T, *shape)`` of a spike tensor → ``(T, words, P)`` bits in its layout."""
    t = program.tensors[name]
    m = t.to_words(frames)  # (T, rows, G·P)
    return m.reshape(frames.shape[0], t.words, program.lanes)


def scatter_events(program: Program, op: Op, frames: dict[str, np.ndarray], image: np.ndarray, T: int):
    """(events, fanout, live_words, sops, chained) of an op's scatter over all its frames (see
    :func:`op_costs`)."""
    return tuple(int(sum(x)) for x in frame_events(program, op, frames, image, T))


def _chained(live: np.ndarray) -> int:
    """Words with events whose word before has events too (:func:`~csdformer.hw.scatter.chain`)."""
    return int((live[:-1] & live[1:]).sum())


def frame_events(program: Program, op: Op, frames: dict[str, np.ndarray], image: np.ndarray, T: int):
    """Per scattered frame (one for the encoding layer, else ``T``): the lists (events, fanout,
    live_words, sops, chained) of an op's scatter; ``fanout`` is the fan-outs' cycles, the events'
    :func:`~csdformer.hw.scatter.tap_cycles` at their positions; ``chained`` the words with
    events whose word before has events too (see :func:`op_costs`)."""
    f = op.f
    layer = program.artifact.layer(op.layers[0])
    events, fanout, live_words, sops, chained = [], [], [], [], []
    if op.src is Src.IMG:
        c, h, w = program.input_shape
        px = image.reshape(c, h, w).transpose(1, 2, 0).reshape(-1)  # (y, x, c) order
        ev = np.array([bin(int(v)).count("1") for v in px])
        taps = _valid_taps(f, h, w)[:, :, None].repeat(c, axis=2).reshape(-1)
        cyc = scatter.tap_cycles(op, program)[:, :, None].repeat(c, axis=2).reshape(-1)
        return ([int(ev.sum())], [int((ev * cyc).sum())], [int((px[:-1] != 0).sum())],
                [int((ev * taps).sum()) * f["real_cols"]], [_chained(px != 0)])
    if op.src is Src.SYN:
        src = program.tensors[_resolve(program, layer.inputs[0])].name
        bits = _bits(program, src, frames[src])  # (T, words, P)
        n2, n1, n0 = f["n2"], f["n1"], f["n0"]
        if f["check"]:
            taps = np.repeat(_valid_taps(f, n2, n1).reshape(-1), n0)
        else:
            taps = np.ones(n2 * n1 * n0, dtype=np.int64)
        cyc = np.repeat(scatter.tap_cycles(op, program).reshape(-1), n0)
        for t in range(T):
            ev = bits[t].sum(axis=1)
            events.append(int(ev.sum()))
            fanout.append(int((ev * cyc).sum()))
            live_words.append(int((ev[:-1] != 0).sum()))
            sops.append(int((ev * taps).sum()) * f["real_cols"])
            chained.append(_chained(ev != 0))
        return events, fanout, live_words, sops, chained
    # TDEC: events are elements with Acum(t) > 0.
    a = _bits(program, layer.inputs[0], frames[layer.inputs[0]])
    acum = np.cumsum(a, axis=0)
    for t in range(T):
        live = acum[t] > 0
        ev = int(live.sum())
        events.append(ev)
        fanout.append(ev * f["fanout"])
        live_words.append(int(live.any(axis=1)[:-1].sum()))
        sops.append(ev * f["real_cols"])
        chained.append(_chained(live.any(axis=1)))
    return events, fanout, live_words, sops, chained


def _spikes(program: Program, op: Op, frames: np.ndarray) -> int:
    """Spikes an op fires: all of its layer's, or those of its tile's lane groups."""
    if op.tile is None:
        return int(frames.sum())
    P, t = program.lanes, op.tile
    return int(program.tensors[op.name].to_words(frames)[..., t.first * P:(t.first + t.groups) * P].sum())


def _valid_taps(f: dict, h: int, w: int) -> np.ndarray:
    """Per input position (y, x): how many of the K×K taps land inside the output."""
    K, pad, ho, wo = f["f2"], f["pad"], f["hout"], f["wout"]
    y = np.arange(h)[:, None] + pad - np.arange(K)[None, :]
    x = np.arange(w)[:, None] + pad - np.arange(K)[None, :]
    vy = ((y >= 0) & (y < ho)).sum(axis=1)
    vx = ((x >= 0) & (x < wo)).sum(axis=1)
    return vy[:, None] * vx[None, :]


def _resolve(program: Program, name: str) -> str:
    a = program.artifact
    while a.layer(name).kind == "flatten":
        name = a.layer(name).inputs[0]
    return name


def image_model(program: Program, frames: dict[str, np.ndarray], image: np.ndarray, delay: int,
                timing=None) -> ImageModel:
    """Cycles, SOPs and spikes of one image.

    ``frames``: golden ``snn`` frames ``(T, *shape)`` of every spike layer of this image (see
    :func:`trace_layers`), at the same ``delay``; ``image``: its pixels ``(C, H, W)``;
    ``timing``: the memory backend's :class:`~csdformer.hw.weightstream.StreamTiming` (None: the
    records are always in time).
    """
    T = program.T
    per_op: dict[str, int] = {}
    sops_op: dict[str, int] = {}
    fronts: list[int] = []
    spikes = 0
    costs = op_costs(program, delay)
    for op, cost in zip(program.ops, costs):
        c, s, front = cost["fixed"], 0, cost["front"]
        if op.src in SCATTER_SRC:
            _, fanout, live_words, sops, chained = frame_events(program, op, frames, image, T)
            s = sum(sops)
            # Each scattered frame's cycles beyond its fixed ones.
            var = [fo + cost["per_live_word"] * w - cost["per_chained"] * ch
                   for fo, w, ch in zip(fanout, live_words, chained)]
            c += sum(var)
            # Steps 2..T: the sink of the step before runs beside this step's front phases.
            c -= sum(min(cost["frame_fixed"] + v, cost["beside"]) for v in var[1:])
            if op.src in sequencer.TAIL_FREE:  # the first step runs beside the tail before
                front += var[0]
        if op.sink is Sink.DIF:
            spikes += _spikes(program, op, frames[op.name])
        per_op[op.label] = c
        sops_op[op.label] = s
        fronts.append(front)
    waits, load, held = _schedule(program, list(per_op.values()), fronts, [c["tail"] for c in costs], timing)
    for op, h in zip(program.ops, held):
        per_op[op.label] += h
    total = program.n_pixels + sum(per_op.values()) + waits
    return ImageModel(cycles=total, sops=sum(sops_op.values()), spikes=spikes, per_op=per_op, sops_per_op=sops_op,
                      wait_cycles=waits if timing is not None and not program.resident else 0, load_cycles=load)


def _schedule(program: Program, costs: list[int], fronts: list[int], tails: list[int], timing):
    """One image's ops in time, from op 0's first ``OP_START``: ``(cycles ops waited for their
    records, cycles the loader spent reading them, per op the cycles its held FRAME waited for the
    tail of the op before)``. ``costs``: each op's cycles without waiting; ``fronts``: from its
    ``OP_START`` (after any wait for its record) to the ``FRAME`` a tail holds; ``tails``:
    :func:`~csdformer.hw.sequencer.tail_cycles`.

    The records: with resident weights op ``j + 1``'s record is in the prefetch register
    ``prefetch_cycles`` after op ``j``'s decode (the cycle after its copy, two after its
    ``OP_START``), op 0's fetched during the last image, and an op waits for it in ``OP_FETCH``;
    streamed (``timing``), record ``k`` starts loading when the loader has finished record
    ``k − 1`` and op ``k − 2`` has freed its slot (in its last cycle), and op ``k`` waits in
    ``OP_START`` until it is in, the first two records in before the image; else no waits."""
    resident, streamed = program.resident, timing is not None and not program.resident
    rec = [record_cycles(program, op, timing) for op in program.ops] if streamed else []
    pc = prefetch_cycles(program)
    never = -(1 << 40)
    start, waits, prefetched, loader_idle, tail_open = 0, 0, 0, never, never
    ready: list[int] = []  # streamed: when each record's slot flag is up
    ends: list[int] = []  # each op's last cycle (it frees its slot there)
    held: list[int] = []
    for k, cost in enumerate(costs):
        wait = 0
        if resident:
            wait = max(0, prefetched - (start + 1))  # OP_FETCH is the cycle after OP_START
            prefetched = start + 1 + wait + 1 + pc  # this op's decode, then the next record's prefetch
        elif streamed:
            if k < 2:
                ready.append(never)  # prefetched before the image
            else:
                # The loader's IDLE sees the slot free the cycle after op k-2's last cycle, and
                # hands the read to the backend in that cycle (the backend is always ready).
                ready.append(max(loader_idle, ends[k - 2] + 1) + rec[k])
                loader_idle = ready[k]
            if k == 1:
                loader_idle = never
            wait = max(0, ready[k] - start)
        hold = max(0, tail_open - (start + wait + fronts[k]))
        waits += wait
        held.append(hold)
        ends.append(start + wait + cost + hold - 1)
        tail_open = ends[k] + tails[k] if tails[k] else never
        start = ends[k] + 1
    return waits, sum(rec) if streamed else 0, held


def op_costs(program: Program, delay: int) -> list[dict]:
    """The cycle model as formulas, per op, for a given delay (what ``csdformer rtl`` documents):
    the sum of the cycles of the sequencer and of the phase units the op runs (each unit's
    ``cycles``), less what runs side by side.

    ``cycles = fixed + fanout + per_live_word · live_words − per_chained · chained
    − Σ_{t=2..T} min(F_t, beside)``
    where ``fanout`` is the fan-outs' cycles: the sum over the op's input events (spikes of its
    input; set pixel bits for the encoding layer; elements with ``Acum(t) > 0`` for TDEC) of
    ``per_event`` (``K·K·G`` lane words), less a conv's taps outside the output at the event's
    position (:func:`~csdformer.hw.scatter.tap_cycles`); ``live_words`` the input words holding at
    least one event, but the last word of each frame; ``chained`` the input words holding events
    whose word before holds events too (:func:`~csdformer.hw.scatter.chain`); and ``F_t =
    frame_fixed + fanout_t + per_live_word · live_words_t − per_chained · chained_t`` step ``t``'s
    front phases (TDEC's cumulative counts and the scatter). ``beside``: the cycles of one sink pass where it runs beside
    the next step's front phases (two ACC buffers, a scatter into a DIF or a store:
    :mod:`csdformer.hw.sequencer`), else 0: a step then costs ``max(F_t, beside)``, not their sum.

    A DIF op's fire-only passes run as the sink's tail after its end (``tail``:
    :func:`~csdformer.hw.sequencer.tail_cycles`, 0 without one), and the next op waits for it in
    the ``FRAME`` it reaches ``front`` cycles after its ``OP_START`` (plus its first step's fan-outs
    and live words for a scatter of spikes, :data:`~csdformer.hw.sequencer.TAIL_FREE`), if the tail
    is not done by then.
    """
    out = []
    for op in program.ops:
        fixed = sequencer.cycles(op, program, delay)
        per_event = per_live_word = per_chained = frame_fixed = beside = tail = 0
        front = 3 + sequencer.fetch_cycles(program)
        if op.src in SCATTER_SRC:
            fixed += bias.cycles(op, program) + scatter.cycles(op, program, fanout=0, live_words=0)
            per_event, per_live_word = op.f["fanout"], scatter.restart(op, program)
            per_chained = scatter.chain(op, program)
            front += bias.cycles(op, program)
        if op.src is Src.TDEC or (op.src is Src.MAXPOOL and not program.pool_counts):
            fixed += cumulate.cycles(op, program)
        if op.src is Src.MAXPOOL:
            fixed += maxpool.cycles(op, program)
        if op.src is Src.TRANSPOSE:
            fixed += transpose.cycles(op, program)
        if op.src in sequencer.TAIL_FREE:  # FRAME, step 1's cumulative counts and scatter, NEXT
            front += 2 + scatter.cycles(op, program, fanout=0, live_words=0) // program.T
            if op.src is Src.TDEC:
                front += cumulate.cycles(op, program) // program.T
        if op.sink in (Sink.DIF, Sink.STORE):
            fixed += sink.cycles(op, program, sequencer.sink_passes(op, program, delay))
            tail = sequencer.tail_cycles(op, program, delay, sink.cycles(op, program, 1))
            if sequencer.lags(op, program):
                beside = sink.cycles(op, program, 1)
                frame_fixed = scatter.cycles(op, program, fanout=0, live_words=0) // program.T
                if op.src is Src.TDEC:
                    frame_fixed += cumulate.cycles(op, program) // program.T
        if op.sink is Sink.LOGITS:
            fixed += logits.cycles(program)
        out.append({"op": op.label, "src": op.src.name.lower(), "sink": op.sink.name.lower(), "fixed": fixed,
                    "per_event": per_event, "per_live_word": per_live_word, "per_chained": per_chained,
                    "frame_fixed": frame_fixed,
                    "beside": beside, "front": front, "tail": tail})
    return out


def min_cycles(program: Program, delay: int) -> int:
    """The model's cycles for an image with no events (and its records in time): the fixed costs,
    less the sinks beside, plus the waits for the tails before."""
    costs = op_costs(program, delay)
    own = [c["fixed"] - (program.T - 1) * min(c["frame_fixed"], c["beside"]) for c in costs]
    _, _, held = _schedule(program, own, [c["front"] for c in costs], [c["tail"] for c in costs], None)
    return program.n_pixels + sum(own) + sum(held)
