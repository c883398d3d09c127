"""The accelerator's generator: layer program, errors before any Verilog, determinism, cycle formulas."""

import copy
import json
import re
import os
import subprocess
import sys

import numpy as np

from csdformer.hw.flash_image import parse_header
import pytest

from csdformer.artifact import resolve_artifact
from csdformer import artifact as A
from csdformer.cli import main
from csdformer.hw import HwParamError
from csdformer.hw.netmodel import image_model, min_cycles, op_costs
from csdformer.hw.program import Sink, Src, compile_program


@pytest.fixture(scope="module")
def digits():
    return A.load(resolve_artifact("digits"))


def test_program_covers_every_layer_once(digits):
    prog = compile_program(digits, 8)
    covered = [name for op in prog.ops for name in op.layers if op.src is not Src.TRANSPOSE]
    flat = [layer.name for layer in digits.layers if layer.kind != "flatten"]
    assert sorted(covered) == sorted(flat)
    assert [op.src for op in prog.ops].count(Src.TRANSPOSE) == 1  # the k operand of q·kᵀ
    assert prog.ops[-1].sink is Sink.LOGITS


def test_layouts_round_trip(digits):
    prog = compile_program(digits, 8)
    rng = np.random.default_rng(0)
    for name in prog.spike_layers:
        t = prog.tensors[name]
        x = rng.integers(0, 2, size=(4,) + t.shape)
        words = t.to_words(x)
        assert words.shape == (4, t.rows, t.groups * 8)
        np.testing.assert_array_equal(t.from_words(words), x)


def test_cycle_formulas_are_the_model_without_spikes(digits):
    """With no events the whole-network model is the sum of the ops' fixed costs, less the sinks
    beside, plus each FRAME held by the tail of the op before: with no records to wait for, op
    ``k`` starts the cycle after op ``k − 1``'s end and reaches its held FRAME ``front`` cycles
    later, while the tail runs ``tail`` cycles past that end."""
    prog = compile_program(digits, 8)
    for delay in (0, 3):
        zeros = {n: np.zeros((prog.T,) + tuple(digits.layer(n).shape), dtype=np.int64) for n in prog.spike_layers}
        model = image_model(prog, zeros, np.zeros(digits.input.shape, dtype=np.int64), delay)
        costs = op_costs(prog, delay)
        held = [max(0, a["tail"] - 1 - b["front"]) if a["tail"] else 0 for a, b in zip(costs, costs[1:])]
        assert model.cycles == min_cycles(prog, delay)
        assert model.cycles == prog.n_pixels + sum(c["fixed"] - (prog.T - 1) * min(c["frame_fixed"], c["beside"])
                                                   for c in costs) + sum(held)
        assert any(c["beside"] for c in costs)  # two ACC buffers: sinks run beside the scatters
        assert any(c["tail"] for c in costs) == (delay > 0)  # fire-only passes run as tails
        assert (sum(held) > 0) == (delay > 0)  # with no events some tail outlasts the next op's front
        assert model.sops == 0 and model.spikes == 0


def _broken(art, fn):
    a = copy.deepcopy(art)
    fn(a)
    return a


@pytest.mark.parametrize("case, match", [
    ("kind", "unknown layer kind for the accelerator"),
    ("lanes", "head dimension 16 must be a multiple of lanes 32"),
    ("bounds", "the mem width would be .* bits; the accelerator's limit is 32"),
    ("memory", "memory: .* kbit needed, target ecp5-25f has"),
    ("stride", "stride 2 is not supported"),
    ("pool-overlap", r"'stages.2.pool' \(maxpool\): stride 1 is less than the kernel 2: overlapping max-pool windows"),
])
def test_unbuildable_artifacts_fail_before_any_verilog(digits, tmp_path, case, match):
    lanes, target, art = 8, "unlimited", digits
    if case == "kind":
        art = _broken(digits, lambda a: setattr(a.layers[3], "kind", "softmax"))
    elif case == "lanes":
        lanes = 32
    elif case == "bounds":
        def huge(a):
            a.layers[0].arrays["bias"] = a.layers[0].arrays["bias"].astype(np.int64) * (1 << 30)
        art = _broken(digits, huge)
    elif case == "memory":
        art = A.load(resolve_artifact("fashion_mnist"))
        target = "ecp5-25f"
    elif case == "stride":
        # the first grid conv after the encoding layer (found by kind, not by index: the tokenizer's depth varies)
        art = _broken(digits, lambda a: next(la for la in a.layers if la.kind == "conv").attrs.update(stride=2))
    elif case == "pool-overlap":  # the max-pool updates its input's counts in place, once a step
        art = _broken(digits, lambda a: a.layer("stages.2.pool").attrs.update(stride=1))
    with pytest.raises(HwParamError, match=match):
        compile_program(art, lanes, target=target)


def test_cli_rtl_errors_leave_nothing(tmp_path, capsys):
    out = tmp_path / "rtl"
    assert main(["rtl", "digits", "-o", str(out), "--lanes", "32"]) == 2
    assert "head dimension 16 must be a multiple of lanes 32" in capsys.readouterr().err
    assert not out.exists() and list(tmp_path.iterdir()) == []
    assert main(["rtl", "digits", "-o", str(out), "--lanes", "6"]) == 2
    assert "lanes: must be a power of two" in capsys.readouterr().err


def test_rtl_is_byte_identical_across_runs(tmp_path):
    """Two separate processes (different hash seeds) write the same files."""
    outs = []
    for i, seed in enumerate(("1", "2")):
        out = tmp_path / f"run{i}"
        env = dict(os.environ, PYTHONHASHSEED=seed)
        subprocess.run([sys.executable, "-m", "csdformer", "rtl", "digits", "-o", str(out)], check=True, env=env,
                       capture_output=True)
        outs.append(out)
    files = sorted(p.relative_to(outs[0]) for p in outs[0].rglob("*") if p.is_file())
    assert [str(f) for f in files] == ["accelerator.json", "csdformer_accel.v", "fabric.json", "model.bin"]
    for f in files:
        assert (outs[0] / f).read_bytes() == (outs[1] / f).read_bytes(), f
    desc = json.loads((outs[0] / "accelerator.json").read_text())
    assert desc["parameters"]["lanes"] == 8 and desc["top"] == "csdformer_accel"
    assert {p["name"]: p["direction"] for p in desc["ports"]}["image__payload"] == "in"
    header = parse_header((outs[0] / "model.bin").read_bytes())
    assert f"{header.fabric_id:08x}" == desc["memories"]["fabric_id"]


def test_no_multiplier_anywhere_in_the_accelerator():
    """SPEC §6: additions, comparisons, subtractions and shifts only (the encoding layer uses
    bit-plane additions), for a model with every op kind (Fashion-MNIST has max-pools)."""
    from amaranth.back import rtlil

    from csdformer.hw.accelerator import Accelerator

    for name, lanes in (("digits", 8), ("fashion_mnist", 16)):
        acc = Accelerator.from_artifact(A.load(resolve_artifact(name)), lanes)
        text = rtlil.convert(acc, name="accel", emit_src=False)
        cells = {line.split()[1] for line in text.splitlines() if line.lstrip().startswith("cell ")}
        assert not {c for c in cells if c in ("$mul", "$div", "$mod", "$divfloor", "$modfloor")}, cells


def test_op_fields_are_typed_and_a_field_that_does_not_exist_fails(digits, monkeypatch):
    """The op register is a StructLayout of declared fields: an undeclared field fails when the
    program is compiled (not a silent zero), and the hardware cannot read one either."""
    from amaranth.hdl import Signal

    from csdformer.hw import program as program_mod

    prog = compile_program(digits, 8)
    layout = prog.layout
    assert layout["src"].shape is Src and layout["sink"].shape is Sink
    scatter_op = next(op for op in prog.ops if op.src is Src.SYN)
    reg = Signal(layout)
    const = layout.const(dict({"bias": {}, "sink_fields": {}, "cumulate": {}}, **prog.fields(scatter_op)))
    assert const.as_bits() == prog.encode(scatter_op)
    assert const.source.scatter.words_m1 == scatter_op.f["words"] - 1
    with pytest.raises(AttributeError):
        reg.source.scatter.wrods  # noqa: B018 - a misspelt field read by the hardware
    real = program_mod.Program.fields

    def misspelt(self, op):
        out = real(self, op)
        if op.src is Src.SYN:
            out["source"]["scatter"]["wrods_m1"] = 3
        return out

    monkeypatch.setattr(program_mod.Program, "fields", misspelt)
    with pytest.raises(HwParamError, match=r"field scatter\.wrods_m1 does not exist"):
        compile_program(digits, 8)


@pytest.mark.parametrize("lanes, single_port", [(8, ()), (1, ("cur", "weight"))], ids=["tail", "compact"])
def test_the_accelerators_verilog_has_no_latch_and_no_net_driven_twice(tmp_path, digits, lanes, single_port):
    """Verilator's lint on the generated Verilog: no latch (a combinational signal some path leaves
    unassigned: a sequencer strobe driven from two processes once left one, which hung the C++
    bench only) and no signal driven from two places."""
    from csdformer.hw.accelerator import Accelerator
    from csdformer.hw.common import verilog_text
    from csdformer.sim.benchlib.runner import tool_env

    tool_env()
    v = tmp_path / "accel.v"
    v.write_text(verilog_text(Accelerator(compile_program(digits, lanes, single_port=single_port)), "accel"))
    out = subprocess.run(["verilator", "--lint-only", "-Wall", "-Wno-fatal", "--top-module", "accel", str(v)],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    bad = [line for line in out.stderr.splitlines() if re.match(r"%Warning-(LATCH|MULTIDRIVEN|UNOPTFLAT)", line)]
    assert not bad, "\n".join(bad)
