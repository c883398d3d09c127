"""What a newcomer reads (issue 17): figures in percent, refusals, help texts, progress in logs,
and build reports that say how to program each board."""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from csdformer import artifact as A
from csdformer import progress as P
from csdformer.artifact import resolve_artifact
from csdformer.cli import LAZY_COMMANDS, build_parser, main
from csdformer.datasets import load as load_dataset

REPO = Path(__file__).resolve().parent.parent


# --- figures ---------------------------------------------------------------------------------------

def test_convert_prints_percent_and_the_artifact_keeps_fractions():
    from csdformer.artifact import load, resolve_artifact
    from csdformer.quantize.evaluate import format_metrics

    m = load(resolve_artifact("digits")).metrics
    assert 0 < m["qann"] < 1 and 0 < m["snn"]["3"] < 1  # fractions in JSON
    text = format_metrics(m)
    assert f"qann {100 * m['qann']:.2f} %" in text and f"D=3: {100 * m['snn']['3']:.2f} %" in text
    assert f"{m['qann']:.4f}" not in text and f"{m['int_qann']:.4f}" not in text


@pytest.mark.parametrize("limit", ["0", "-3"])
def test_eval_limit_below_one_is_refused(limit, capsys):
    assert main(["eval", "digits", "--limit", limit]) == 2
    err = capsys.readouterr().err
    assert err == f"csdformer: error: --limit: must be at least 1 image, got {limit}\n"
    assert "nan" not in err


def test_eval_defaults_to_the_artifacts_data_and_json_has_labels(capsys):
    assert main(["eval", "digits", "--limit", "40"]) == 0  # no --data: the artifact's own (digits)
    assert "digits on digits/test (SNN D=3): accuracy " in capsys.readouterr().out
    assert main(["eval", "digits", "--json", "--limit", "40"]) == 0
    doc = json.loads(capsys.readouterr().out)
    _, y = load_dataset("digits", "test")
    assert doc["data"] == "digits" and doc["labels"] == y[:40].tolist() and len(doc["predictions"]) == 40
    assert doc["accuracy"] == pytest.approx(sum(p == t for p, t in zip(doc["predictions"], doc["labels"])) / 40)


def test_eval_progress_in_a_log_is_plain_lines(monkeypatch, capsys):
    monkeypatch.setattr(P, "QUIET_S", 0.0)  # show every phase, however short
    assert main(["eval", "digits", "--mode", "qann"]) == 0
    err = capsys.readouterr().err  # not a terminal
    assert "\r" not in err and "\x1b" not in err
    lines = err.splitlines()
    assert lines[-1].startswith("golden qann: 3/3 batches, elapsed ") and "left" not in lines[-1]
    assert any(ln.startswith("golden qann: 1/3 batches, elapsed ") and ln.endswith(" left") for ln in lines)


def test_progress_lines_every_tenth_with_an_estimate():
    out = io.StringIO()
    with P.Progress(100, "phase", unit="steps", stream=out, quiet_s=0, every_s=1e9) as p:
        for _ in range(100):
            p.update()
    lines = out.getvalue().splitlines()
    assert len(lines) == 10 and "\r" not in out.getvalue()
    assert lines[0].startswith("phase: 10/100 steps, elapsed ") and lines[0].endswith(" left")
    assert lines[-1].startswith("phase: 100/100 steps, elapsed ")
    quiet = io.StringIO()
    with P.Progress(100, "phase", stream=quiet, quiet_s=60) as p:  # a phase shorter than quiet_s: silent
        for _ in range(100):
            p.update()
    assert quiet.getvalue() == ""


def test_heartbeat_says_start_end_and_beats():
    out = io.StringIO()
    with P.heartbeat("compile", stream=out, every_s=0.05):
        import time

        time.sleep(0.18)
    lines = out.getvalue().splitlines()
    assert lines[0] == "compile: started" and lines[-1].startswith("compile: done in ")
    assert any(ln.startswith("compile: still running, elapsed ") for ln in lines[1:-1])


def test_heartbeat_watching_a_log_beats_only_while_it_grows(tmp_path):
    """With ``watch`` (a tool's log) a beat is a sign of progress: none while the log is silent,
    one quoting its newest line after it grew."""
    import time

    log = tmp_path / "tool.out"
    log.write_text("")
    out = io.StringIO()
    with P.heartbeat("nextpnr", stream=out, every_s=0.05, announce=False, watch=log):
        time.sleep(0.3)
        n_silent = len(out.getvalue().splitlines())
        log.write_text("Info: placing\nInfo: routing iteration 7\n")
        time.sleep(0.3)
    lines = out.getvalue().splitlines()
    assert n_silent == 0
    assert len(lines) == 1 and lines[0].startswith("nextpnr: still running, elapsed ")
    assert lines[0].endswith(" (Info: routing iteration 7)")


def test_rtl_prints_typical_and_worst_case_cycles(tmp_path, capsys):
    assert main(["rtl", "digits", "-o", str(tmp_path / "rtl"), "--lanes", "8"]) == 0
    out = capsys.readouterr().out
    assert "at least" not in out and "8 lanes" in out
    line = next(ln for ln in out.splitlines() if ln.startswith("cycles an image (cycle model, D=3): typically "))
    typical = int(line.split("typically ")[1].split(" ")[0].replace(",", ""))
    worst = int(line.split("worst case ")[1].split(" ")[0].replace(",", ""))
    # The figures are the cycle model's, for the program the command compiled (the shipped digits
    # model, 1-32, 16 tokens: about 59,000 cycles an image on 8 lanes since the sink runs beside
    # the scatter and a conv's border taps are skipped, 68,000 with the word queue alone,
    # 77,000..86,000 before it). The range only guards against a figure from some other program.
    from csdformer.boards.throughput import cycle_estimate
    from csdformer.hw.program import compile_program

    e = cycle_estimate(compile_program(A.load(resolve_artifact("digits")), 8))
    assert (typical, worst) == (round(e["mean"]), e["worst_case"])
    assert 45_000 < typical < e["max"] < worst
    assert main(["rtl", "digits", "-o", str(tmp_path / "rtl1"), "--lanes", "1"]) == 0
    assert ", 1 lane, " in capsys.readouterr().out


# --- refusals --------------------------------------------------------------------------------------

def test_flow_refuses_to_replace_a_folder_without_force(tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "report.md").write_text("an earlier run\n")
    assert main(["flow", "--no-train", "--board", "none", "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert err == f"csdformer: error: {out}: already exists (use --force to replace it, or -o another folder)\n"
    assert sorted(p.name for p in out.iterdir()) == ["report.md"]  # untouched
    args = build_parser("flow").parse_args(["flow", "--force", "-o", str(out)])
    assert args.force is True


def test_build_refuses_to_replace_a_folder_without_force(tmp_path, capsys):
    (tmp_path / "top.bin").write_bytes(b"earlier")
    assert main(["build", "digits", "--board", "icebreaker", "-o", str(tmp_path)]) == 2
    assert capsys.readouterr().err == (f"csdformer: error: {tmp_path}: already exists "
                                       "(use --force to replace it, or -o another folder)\n")
    assert (tmp_path / "top.bin").read_bytes() == b"earlier"


# --- help texts ------------------------------------------------------------------------------------

@pytest.mark.parametrize("command", ["train", "convert", "eval", *LAZY_COMMANDS])
def test_help_texts(command):
    p = build_parser(command)
    sub = next(a for a in p._actions if isinstance(a, argparse._SubParsersAction)).choices[command]
    text = p.format_help() + sub.format_help()
    for markup in ("``", ":class:", ":func:", ":mod:", " 1 lanes"):
        assert markup not in text, (command, markup)
    bare = [a.dest for a in sub._actions if not a.help and a.dest != "help"]
    assert bare == [], f"{command}: no help for {bare}"


# --- build reports ---------------------------------------------------------------------------------

def _report(board, fmax, target, goal, notes=()):
    from csdformer.boards.report import BuildReport, ClockTiming

    bit = "build/b/top.bin" if board == "icebreaker" else "build/b/top.bit"
    return BuildReport(board=board, device="dev", family="ice40" if board == "icebreaker" else "ecp5",
                       target_mhz=target, sync_mhz=target, goal_mhz=goal, fit=True, bitstream=bit,
                       clocks=[ClockTiming("clk", target, fmax)], notes=list(notes))


def test_report_has_one_verdict_and_the_goal_as_a_goal():
    r = _report("icebreaker", 36.0, 30.0, 50.0)
    md = r.to_markdown()
    assert r.ok and r.goal_met is False and r.to_dict()["goal_met"] is False
    verdict = "OK: fits and meets its 30 MHz clock (Fmax 36.0 MHz); goal 50 MHz (aimed for, not required): not reached"
    assert md.splitlines()[2] == f"**{verdict}**"
    assert "does not reach" not in md and md.count("50 MHz") == 1  # the goal said once, in the verdict
    assert _report("orangecrab-25f", 139.0, 100.0, 125.0).verdict().endswith("goal 125 MHz (aimed for, "
                                                                             "not required): reached")
    bad = _report("icebreaker", 20.0, 30.0, 50.0)
    assert bad.verdict() == "FAILED: misses timing on clk: 20.00 MHz < 30.00 MHz"
    assert "- Clock goal 50 MHz (aimed for, not required): not reached (Fmax 20.0 MHz)" in bad.to_markdown()


@pytest.mark.parametrize("board, steps, tools", [
    ("icebreaker", ["iceprog build/b/top.bin"], ["sudo apt install fpga-icestorm", "sudo apt install openfpgaloader"]),
    ("ulx3s-85f", ["openFPGALoader -b ulx3s build/b/top.bit"], ["sudo apt install openfpgaloader", "fujprog"]),
    ("orangecrab-25f", ["dfu-util -D build/b/top.bit"], ["sudo apt install dfu-util"]),
])
def test_every_report_says_how_to_program_its_board(board, steps, tools, tmp_path):
    from csdformer.boards.report import BuildReport
    from csdformer.boards.targets import get_board

    r = _report(board, 200.0, 100.0, 125.0)
    paths = r.write(tmp_path)
    md, doc = paths["md"].read_text(), json.loads(paths["json"].read_text())
    assert doc["programming"]["steps"] == steps and "## Programming the board" in md
    for s in steps + doc["programming"]["alternative"]:
        assert f"\n{s}\n" in md
    for t in tools:
        assert t in md and t in json.dumps(doc["programming"])
    assert BuildReport.from_dict(doc).to_markdown() == md
    assert get_board(board).programming.steps  # the board registry names them too
    alt = {"icebreaker": "openFPGALoader -b ice40_generic build/b/top.bin", "ulx3s-85f": "fujprog build/b/top.bit"}
    if board in alt:
        assert doc["programming"]["alternative"] == [alt[board]]


def test_orangecrab_without_dfu_suffix_lists_the_suffix_step_and_its_package():
    from csdformer.boards.programming import DFU_SUFFIX_SKIPPED

    note = (DFU_SUFFIX_SKIPPED + " (install it: sudo apt install dfu-util; or run that step under "
            "'Programming the board' below)")
    r = _report("orangecrab-25f", 139.0, 100.0, 125.0, notes=[note])
    assert r.programming()["steps"] == ["dfu-suffix -v 1209 -p 5af0 -a build/b/top.bit", "dfu-util -D build/b/top.bit"]
    assert f"- note: {note}" in r.to_markdown()
    src = (REPO / "boards" / "build.py").read_text()
    assert "DFU_SUFFIX_SKIPPED + f\" (install it: {APT_DFU_UTIL}" in src  # the build writes that note


# --- verify's log ----------------------------------------------------------------------------------

def test_verify_log_shows_the_build_and_every_image_without_carriage_returns(tmp_path):
    """``csdformer verify`` with stderr in a file (a log, not a terminal): the Verilator build's
    start and end, then one line per image with the elapsed time (a first build: 20–60 s)."""
    log = tmp_path / "verify.log"
    with open(log, "w") as f:
        p = subprocess.run([sys.executable, "-m", "csdformer", "verify", "digits", "--images", "3"],
                           stdout=f, stderr=subprocess.STDOUT, cwd=tmp_path, timeout=600)
    text = log.read_text()
    assert p.returncode == 0, text
    assert "\r" not in text and "\x1b" not in text
    lines = text.splitlines()
    assert "verilator build of csdformer_accel: started" in lines
    assert any(ln.startswith("verilator build of csdformer_accel: done in ") for ln in lines)
    for i in (1, 2, 3):
        assert any(ln.startswith(f"simulation: {i}/3 images, elapsed ") for ln in lines), text
    assert lines[-1] == "3 passed, 0 failed"
