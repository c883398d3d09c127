"""One bitstream, many models (issue 12): the fabric a design is built for, the model as a flash
image, and the build cache.

Two artifacts of the same shape (the shipped digits model, seed 2, and tests/fixtures/digits-seed3,
the same config trained with seed 3) compile into one fabric: the accelerator's RTL is the same
text for both, and both pass whole-network verification on it with only the flash image changed.
``csdformer build`` of the second reuses the first's bitstream (no synthesis). What does not fit
(widths, buffers, flash) and a flash image that is not the expected one are refused with one line
naming what is wrong.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest
from amaranth.back import rtlil

from csdformer import CsdformerError
from csdformer import artifact as A
from csdformer.artifact import resolve_artifact
from csdformer.boards import cli_build
from csdformer.boards.report import BuildReport, ClockTiming, ResourceUse
from csdformer.boards.targets import get_board
from csdformer.hw.accelerator import Accelerator
from csdformer.hw.common import HwParamError
from csdformer.hw.fabric import Fabric
from csdformer.hw.flash_image import FlashImageError, build_image, parse_header
from csdformer.hw.program import compile_program

SEED3 = Path(__file__).parent / "fixtures" / "digits-seed3"


@pytest.fixture(scope="module")
def arts():
    return A.load(resolve_artifact("digits")), A.load(SEED3)


# A weight buffer, ACC and MEM smaller than the largest blocks and currents, as on the ULX3S: the
# design runs output tiles (hw/program.Tile) at 4 lanes: the encoding conv in 2, the MLP's hidden
# DIF layer in 4, the RPE conv with its residual add (and the DIF after it) in 8, ...
LANES, WEIGHT_DEPTH, ACC_DEPTH = 4, 300, 64


@pytest.fixture(scope="module")
def progs(arts):
    a, b = arts  # every spike tensor kept: the verification reads them all back after an image
    natural = compile_program(a, LANES, weight_depth=WEIGHT_DEPTH, acc_depth=ACC_DEPTH)
    fabric = Fabric.of(natural, headroom=True)
    return compile_program(a, LANES, fabric=fabric), compile_program(b, LANES, fabric=fabric)


def test_two_seeds_compile_into_one_design(progs):
    pa, pb = progs
    tiles = {op.name: op.tile.count for op in pa.ops if op.tile}
    assert {n: tiles[n] for n in ("stages.1.quant", "blocks.0.mlp.quant2", "blocks.0.attn.quant_in")} == {
        "stages.1.quant": 2, "blocks.0.mlp.quant2": 4, "blocks.0.attn.quant_in": 8}
    assert [op.label for op in pb.ops] == [op.label for op in pa.ops]
    assert max(len(op.weights) for op in pa.ops if op.weights is not None) <= WEIGHT_DEPTH
    # the tiled ops' currents within ACC_DEPTH; ACC and MEM as deep as the untiled ops need
    assert all(op.f["acc_words"] <= ACC_DEPTH for op in pa.ops if op.tile)
    ra = rtlil.convert(Accelerator(pa), name="top")
    rb = rtlil.convert(Accelerator(pb), name="top")
    assert ra == rb  # the RTL depends on the fabric only
    ia, ib = build_image(pa), build_image(pb)
    ha, hb = parse_header(ia, fabric=pa.fabric), parse_header(ib, fabric=pb.fabric)
    assert ha.fabric_id == hb.fabric_id == pa.fabric.fabric_id
    assert ha.model_id != hb.model_id and ia != ib  # two models, two images
    assert not np.array_equal(pa.weights, pb.weights)


@pytest.mark.parametrize("which", [0, 1], ids=["seed2-shipped", "seed3"])
def test_both_models_pass_verification_on_the_one_design(progs, which):
    """Whole network in Verilator with the QSPI flash model holding that model's image."""
    from csdformer.sim.verify import select_images, verify

    prog = progs[which]
    idx, x = select_images(prog.artifact, 3, seed=5)
    rep = verify(prog, idx, x, delay=3, backend="flash")
    assert rep.summary() == "3 passed, 0 failed", "\n".join(c.line() for c in rep.checks)
    assert all(c.cycles == c.model_cycles for c in rep.checks)


# ---- what does not fit ----------------------------------------------------------------------

def test_an_artifact_wider_than_the_fabric_is_refused_naming_the_width(arts, progs):
    a, _ = arts
    fabric = progs[0].fabric
    wide = A.load(resolve_artifact("digits"))
    head = next(layer for layer in wide.layers if layer.kind == "head")
    head.arrays["bias"] = head.arrays["bias"] * 64  # far past the headroom (the bounds follow the arrays)
    with pytest.raises(HwParamError) as e:
        compile_program(wide, LANES, fabric=fabric)
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(f"digits: does not fit the bitstream's fabric {fabric.fabric_id:08x}: ")
    assert "bias width" in msg and "(the bitstream's: 14)" in msg


def test_other_lanes_or_more_ops_are_refused(arts, progs):
    a, _ = arts
    fabric = progs[0].fabric
    with pytest.raises(HwParamError, match=r"lanes 16 \(the bitstream's: 4\)"):
        compile_program(a, 16, fabric=fabric)
    small = Fabric.from_json(dict(fabric.to_json(), depths=[[k, (3 if k == "weight" else v)]
                                                             for k, v in fabric.depths]))
    with pytest.raises(HwParamError, match=r"largest op's weight buffer \d+ words \(the bitstream's: 3\)"):
        compile_program(a, LANES, fabric=small)


def test_resident_weights_are_part_of_the_fabric(arts):
    """Resident weights change the design (one weight memory of every block, every op word on
    chip), so they are part of the fabric: its JSON and id carry them, a streaming fabric's JSON
    and id are what they were before resident weights existed, and a program of the other kind is
    refused, naming it. Boards choose: digits' weights stay on the ULX3S and the OrangeCrab,
    Fashion-MNIST's stream, the iCEBreaker's always stream."""
    a, _ = arts
    res = compile_program(a, LANES, resident=True)
    stream = compile_program(a, LANES)
    assert res.depths["weight"] == len(res.weights) == sum(len(op.weights) for op in res.ops if op.weights is not None)
    assert stream.depths["weight"] == max(len(op.weights) for op in stream.ops if op.weights is not None)
    assert res.op_slots == len(res.ops) and stream.op_slots == 2
    assert res.memory_bits()["weight"] == len(res.weights) * LANES * res.widths["weight"]  # one copy, no slots
    assert res.fabric.resident and Fabric.from_json(json.loads(json.dumps(res.fabric.to_json()))) == res.fabric
    assert "resident" not in stream.fabric.to_json() and not Fabric.from_json(stream.fabric.to_json()).resident
    assert res.fabric.fabric_id != stream.fabric.fabric_id
    assert res.fabric.problems(stream) == ["resident weights False (the bitstream's: True)"]
    # Compiled into a fabric, the fabric decides.
    assert compile_program(a, LANES, fabric=res.fabric, resident=False).resident
    with pytest.raises(HwParamError, match=r"^resident: the weights are held in one memory; it cannot also be "):
        compile_program(a, 1, resident=True, single_port=("weight",))
    assert cli_build.board_program(a, 16, get_board("ulx3s-85f")).resident
    assert cli_build.board_program(a, 8, get_board("orangecrab-25f")).resident
    assert not cli_build.board_program(a, 1, get_board("icebreaker")).resident
    fm = A.load(resolve_artifact("fashion_mnist"))
    assert not cli_build.board_program(fm, 8, get_board("ulx3s-85f")).resident


# ---- the flash image -------------------------------------------------------------------------

def test_flash_image_header_errors(progs):
    prog = progs[0]
    img = build_image(prog)
    h = parse_header(img, fabric=prog.fabric)
    bad_magic = b"XXXX" + img[4:]
    with pytest.raises(FlashImageError, match=r"^flash image: magic b'XXXX', expected b'CSDF'"):
        parse_header(bad_magic)
    flipped = bytearray(img)
    flipped[12] ^= 1  # the model id, without fixing the CRC
    with pytest.raises(FlashImageError, match=r"^flash image: header checksum [0-9a-f]{8} does not match its "
                                              r"contents \([0-9a-f]{8}\): the header is corrupt$"):
        parse_header(bytes(flipped))
    with pytest.raises(FlashImageError, match=rf"^flash image: model id {h.model_id:08x}, expected 12345678 "):
        parse_header(img, model_id=0x12345678)
    other = Fabric.from_json(dict(prog.fabric.to_json(), lanes=16))
    with pytest.raises(FlashImageError, match=rf"built for fabric {h.fabric_id:08x}, the bitstream's is "
                                              rf"{other.fabric_id:08x}"):
        parse_header(img, fabric=other)
    with pytest.raises(FlashImageError, match=r"do not fit the 16 MiB flash"):
        parse_header(img, flash_bytes=16 << 20, offset=(16 << 20) - 100)
    with pytest.raises(FlashImageError, match=r"header says \d+ bytes, the file has \d+"):
        parse_header(img[:-1])


def test_a_model_too_large_for_the_flash_is_refused_before_building(tmp_path, monkeypatch):
    board = get_board("icebreaker")
    small = type(board)(**dict(board.__dict__, flash_bytes=board.model_offset + 1000))
    monkeypatch.setattr(cli_build, "get_board", lambda name: small)
    monkeypatch.setattr(cli_build, "build", _must_not_build)
    with pytest.raises(CsdformerError, match=r"^model: its flash image is [\d,]+ bytes; the icebreaker's flash "
                                             r"holds 1,000 from the model's offset 0x20000$"):
        main_args(["build", "digits", "--board", "icebreaker", "-o", str(tmp_path / "b"), "--no-cache"])
    assert not (tmp_path / "b").exists() or not any((tmp_path / "b").iterdir())


def _must_not_build(*a, **k):
    raise AssertionError("synthesis ran")


def main_args(argv):
    p = argparse.ArgumentParser()
    cli_build.add_build_parser(p.add_subparsers(dest="command"))
    args = p.parse_args(argv)
    return args.fn(args)


# ---- the build cache -------------------------------------------------------------------------

def test_the_second_model_reuses_the_first_ones_bitstream(tmp_path, monkeypatch, capsys):
    """A stand-in for synthesis (it writes a bitstream and an OK report) counts the builds: the
    second artifact renders the same design (same digest) and is not built."""
    built = []

    def fake_build(top, board, out, *, plan=None, **kw):
        built.append(plan.digest().hex())
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "top.bit").write_bytes(b"bitstream " + plan.digest()[:8])
        return BuildReport(board=board.name, device=board.device, family=board.family, target_mhz=100.0,
                           sync_mhz=100.0, resources=[ResourceUse("LUT", 1, 2)],
                           clocks=[ClockTiming("clk", 100.0, 120.0)], fit=True, bitstream=str(out / "top.bit"))

    monkeypatch.setattr(cli_build, "build", fake_build)
    cache = tmp_path / "cache"
    outs = []
    for i, art in enumerate(("digits", str(SEED3))):
        out = tmp_path / f"out{i}"
        assert main_args(["build", art, "--board", "orangecrab-25f", "-o", str(out), "--cache", str(cache),
                          "--json"]) == 0
        outs.append((out, json.loads(capsys.readouterr().out)))
    assert len(built) == 1  # the second model did not run synthesis
    (o0, r0), (o1, r1) = outs
    assert r0["reused"] is None and r1["reused"] and Path(r1["reused"]).parent == cache
    assert (o0 / "top.bit").read_bytes() == (o1 / "top.bit").read_bytes()
    assert r0["model"]["fabric_id"] == r1["model"]["fabric_id"]
    assert r0["model"]["model_id"] != r1["model"]["model_id"]
    for out, r in outs:
        assert parse_header((out / "model.bin").read_bytes()).model_id == int(r["model"]["model_id"], 16)
        steps = r["programming"]["model"]["steps"]
        assert steps == [f"openFPGALoader -c CABLE -f -o 0x200000 --file-type bin {out / 'model.bin'}"]
    assert "Bitstream reused from the build cache" in (o1 / "report.md").read_text()
