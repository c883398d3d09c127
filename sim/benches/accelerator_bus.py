"""cocotb bench of the bare accelerator, its model read over the ``bus`` ports from a Python model
of the weight stream (no ROM in the design: a model of any size, the flash image held here).

The toplevel is :class:`~csdformer.hw.accelerator.Accelerator` itself; :class:`RomStreamModel`
answers its ``bus`` ports (``bus__cmd__*``, ``bus__data__*``) cycle for cycle as
:class:`~csdformer.hw.weightstream.RomStream` with ``byte_cycles=1`` would (its
``StreamTiming("rom", 2, 1)``): the first beat 2 cycles after the ``cmd`` handshake, then one byte
a cycle while the user is ready, bytes past the image 0xFF. So the cycle model with that timing
applies and the hardware's cycle counter must equal it. The rest (pixels in, logits and class
out, counters, the debug read-back of every spike layer) is :mod:`.accelerator`'s ``_run``; the
judging is :mod:`csdformer.sim.verify`'s (the launcher is :mod:`csdformer.sim.verify_bus`).

Speed: the model runs in raw simulator callbacks (``cocotb.simulator``), not in a coroutine: no
scheduler pass and no ReadWrite callback per cycle. Mode ``"exact"`` steps RomStream at every
falling clock edge (every beat's byte is RomStream's). Mode ``"records"`` (default) steps it only
in *windows*: from a ``cmd`` until ``MARGIN`` bytes past the read the loader asks for (the header
and tables, or one op record: its length from its count bytes, checked against the program's);
between windows the bench sleeps until ``cmd.valid`` rises, holding ``data.valid`` high as
RomStream does and the byte unchanged. Only beats the loader discards (it takes bytes only inside
a read) carry that held byte; a ``cmd`` at an address whose length is not known opens a window
that stays open until the next ``cmd`` (exact). Both modes drive ``data.valid`` exactly.

Data: as :mod:`.accelerator`, plus ``flash`` (the image, uint8). Meta: as :mod:`.accelerator`,
plus ``stream``: ``mode``, ``base``, ``tables_end`` (the header and tables' read length),
``records`` (``[[address, length, count], ...]`` of the program's op records). Result: as
:mod:`.accelerator`, plus ``stream`` (windows, stepped cycles, bytes delivered, mode) and
``vm_hwm_mb`` (the simulator process's peak resident memory); ``heartbeat.txt`` beside it, a
line every ``heartbeat_cycles`` (meta; default :data:`HEARTBEAT_CYCLES`) cycles.
"""

from __future__ import annotations

import json
import os
import time

import cocotb
from cocotb import simulator
from cocotb.triggers import Timer

from csdformer.sim.benchlib.stream import PERIOD_NS, bench_data, cycle_now, within_budget
from csdformer.sim.benches.accelerator import _run

__all__ = ["RomStreamModel", "MARGIN"]

MARGIN = 2  # beats stepped past a window's last byte
HEARTBEAT_CYCLES = 1_000_000  # a line in heartbeat.txt (beside the result) this often
_DEPOSIT = 0  # the GPI's deposit action (cocotb.handle._GPISetAction.DEPOSIT)
_ADDR_MASK = (1 << 24) - 1  # RomStream's ``cur``: the bus's 24 address bits


class RomStreamModel:
    """:class:`~csdformer.hw.weightstream.RomStream` (``byte_cycles=1``) at ``dut``'s ``bus`` ports.

    At the falling edge of cycle ``c`` it drives the beat of cycle ``c`` (RomStream's registers
    after the rising edge that began it), then samples ``cmd`` and ``data.ready`` of cycle ``c``
    and computes the registers of the next cycle, as RomStream's ``elaborate`` does; a rising
    edge that samples ``rst`` high resets them instead. See the module docstring for the modes."""

    def __init__(self, dut, image: bytes, *, mode: str = "records", base: int = 0, tables_end: int | None = None,
                 records: list | None = None):
        """``records``: ``[(address, length, count), ...]`` of the program's op records (``count``:
        its weight words, as its first 3 bytes say); ``tables_end``: the header and tables' length
        read from ``base``."""
        if mode not in ("exact", "records"):
            raise ValueError(f"mode: {mode!r}; 'exact' or 'records'")
        self.img = bytes(image)
        self.n = len(self.img)
        # RomStream's memory: depth max(n, 2); its read port's address is as wide as the depth needs.
        self.amask = (1 << max(1, (max(self.n, 2) - 1).bit_length())) - 1
        self.mode = mode
        self.windows = {int(a): (int(n), int(c)) for a, n, c in (records or [])}
        if tables_end is not None:
            self.windows[int(base)] = (int(tables_end), None)
        self.h = {k: getattr(dut, k)._handle for k in (
            "clk", "rst", "bus__cmd__valid", "bus__cmd__ready", "bus__cmd__payload", "bus__data__valid", "bus__data__payload",
            "bus__data__ready")}
        # RomStream's registers: cur, active, data.valid, the read port's (latched) address.
        self.cur, self.active, self.valid, self.addr = 0, False, 0, 0
        self.driven = [None, None]  # data.valid, data.payload as last written
        self.left = None  # bytes left in the open window (None: open until the next cmd)
        self.open = False
        self.cb = None  # the armed clock-edge or cmd callback
        self.rst_cb = self.edge_cb = None  # reset tracking: rst rising, then each rising clock edge
        self.error = None
        self.stats = {"mode": mode, "windows": 0, "unknown_windows": 0, "stepped_cycles": 0, "bytes": 0,
                      "cmds": 0}

    # -- callbacks --------------------------------------------------------------------------
    def start(self) -> None:
        self.h["bus__cmd__ready"].set_signal_val_int(_DEPOSIT, 1)  # RomStream takes a cmd in any cycle
        self._drive(0, 0xFF)
        self._arm_step()
        self._on_rst()  # in reset until a rising clock edge sees rst low

    # Reset: the bench drives ``rst`` from a coroutine, whose writes land after the falling edge's
    # callbacks; so the model reads ``rst`` at the rising edges (the value each edge samples),
    # from a rise of ``rst`` until the first edge that sees it low.
    def _on_rst(self) -> None:
        self.rst_cb = simulator.register_value_change_callback(self.h["rst"], self._on_rst, simulator.RISING)
        if self.edge_cb is None:
            self.edge_cb = simulator.register_value_change_callback(self.h["clk"], self._on_rise, simulator.RISING)

    def _on_rise(self) -> None:
        self.edge_cb = None
        if self.h["rst"].get_signal_val_long():  # RomStream's registers take their reset values
            self.cur, self.active, self.valid, self.open = 0, False, 0, False
            self.edge_cb = simulator.register_value_change_callback(self.h["clk"], self._on_rise, simulator.RISING)

    def _arm_step(self) -> None:
        self.cb = simulator.register_value_change_callback(self.h["clk"], self._on_fall, simulator.FALLING)

    def _arm_cmd(self) -> None:
        self.cb = simulator.register_value_change_callback(self.h["bus__cmd__valid"], self._on_cmd,
                                                           simulator.RISING)

    def stop(self) -> None:
        for name in ("cb", "rst_cb", "edge_cb"):
            if getattr(self, name) is not None:
                getattr(self, name).deregister()
                setattr(self, name, None)

    # Value-change callbacks are one-shot (the GPI removes each after its call): each re-arms.
    def _on_cmd(self) -> None:
        self.cb = None
        try:
            self._arm_step()  # the handshake is sampled at the next falling edge
        except BaseException as e:  # pragma: no cover - reported by the bench
            self._fail(e)

    def _on_fall(self) -> None:
        self.cb = None
        try:
            self._step()
            if self.mode == "records" and not self.open and self.active:
                self._arm_cmd()
            else:
                self._arm_step()
        except BaseException as e:  # pragma: no cover - reported by the bench
            self._fail(e)

    def _fail(self, e) -> None:
        self.error = f"{type(e).__name__}: {e}"
        self.stop()

    # -- RomStream, one cycle --------------------------------------------------------------------
    def _drive(self, valid: int, byte: int) -> None:
        if valid != self.driven[0]:
            self.h["bus__data__valid"].set_signal_val_int(_DEPOSIT, valid)
            self.driven[0] = valid
        if byte != self.driven[1]:
            self.h["bus__data__payload"].set_signal_val_int(_DEPOSIT, byte)
            self.driven[1] = byte

    def _step(self) -> None:
        h = self.h
        self.stats["stepped_cycles"] += 1
        v = self.valid
        a = self.addr
        self._drive(v, self.img[a] if a < self.n else 0xFF)
        ready = h["bus__data__ready"].get_signal_val_long()
        fire = v & ready
        if not v or ready:  # the read port follows the next beat's address; it holds while a beat waits
            self.addr = (self.cur + fire) & self.amask
        if h["bus__cmd__valid"].get_signal_val_long():  # cmd.ready is always 1
            self.cur = h["bus__cmd__payload"].get_signal_val_long() & _ADDR_MASK
            self.active, self.valid = True, 0
            self._open_window(self.cur)
        elif self.active:
            if fire:
                self.cur = (self.cur + 1) & _ADDR_MASK
                self.stats["bytes"] += 1
                if self.left is not None:
                    self.left -= 1
                    if self.left <= 0:
                        self.open = False
            elif not v:
                self.valid = 1

    def _open_window(self, addr: int) -> None:
        self.stats["cmds"] += 1
        self.stats["windows"] += 1
        self.open = True
        n, count = self.windows.get(addr, (None, None))
        # A record whose count bytes in the image are not the program's (a corrupted image): the
        # loader reads as many words as the image says, so the window stays open (exact).
        if count is not None and int.from_bytes(self.img[addr:addr + 3], "little") != count:
            n = None
        if n is None:
            self.stats["unknown_windows"] += 1
            self.left = None
        else:
            self.left = n + MARGIN


@cocotb.test()
async def accelerator_bus(dut):
    data, meta = bench_data()
    s = meta["stream"]
    model = RomStreamModel(dut, data["flash"].tobytes(), mode=s["mode"], base=s["base"],
                           tables_end=s["tables_end"], records=s["records"])
    model.start()
    cocotb.start_soon(_heartbeat(dut, model, int(meta.get("heartbeat_cycles", HEARTBEAT_CYCLES))))
    n = len(data["images"])
    names = meta.get("indices") or list(range(n))
    now = {"i": 0}
    try:
        await within_budget(_run(dut, data, meta, now), meta["budget_cycles"],
                            lambda: f"image {names[now['i']]} ({now['i'] + 1} of {n})")
    finally:
        model.stop()
        _add_result(stream=model.stats, stream_error=model.error, vm_hwm_mb=_vm_hwm_mb())
    assert model.error is None, f"the weight-stream model failed: {model.error}"


async def _heartbeat(dut, model: RomStreamModel, every: int) -> None:
    """Every ``every`` cycles, one JSON line: the cycle, the wall time, the stream model's counts,
    the loader's flags, the peak memory (so a run stopped early says where it was)."""
    path = os.path.join(os.path.dirname(os.environ["CSDFORMER_BENCH_RESULT"]), "heartbeat.txt")
    t0 = time.perf_counter()
    while True:
        await Timer(every * PERIOD_NS, "ns")
        line = {"cycle": cycle_now(), "wall_s": round(time.perf_counter() - t0, 2), **model.stats,
                "loader_ready": int(dut.ready.value), "prefetched": int(dut.prefetched.value),
                "busy": int(dut.busy.value), "vm_hwm_mb": _vm_hwm_mb()}
        with open(path, "a") as f:
            f.write(json.dumps(line) + "\n")


def _vm_hwm_mb() -> float | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:  # pragma: no cover - not Linux
        pass
    return None


def _add_result(**extra) -> None:
    path = os.environ.get("CSDFORMER_BENCH_RESULT")
    if not path:
        return
    try:
        with open(path) as f:
            result = json.load(f)
    except (OSError, ValueError):
        result = {"error": "no result written"}
    result.update(extra)
    if extra.get("stream_error"):
        result["error"] = "the weight-stream model failed: " + extra["stream_error"]
    with open(path, "w") as f:
        json.dump(result, f, indent=1, default=int)
