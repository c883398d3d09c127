"""bench/readme_check.py's parser finds the README's commands (no clone, venv or install here)."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _module():
    spec = importlib.util.spec_from_file_location("readme_check", ROOT / "bench" / "readme_check.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["readme_check"] = mod  # dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


def test_parser_extracts_the_readme_commands_in_order():
    rc = _module()
    cmds = rc.parse_readme((ROOT / "README.md").read_text())
    lines = [c.line for c in cmds]
    # the set-up first, in its own section
    assert [c.section.startswith("Set-up") for c in cmds[:2]] == [True, True]
    assert lines[0] == "python3 -m pip install -e '.[all]'"
    assert lines[1] == "PYTHONWARNINGS=error python3 -m pytest -q -n auto --dist loadfile"
    # trailing comments are dropped from the command and kept as its description
    assert "csdformer flow" in lines and not any("#" in ln for ln in lines)
    train = next(c for c in cmds if c.line.startswith("csdformer train"))
    assert train.line == "csdformer train digits --out runs/digits" and "YAML" in train.comment
    # the README's order: train before convert before eval of what convert wrote
    order = [lines.index(x) for x in ("csdformer train digits --out runs/digits",
                                      "csdformer convert runs/digits my-digits", "csdformer eval my-digits")]
    assert order == sorted(order)
    # every README command is either checked against its described output or skipped with a reason
    for ln in lines:
        assert ln in rc.EXPECT or ln in rc.SKIP, f"README command without expectation or skip reason: {ln}"
    assert any("/dev/ttyUSB0" in ln for ln in rc.SKIP)


def test_parser_only_reads_sh_blocks():
    rc = _module()
    text = "# T\n\n```\nconfig.yaml ─▶ csdformer train\n```\n## A\n```sh\n# only a comment\n\nls -l   # list\n```\n" \
           "```python\nprint(1)\n```\n"
    cmds = rc.parse_readme(text)
    assert [(c.section, c.line, c.comment) for c in cmds] == [("A", "ls -l", "list")]
