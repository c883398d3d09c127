"""Each extra is usable alone: the CLI in processes where the ``hw`` (or ``train``) extra's
modules cannot be imported, as after ``pip install -e ".[train]"`` (or a bare install)."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from csdformer.artifact import load, resolve_artifact

HW = ("amaranth", "amaranth_boards", "cocotb", "cocotb_tools")

# Runs the CLI with a meta-path finder in front that refuses the given top-level modules, the way
# an interpreter without them fails: ModuleNotFoundError naming the module.
WRAPPER = """
import sys
BLOCKED = set(sys.argv[1].split(","))

class Missing:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, Missing())
from csdformer.cli import main
sys.exit(main(sys.argv[2:]))
"""


def _cli(blocked, *argv, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", WRAPPER, ",".join(blocked), *map(str, argv)],
                          capture_output=True, text=True, cwd=cwd, timeout=600)


def _extra_error(p: subprocess.CompletedProcess, command: str, extra: str) -> None:
    """Exit 2 with exactly one stderr line naming the extra, no traceback."""
    assert p.returncode == 2, (p.returncode, p.stdout, p.stderr)
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1, p.stderr
    assert re.fullmatch(rf'csdformer: error: {command} needs the {extra} extra \(no module named \'\w+\'\): '
                        rf'pip install -e "\.\[{extra}\]"', lines[0]), lines[0]


def test_importing_the_cli_loads_neither_amaranth_nor_torch():
    code = ("import sys, csdformer.cli as c; c.build_parser(); c.build_parser('eval'); "
            "print(sorted({m.partition('.')[0] for m in sys.modules} & {'amaranth', 'amaranth_boards', "
            "'cocotb', 'torch'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_train_convert_eval_without_the_hw_extra(tmp_path):
    """Done-when 5 of issue 11: train one epoch, convert, and evaluate with Amaranth unimportable."""
    run = tmp_path / "run"
    p = _cli(HW, "train", "digits", "--epochs", "1", "--quiet", "--out", run)
    assert p.returncode == 0, p.stderr
    assert re.search(r"^trained digits: test accuracy \(QANN\) \d+\.\d\d % in \d+ s; checkpoint .*checkpoint\.pt$",
                     p.stdout, re.M), p.stdout

    art = tmp_path / "art"
    p = _cli(HW, "convert", run, art)
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith(f"wrote {art} (") and "\nsnn   D=0: " in p.stdout, p.stdout  # format_metrics
    assert re.search(r"^accuracy on the test split \(n=360\): float \d+\.\d\d %  qann \d+\.\d\d %", p.stdout, re.M)
    assert load(art).metrics["n"] == 360

    p = _cli(HW, "eval", "digits", "--data", "digits")
    assert p.returncode == 0, p.stderr
    want = load(resolve_artifact("digits")).metrics["snn"]["3"]  # recorded at conversion
    assert re.match(rf"digits on digits/test \(SNN D=3\): accuracy {want * 100:.2f} % over 360 images", p.stdout), \
        p.stdout


@pytest.mark.parametrize("argv", [
    ("rtl", "digits", "-o", "{tmp}/x"),  # fails when it runs (hw.rtl)
    ("verify", "digits", "--images", "1"),
    ("build", "digits", "--board", "icebreaker"),  # fails building its parser (board list)
    ("flow", "--no-train", "-o", "{tmp}/flow"),
])
def test_hardware_commands_name_the_hw_extra(argv, tmp_path):
    argv = [a.format(tmp=tmp_path) for a in argv]
    _extra_error(_cli(HW, *argv, cwd=tmp_path), argv[0], "hw")
    assert list(tmp_path.iterdir()) == []  # nothing written before the error


def test_eval_needs_neither_extra_and_train_names_its_extra(tmp_path):
    p = _cli(HW + ("torch",), "eval", "digits", "--data", "digits", "--limit", "20", "--json")
    assert p.returncode == 0, p.stderr
    assert '"n": 20' in p.stdout
    _extra_error(_cli(HW + ("torch",), "train", "digits", "--out", tmp_path / "run"), "train", "train")
    _extra_error(_cli(HW + ("torch",), "convert", tmp_path / "run", tmp_path / "art"), "convert", "train")
