"""The whole accelerator in Icarus Verilog (issue 16): compiled as Verilog-2005, bit-exact, hardware
cycles equal to the cycle model; and a cycle budget that stops a run which would not finish.

Icarus compiled as SystemVerilog (cocotb's ``-g2012``) left ``always @*`` blocks fed by initialised
declarations unevaluated, and the run never finished (sim/benchlib/runner.py says why)."""

import os
import shutil

import pytest

from csdformer import artifact as A
from csdformer.artifact import resolve_artifact
from csdformer.cli import main
from csdformer.hw.program import compile_program
from csdformer.sim import verify as V

# Skipped where Icarus is not installed, but not under CI (CI=true), whose .ci/run installs it.
needs_icarus = pytest.mark.skipif(shutil.which("iverilog") is None and not os.environ.get("CI"),
                                  reason="iverilog not installed (apt install iverilog)")


@pytest.fixture(scope="module")
def digits():
    art = A.load(resolve_artifact("digits"))
    prog = compile_program(art, 8)
    idx, x = V.select_images(art, 3, seed=0)  # the images of `csdformer verify digits --images 3`
    return art, prog, idx, x


@needs_icarus
def test_verify_digits_in_icarus(digits):
    assert shutil.which("iverilog"), "iverilog not installed: .ci/run installs Debian's iverilog before the tests"
    art, prog, idx, x = digits
    rep = V.verify(prog, idx, x, delay=art.delay, sim="icarus")
    assert rep.summary() == "3 passed, 0 failed", "\n".join(c.line() for c in rep.checks)
    assert [c.cycles for c in rep.checks] == [c.model_cycles for c in rep.checks]


def test_cycle_budget_from_the_model(digits):
    art, prog, idx, x = digits
    g = V.golden_reference(prog, x, art.delay)
    budget = V.cycle_budget(prog, g, x[0].size)
    model = sum(m.cycles for m in g["models"])
    assert V.BUDGET_MARGIN * model < budget < 1.1 * V.BUDGET_MARGIN * model  # plus I/O and read-back


def test_cli_verify_past_the_cycle_budget_fails_with_one_line(digits, monkeypatch, capsys):
    """A budget of a handful of cycles: the bench stops at the first image, exit 2, one line."""
    monkeypatch.setattr(V, "cycle_budget", lambda *a: 7)
    assert main(["verify", "digits", "--images", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    first = V.select_images(digits[0], 1, seed=0)[0][0]
    assert err.endswith(f"verify: image {first} (1 of 1): not done within the cycle budget of 7 cycles "
                        "(from the cycle model); the simulation was stopped"), err

