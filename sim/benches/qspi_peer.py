"""cocotb bench: :class:`csdformer.sim.flash_model.SpiFlashModel` read by cocotbext-qspi's
``QspiFlash`` driver, an independent JEDEC master (launcher: tests/test_qspi.py).

The top (``QspiPeerTop`` in the launcher) exposes the model as that driver expects: ``sck``,
active-low ``csb``, ``io_out``/``io_oe`` from the master, ``io`` the lines. ``sck`` runs free from
its own cocotb clock, slower than ``clk`` (the model samples SCK in ``clk``'s domain). The driver
wakes the flash (0xAB), reads the JEDEC ID, reads ranges with 0x03, sets QE (0x50, 0x31 0x02; the
driver has no command for it, so its master sends them) and reads ranges with 0xEB (its 0x00 mode
byte, 4 dummy clocks). Every byte is compared with ``image`` (the bench's expectations).
"""

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles
from cocotbext.qspi import CMD_QIOR4, CMD_READ, QspiBus, QspiFlash

from csdformer.sim.benchlib.stream import bench_data, finish, start

JEDEC_ID = [0xEF, 0x40, 0x18]


@cocotb.test()
async def peer_reads(dut):
    arrays, meta = bench_data()
    image = [int(b) for b in arrays["image"]]
    dut.csb.value = 1
    dut.sck.value = 0
    dut.io_out.value = 0
    dut.io_oe.value = 0
    await start(dut)
    Clock(dut.sck, meta["sck_ns"], unit="ns").start()
    flash = QspiFlash(dut, QspiBus.from_entity(dut, clk="sck", cs="csb", io="io"), dummy_cycles=4)
    await flash.initialize()  # RSTEN/RST (ignored: powered down), then 0xAB
    await ClockCycles(dut.clk, meta["t_res_cycles"])
    got, want = [], []
    got += await flash.read_id()
    want += JEDEC_ID
    for addr, n in meta["reads_03"]:
        got += await flash.read(addr, n, opcode=CMD_READ)
        want += image[addr:addr + n]
    await flash._command(0x50)
    await flash.master.start()
    await flash.master.send_byte(0x31)
    await flash.master.send_byte(0x02)
    await flash.master.stop()
    for addr, n in meta["reads_eb"]:
        got += await flash.read(addr, n, opcode=CMD_QIOR4)
        want += image[addr:addr + n]
    finish(mismatches=sum(g != w for g, w in zip(got, want)) + abs(len(got) - len(want)), compared=len(want),
           model_error=int(dut.error.value))
