"""``csdformer flow``: the report writer, argument errors, and one end-to-end run (slow)."""

import json
import shutil
import tempfile
from pathlib import Path

import pytest

from csdformer.cli import main
from csdformer.flow_report import Stage, write_report


def _synthetic_stages():
    T = 4
    raster = {"T": T, "delay": 3, "max_neurons": 64, "image_index": 7, "prediction": 2,
              "layers": [{"name": "enc.quant", "neurons_total": 100, "spikes": 5, "active_neurons": 3,
                          "neurons": [0, 1, 2], "frames": [[1, 0, 0, 1], [0, 1, 0, 0], [0, 0, 0, 1]]},
                         {"name": "head_quant", "neurons_total": 10, "spikes": 1, "active_neurons": 1,
                          "neurons": [0, 5], "frames": [[0, 0, 1, 0], [0, 0, 0, 0]]}]}
    acc = {"split": "test", "qann": 0.9, "int_qann": 0.875, "snn": {"0": 0.1, "1": 0.8, "2": 0.86, "3": 0.875},
           "snn_equals_int_qann": 1.0, "n": 40, "qann_source": "synthetic"}
    build = {"board": "icebreaker", "device": "iCE40UP5K", "ok": False,
             "verdict": "FAILED: does NOT fit the device (BRAM 225/30)",
             "resources": [{"name": "LUT", "used": 4000, "available": 5280, "percent": 75.8},
                           {"name": "BRAM", "used": 225, "available": 30, "percent": 750.0},
                           {"name": "SPRAM", "used": 0, "available": 4, "percent": 0.0},
                           {"name": "PLL", "used": None, "available": None, "percent": None}]}
    return [
        Stage("train", "ok", 12.5, "3 epochs, QANN test accuracy 90.00 %", figures={"epochs": 3}),
        Stage("convert", "ok", 0.25, "27 layers, T=4, D=3"),
        Stage("evaluate", "ok", 3.0, "n=40", figures={"accuracy": acc, "raster": raster}),
        Stage("rtl", "ok", 1.0, "17 ops"),
        Stage("verify", "ok", 20.0, "2 passed, 0 failed",
              figures={"per_op_cycles_mean": {"stages.1": 1000.0, "rpe_add": 2500.5, "head": 10.0},
                       "images": [{"index": 7, "ok": True, "cycles": 900, "model_cycles": 900, "sops": 12,
                                   "spikes": 5, "first_layer": None}]}),
        Stage("board", "FAILED", 187.2, "icebreaker (iCE40UP5K): BRAM 225/30",
              reason="icebreaker: FAILED: does NOT fit the device (BRAM 225/30)", figures={"builds": [build]}),
        Stage("report", "ok", 0.5, "written"),
    ]


def test_report_writer(tmp_path):
    stages = _synthetic_stages()
    meta = {"config": "digits", "command": "csdformer flow digits", "total_seconds": 224.45}
    paths = write_report(tmp_path, stages, meta)
    for key in ("md", "json", "accuracy", "raster", "cycles", "resources"):
        assert paths[key].is_file() and paths[key].stat().st_size > 0, key
    for key in ("accuracy", "raster", "cycles", "resources"):
        assert paths[key].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    md = paths["md"].read_text()
    assert md.startswith("# csdformer flow: digits")
    assert "**FAILED: board: icebreaker: FAILED: does NOT fit the device (BRAM 225/30)**" in md
    assert "| # | stage | status | seconds | key figures |" in md
    assert "| 1 | train | ok | 12.5 | 3 epochs, QANN test accuracy 90.00 % |" in md
    assert "| 6 | board | **FAILED** | 187.2 |" in md
    assert "| 3 | 87.50 % |" in md  # SNN accuracy at D=3
    assert "| BRAM | 225 **over** | 30 | 750.0 |" in md
    assert "Total time: 224.4 s" in md or "Total time: 224.5 s" in md
    for name in ("accuracy.png", "raster.png", "cycles.png", "resources.png"):
        assert f"]({name})" in md
    doc = json.loads(paths["json"].read_text())
    assert set(doc) == {"meta", "ok", "stages", "order", "plots"}
    assert doc["ok"] is False
    assert doc["order"] == ["train", "convert", "evaluate", "rtl", "verify", "board", "report"]
    assert set(doc["stages"]["board"]) == {"name", "status", "seconds", "summary", "reason", "figures"}
    assert doc["stages"]["evaluate"]["figures"]["accuracy"]["snn"] == {"0": 0.1, "1": 0.8, "2": 0.86, "3": 0.875}
    assert doc["plots"] == {"accuracy": "accuracy.png", "raster": "raster.png", "cycles": "cycles.png",
                            "resources": "resources.png"}


def test_report_writer_leaves_out_missing_plots(tmp_path):
    stages = [Stage("train", "FAILED", 1.0, reason="RuntimeError: boom")] + [
        Stage(n, "skipped", reason="needs train") for n in ("convert", "evaluate", "rtl", "verify", "board")] + [
        Stage("report", "ok")]
    paths = write_report(tmp_path, stages, {"config": "digits"})
    assert set(paths) == {"md", "json"}
    md = paths["md"].read_text()
    assert "**FAILED: train: RuntimeError: boom**" in md
    assert "| 2 | convert | skipped | 0.0 | needs train |" in md
    assert "- Accuracy against delay: not drawn" in md
    assert json.loads(paths["json"].read_text())["ok"] is False


@pytest.mark.parametrize("argv, message", [
    (["flow", "no_such_config"], "csdformer: error: config 'no_such_config': no such file and not a built-in config"),
    (["flow", "--images", "0", "--board", "none"], "csdformer: error: --images: must be at least 1, got 0"),
    (["flow", "--board-timeout", "0"], "csdformer: error: --board-timeout: must be positive, got 0"),
])
def test_argument_errors(argv, message, capsys, tmp_path):
    assert main(argv + ["-o", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(message)
    assert err.count("\n") == 1  # one line
    assert not (tmp_path / "out").exists()  # nothing ran


def test_no_train_needs_a_shipped_model(capsys, tmp_path):
    from importlib import resources

    text = resources.files("csdformer").joinpath("configs", "digits.yaml").read_text()
    cfg = tmp_path / "other.yaml"
    cfg.write_text(text.replace("\nname: digits", "\nname: other_model", 1))
    assert main(["flow", str(cfg), "--no-train", "-o", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("csdformer: error: --no-train: there is no shipped model named 'other_model'")
    assert err.count("\n") == 1


def test_unknown_board_is_an_argparse_error(capsys):
    with pytest.raises(SystemExit) as e:
        main(["flow", "--board", "nosuch"])
    assert e.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


@pytest.mark.slow
def test_flow_end_to_end_no_train_with_the_icebreaker_bitstream(capsys):
    """The shipped digits model through every stage but training, the iCEBreaker build included
    (about 2 minutes of Yosys and nextpnr): CI builds that bitstream here."""
    from csdformer.artifact import load
    from csdformer.artifact import resolve_artifact

    repo = Path(__file__).resolve().parent.parent
    (repo / "build").mkdir(exist_ok=True)
    out = Path(tempfile.mkdtemp(prefix="test-flow-", dir=repo / "build")) / "flow"  # not /tmp: see boards/build.py
    assert main(["flow", "--no-train", "--images", "2", "-o", str(out)]) == 0
    doc = json.loads((out / "report.json").read_text())
    assert doc["ok"] is True
    st = doc["stages"]
    assert [st[n]["status"] for n in doc["order"]] == ["skipped", "ok", "ok", "ok", "ok", "ok", "ok"]
    (b,) = st["board"]["figures"]["builds"]
    assert b["board"] == "icebreaker" and b["ok"] and b["fit"] and b["timing_met"]
    assert b["fmax_mhz"] >= 30.0 and b["multipliers"] == {"SB_MAC16": 0}
    res = {r["name"]: (r["used"], r["available"]) for r in b["resources"]}
    assert res["SPRAM"] == (3, 4) and res["BRAM"][0] <= 30  # CUR and MEM in SPRAM
    assert Path(b["bitstream"]).stat().st_size > 100_000
    assert b["cycles_per_image"] > 0 and b["images_per_s"] == pytest.approx(30e6 / b["cycles_per_image"])
    shipped = load(resolve_artifact("digits")).metrics
    acc = st["evaluate"]["figures"]["accuracy"]
    for key in ("int_qann", "snn", "snn_equals_int_qann", "n", "qann"):
        assert acc[key] == shipped[key], key
    # the artifact written by the run carries the same golden figures
    written = load(out / "artifact").metrics
    assert written["snn"] == shipped["snn"] and written["int_qann"] == shipped["int_qann"]
    ver = st["verify"]["figures"]
    assert ver["passed"] == 2 and ver["failed"] == 0 and len(ver["images"]) == 2
    assert all(c["cycles"] == c["model_cycles"] or abs(c["cycles"] - c["model_cycles"]) <= 0.05 * c["model_cycles"]
               for c in ver["images"])
    for name in ("report.md", "accuracy.png", "raster.png", "cycles.png"):
        assert (out / name).stat().st_size > 0
    assert (out / "resources.png").stat().st_size > 0
    md = (out / "report.md").read_text()
    snn3 = f"| 3 | {100 * shipped['snn']['3']:.2f} % |"
    assert snn3 in md
    assert (out / "rtl" / "csdformer_accel.v").is_file()
    shutil.rmtree(out.parent)


def _fake_board_stage(monkeypatch, tmp_path, script: str, idle_s: float):
    """The flow's board stage with a fake build (``python -c script``) under an idle limit."""
    import argparse
    import sys

    from csdformer import flow

    monkeypatch.setattr(flow, "_board_command", lambda ctx, bdir: [sys.executable, "-c", script])
    args = argparse.Namespace(board="icebreaker", board_timeout=idle_s)
    st = Stage("board")
    flow._stage_board(flow._Ctx(args, None, tmp_path), st)
    return st


def test_board_stage_busy_longer_than_the_idle_limit_is_not_stopped(monkeypatch, tmp_path):
    """Progress, not the wall clock: a build printing a line every 0.2 s for 2.4 s under a 1 s idle
    limit runs to its end (here it writes no report, so the stage says that, not a stop)."""
    script = ("import sys, time\nfor i in range(12):\n    print(f'[build icebreaker] nextpnr: line {i}', "
              "file=sys.stderr, flush=True)\n    time.sleep(0.2)\n")
    st = _fake_board_stage(monkeypatch, tmp_path, script, 1.0)
    assert st.figures["exit_status"] == 0 and len(st.figures["log_tail"]) == 12
    assert st.reason == "icebreaker build wrote no report (exit 0): [build icebreaker] nextpnr: line 11"


def test_board_stage_silent_past_the_idle_limit_is_stopped(monkeypatch, tmp_path):
    script = ("import sys, time\nprint('[build icebreaker] nextpnr ...', file=sys.stderr, flush=True)\n"
              "time.sleep(60)\n")
    st = _fake_board_stage(monkeypatch, tmp_path, script, 0.5)
    assert st.status == "FAILED" and st.figures["exit_status"] != 0
    assert st.reason.startswith("icebreaker build made no progress (no output line) for 0.5 s (--board-timeout) "
                                "and was stopped after ")
    assert st.reason.endswith(" s (last stage line: [build icebreaker] nextpnr ...); fit and timing unknown")
    assert st.summary == "icebreaker: stopped, no progress for 0.5 s"
