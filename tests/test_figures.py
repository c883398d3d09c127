"""Throughput and energy figures (csdformer.boards.figures) against hand counts on a tiny artifact,
and the build report that carries them (JSON and Markdown), with synthesis stood in for.

The tiny network, on the digits data set's 8×8 images (pixels 0..16, five bits):
``enc`` encode_conv 1→2 (3×3, padding 1) → DIF → ``conv`` 2→4 (3×3, padding 1) → DIF → 64 tokens of
4 → ``fc`` linear 4→3 → DIF → ``head`` 3→10. By hand, from first principles:

- ANN MACs: every output element takes one MAC per input it reads: enc 2·8·8 outputs × 1·3·3 =
  1,152; conv 4·8·8 × 2·3·3 = 4,608; fc 64·3 × 4 = 768; head 10 × 3 = 30 (the mean over the
  tokens is no MAC). Encoding MACs: enc's 1,152.
- SOPs: one accumulate of a weight into each output neuron an event reaches. The encoding layer
  runs bit-serial: each set bit of a pixel reaches its 3×3 window's outputs inside the image
  (counted by walking the outputs) in both output channels. A spike into conv reaches the same
  window in 4 channels; into fc, its token's 3 outputs; into the head, the 10 classes. Spikes
  are the golden model's frames (all T steps).
- images/s = clock / cycles (the cycle model's), GSOP/s = SOPs × images/s / 10⁹, per 1,000 LUTs
  = GSOP/s / (LUTs / 1,000); energy E_SNN = 4.6 pJ · 1,152 + 0.9 pJ · (SOPs − encoding SOPs),
  E_ANN = 4.6 pJ · 6,558.
"""

import argparse
import json
from pathlib import Path

import numpy as np
import pytest

from csdformer import artifact as A
from csdformer.artifact.schema import Artifact, InputSpec, Layer
from csdformer.boards import cli_build
from csdformer.boards.figures import figures, layer_macs, work
from csdformer.boards.report import BuildReport, clock_rows, parse_utilization, resource_rows
from csdformer.boards.targets import get_board
from csdformer.boards.throughput import N_IMAGES
from csdformer.hw.program import compile_program
from csdformer.sim import runner
from csdformer.sim.verify import golden_reference, select_images
from echo_core import EchoCore

FIXTURES = Path(__file__).parent / "fixtures" / "boards"
MACS = {"enc": 2 * 8 * 8 * 1 * 9, "conv": 4 * 8 * 8 * 2 * 9, "fc": 64 * 3 * 4, "head": 10 * 3}
ENC_MACS, ANN_MACS = 1152, 1152 + 4608 + 768 + 30


def tiny(dataset: str = "digits") -> Artifact:
    rng = np.random.default_rng(0)

    def w(*shape):
        return rng.integers(-127, 128, size=shape).astype(np.int64)

    def dif(name, src, shape, th):
        t = np.full((shape[0], 1, 1) if len(shape) == 3 else (shape[-1],), th, dtype=np.int64)
        return Layer(name, "dif", (src,), shape, {}, {"threshold": t, "v0": t // 2})

    zeros = lambda n: np.zeros(n, dtype=np.int64)  # noqa: E731
    layers = [
        Layer("enc", "encode_conv", ("image",), (2, 8, 8), {"stride": 1, "padding": 1},
              {"weight": w(2, 1, 3, 3), "bias": zeros(2)}),
        dif("enc_quant", "enc", (2, 8, 8), 600),
        Layer("conv", "conv", ("enc_quant",), (4, 8, 8), {"stride": 1, "padding": 1, "layout": "grid"},
              {"weight": w(4, 2, 3, 3), "bias": zeros(4)}),
        dif("conv_quant", "conv", (4, 8, 8), 100),
        Layer("tokens", "flatten", ("conv_quant",), (64, 4)),
        Layer("fc", "linear", ("tokens",), (64, 3), {}, {"weight": w(3, 4), "bias": zeros(3)}),
        dif("fc_quant", "fc", (64, 3), 50),
        Layer("head", "head", ("fc_quant",), (10,), {}, {"weight": w(10, 3), "bias": zeros(10)}),
    ]
    return Artifact(name="tiny", T=4, delay=3, input=InputSpec(1, 8, 8, 16, 1 / 16, dataset), num_classes=10,
                    weight_bits=8, layers=layers, output="head").validate()


def _reach(h=8, w=8, k=3, pad=1):
    """How many outputs of a stride-1 K×K conv (padding ``pad``, same size) each input position feeds."""
    n = np.zeros((h, w), dtype=np.int64)
    for oy in range(h):
        for ox in range(w):
            for ky in range(k):
                for kx in range(k):
                    y, x = oy - pad + ky, ox - pad + kx
                    if 0 <= y < h and 0 <= x < w:
                        n[y, x] += 1
    return n


def hand_sops(art, images):
    """(SOPs, encoding SOPs) of each image, counted from the golden model's spikes."""
    frames = runner.run(art, images, mode="snn", delay=art.delay,
                        trace=("enc_quant", "conv_quant", "fc_quant")).frames
    reach = _reach()
    out = []
    for i, img in enumerate(images):
        enc = sum(bin(int(v)).count("1") * int(reach[y, x]) * 2 for (_, y, x), v in np.ndenumerate(img))
        conv = int((frames["enc_quant"][:, i].sum(axis=(0, 1)) * reach).sum()) * 4
        fc = int(frames["conv_quant"][:, i].sum()) * 3
        head = int(frames["fc_quant"][:, i].sum()) * 10
        out.append((enc + conv + fc + head, enc))
    return out


def test_macs_sops_energy_and_gsops_by_hand():
    art = tiny()
    assert layer_macs(art) == MACS
    program = compile_program(art, 2, keep_spikes=False)
    _, x = select_images(art, 5, seed=1)
    models = golden_reference(program, x, art.delay)["models"]
    by_hand = hand_sops(art, x)
    assert [m.sops for m in models] == [s for s, _ in by_hand]  # the cycle model counts what the hand does

    w = work(program, models)
    sops, enc = sum(s for s, _ in by_hand) / 5, sum(e for _, e in by_hand) / 5
    cycles = sum(m.cycles for m in models) / 5
    assert w == {"images": 5, "cycles": cycles, "sops": sops, "encoding_sops": enc, "encoding_macs": ENC_MACS,
                 "ann_macs": ANN_MACS}

    f = figures(w, 30.0, 1234)
    ips = 30e6 / cycles
    assert f["images_per_s"] == ips
    assert f["gsop_per_s"] == pytest.approx(sops * ips / 1e9, rel=1e-15)
    assert f["gsop_per_s_per_klut"] == pytest.approx(sops * ips / 1e9 / 1.234, rel=1e-15)
    assert f["energy_snn_uj"] == pytest.approx((4.6 * 1152 + 0.9 * (sops - enc)) * 1e-6, rel=1e-15)
    assert f["energy_ann_uj"] == pytest.approx(4.6 * 6558 * 1e-6, rel=1e-15)  # 0.0301668 µJ
    assert f["ann_over_snn"] == pytest.approx(4.6 * 6558 / (4.6 * 1152 + 0.9 * (sops - enc)), rel=1e-15)
    assert (f["mhz"], f["luts"], f["e_mac_pj"], f["e_ac_pj"]) == (30.0, 1234, 4.6, 0.9)
    # without a clock or a LUT count, the figures that need one are None; the energy is not
    g = figures(w)
    assert g["images_per_s"] is None and g["gsop_per_s"] is None and g["gsop_per_s_per_klut"] is None
    assert g["energy_snn_uj"] == f["energy_snn_uj"]
    assert figures(w, 30.0)["gsop_per_s_per_klut"] is None


LUTS = 1234


def _stand_in_synthesis(top, board, out, plan=None, seeds=1):
    """Stands in for ``build``: the report of the saved iCE40 nextpnr run, with LUTS LUT4s."""
    pnr = json.loads((FIXTURES / "nextpnr_ice40_echo_30mhz.json").read_text())
    Path(out).mkdir(parents=True, exist_ok=True)
    return BuildReport(board=board.name, device=board.device, family=board.family, target_mhz=top.target_mhz,
                       sync_mhz=top.pll.f_out_mhz, pll=top.pll.describe(), fit=True,
                       bitstream=str(Path(out) / "top.bin"),
                       resources=resource_rows(board.family, parse_utilization(pnr), {"SB_LUT4": LUTS, "SB_DFFR": 30}),
                       clocks=clock_rows(pnr))


def _build(tmp_path, monkeypatch, art, *extra):
    monkeypatch.setattr(cli_build, "CORE_PROVIDER", lambda program, divisor, *, board, clock_hz: EchoCore())
    monkeypatch.delenv(cli_build.CORE_PROVIDER_ENV, raising=False)
    monkeypatch.setattr(cli_build, "build", _stand_in_synthesis)
    path = A.save(art, tmp_path / art.name)
    p = argparse.ArgumentParser()
    cli_build.add_build_parser(p.add_subparsers(dest="command"))
    args = p.parse_args(["build", str(path), "--board", "icebreaker", "-o", str(tmp_path / "out"), "--no-cache",
                         "--json", *extra])
    return args.fn(args), tmp_path / "out"


def test_build_report_gives_the_figures(tmp_path, monkeypatch, capsys):
    art = tiny()
    rc, out = _build(tmp_path, monkeypatch, art)
    assert rc == 0
    d = json.loads(capsys.readouterr().out)
    assert d == json.loads((out / "report.json").read_text())
    _, x = select_images(art, N_IMAGES)  # the images the build's estimate uses (seed 0)
    by_hand = hand_sops(art, x)
    sops, enc = sum(s for s, _ in by_hand) / N_IMAGES, sum(e for _, e in by_hand) / N_IMAGES
    f = d["figures"]
    mhz, cycles = d["sync_mhz"], d["cycles_per_image"]
    assert mhz == 30.0 and d["work"]["cycles"] == cycles and d["model_images"] == N_IMAGES
    ips = 30e6 / cycles
    assert {k: f[k] for k in ("images", "sops", "encoding_sops", "encoding_macs", "ann_macs", "mhz", "luts")} == {
        "images": N_IMAGES, "sops": sops, "encoding_sops": enc, "encoding_macs": ENC_MACS, "ann_macs": ANN_MACS,
        "mhz": 30.0, "luts": LUTS}
    assert f["images_per_s"] == ips == d["images_per_s"]
    assert f["gsop_per_s"] == pytest.approx(sops * ips / 1e9, rel=1e-15)
    assert f["gsop_per_s_per_klut"] == pytest.approx(sops * ips / 1e9 / (LUTS / 1000), rel=1e-15)
    e_snn = (4.6 * 1152 + 0.9 * (sops - enc)) * 1e-6
    assert f["energy_snn_uj"] == pytest.approx(e_snn, rel=1e-15)
    assert f["energy_ann_uj"] == pytest.approx(4.6 * 6558 * 1e-6, rel=1e-15)

    md = (out / "report.md").read_text()
    assert md == BuildReport.from_dict(d).to_markdown()  # the JSON keeps what the figures come from
    assert "## Throughput and energy" in md
    assert (f"Cycle model, mean of {N_IMAGES} test images at {cycles:,.0f} cycles/image; 30.0 MHz, the build's "
            "clock. A model estimate, not a measurement.") in md
    assert f"| images/s | {ips:.4g} |" in md
    assert f"| GSOP/s ({sops:,.0f} SOPs/image × images/s) | {sops * ips / 1e9:.4g} |" in md
    assert f"| GSOP/s per 1,000 LUTs (1,234 LUTs) | {sops * ips / 1e9 / 1.234:.4g} |" in md
    assert f"| SOPs/image (of which the encoding op's bit-serial pixels {enc:,.0f}) | {sops:,.0f} |" in md
    assert (f"| SOP-based energy/image (45 nm: 4.6 pJ · 1,152 encoding MACs + 0.9 pJ · {sops - enc:,.0f} SOPs) "
            f"| {e_snn:.4g} µJ |") in md
    assert (f"| same network as an ANN (4.6 pJ · 6,558 MACs) | 0.03017 µJ "
            f"({4.6 * 6558 / (4.6 * 1152 + 0.9 * (sops - enc)):.4g}× the SNN) |") in md


def test_build_report_says_where_the_cycle_model_cannot_run(tmp_path, monkeypatch, capsys):
    rc, out = _build(tmp_path, monkeypatch, tiny(dataset=""))  # no data set: no test images
    assert rc == 0
    d = json.loads(capsys.readouterr().out)
    assert d["work"] is None and d["figures"] is None
    assert any(n.startswith("no speed estimate: artifact: input.dataset is not set") for n in d["notes"])
    assert "## Throughput and energy\n\nNot computed: the cycle model did not run (see the notes).\n" in (
        out / "report.md").read_text()


def test_a_design_refused_for_memory_gets_its_figures_as_if_it_fit(tmp_path):
    """Fashion-MNIST on the OrangeCrab 25F: refused before synthesis; the figures come from the
    board's program compiled without the memory limit, at the requested clock, with no LUT count."""
    board = get_board("orangecrab-25f")
    art = A.load(A.resolve_artifact("fashion_mnist"))
    program, report = cli_build.memory_check(art, board.lanes, board, tmp_path)
    assert program is None and report.fit is False
    free = compile_program(art, board.lanes, keep_spikes=False, weight_depth=board.weight_depth,
                           acc_depth=board.acc_depth)
    _, x = select_images(art, N_IMAGES)
    models = golden_reference(free, x, art.delay)["models"]
    f = json.loads((tmp_path / "report.json").read_text())["figures"]
    cycles, sops = sum(m.cycles for m in models) / N_IMAGES, sum(m.sops for m in models) / N_IMAGES
    assert (f["mhz"], f["luts"], f["gsop_per_s_per_klut"]) == (100.0, None, None)
    assert (f["cycles"], f["sops"]) == (cycles, sops)
    assert f["images_per_s"] == 100e6 / cycles and f["note"].startswith("as if it fit")
    assert f["ann_macs"] == sum(layer_macs(art).values()) and f["encoding_macs"] == layer_macs(art)["stages.0"]
    md = (tmp_path / "report.md").read_text()
    assert "100 MHz, the clock requested (no PLL chosen)" in md and "Figures as if it fit:" in md
    assert "| GSOP/s per 1,000 LUTs (no LUT count) | n/a |" in md
