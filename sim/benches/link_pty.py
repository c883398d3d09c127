"""cocotb bench: :class:`csdformer.hw.link.LinkSoC` in the simulator behind a real pseudo-terminal
(launcher: ``tests/test_link_pty.py``).

The bench opens ``os.openpty()``, writes the near end's name to ``meta["port_file"]`` and bridges
the far end to the SoC's pins: bytes the host writes to the pty go out of a ``cocotbext.uart``
source on ``rx``; bytes a sink reads on ``tx`` are written to the pty. The host side is the real
runtime (:class:`csdformer.firmware.runtime.Device`) in the launcher's process, opening the pty as
a serial port. The bench ends when ``meta["done_file"]`` appears (or after ``meta["wall_s"]``
seconds); it checks nothing itself (the launcher compares the answers), and reports the bytes it
carried.
"""

import logging
import os
import time
import tty
import warnings

import cocotb
from cocotb.triggers import Timer
from cocotbext.uart import UartSink, UartSource

from csdformer.sim.benchlib.stream import PERIOD_NS, bench_data, finish, start


@cocotb.test()
async def link_pty(dut):
    _, meta = bench_data()
    await start(dut)
    bit_ns = meta["divisor"] * PERIOD_NS
    for name in ("rx", "tx"):
        logging.getLogger(f"cocotb.{dut._path}.{name}").setLevel(logging.WARNING)
    with warnings.catch_warnings():  # cocotbext-uart 0.1.4 still calls setimmediatevalue
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"cocotbext\.uart")
        src, sink = UartSource(dut.rx, baud=1e9 / bit_ns), UartSink(dut.tx, baud=1e9 / bit_ns)
    master, slave = os.openpty()
    tty.setraw(slave)
    os.set_blocking(master, False)
    tmp = meta["port_file"] + ".tmp"
    with open(tmp, "w") as f:
        f.write(os.ttyname(slave))
    os.replace(tmp, meta["port_file"])
    carried = {"to_device": 0, "to_host": 0}

    async def to_host():
        while True:
            data = bytes(await sink.read())
            carried["to_host"] += len(data)
            os.write(master, data)

    cocotb.start_soon(to_host())
    deadline = time.monotonic() + meta["wall_s"]
    poll = 10 * meta["divisor"]  # a byte time
    while not os.path.exists(meta["done_file"]) and time.monotonic() < deadline:
        await Timer(poll * PERIOD_NS, unit="ns")
        try:
            data = os.read(master, 4096)
        except BlockingIOError:
            continue
        carried["to_device"] += len(data)
        await src.write(data)
    os.close(master)
    os.close(slave)
    finish(mismatches=0, compared=0, **carried)
