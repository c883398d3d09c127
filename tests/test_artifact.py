"""The artifact: round trip, bounds, and a one-line error naming the field for each kind of damage."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from csdformer.artifact import resolve_artifact
from csdformer import artifact as A
from csdformer.cli import main

SHIPPED = resolve_artifact("digits")


@pytest.fixture(scope="module")
def art() -> A.Artifact:
    return A.load(SHIPPED)


@pytest.fixture
def copy_dir(tmp_path: Path) -> Path:
    d = tmp_path / "art"
    shutil.copytree(SHIPPED, d)
    return d


def test_round_trip(art: A.Artifact, tmp_path: Path) -> None:
    out = A.save(art, tmp_path / "again")
    back = A.load(out)
    assert A.to_manifest(back) == A.to_manifest(art)
    for la, lb in zip(art.layers, back.layers):
        assert la.arrays.keys() == lb.arrays.keys()
        for k in la.arrays:
            assert la.arrays[k].dtype == lb.arrays[k].dtype
            np.testing.assert_array_equal(la.arrays[k], lb.arrays[k])


def test_bounds_hold_the_values(art: A.Artifact) -> None:
    from csdformer.datasets import load
    from csdformer.sim import runner

    x, _ = load("digits", "test")
    b = A.bounds(art)
    res = runner.run(art, x[:64], mode="snn", keep=lambda layer: True)
    for layer in art.layers:
        if "frame" in b[layer.name] and layer.name in res.counts:
            tot = res.counts[layer.name]
            lo, hi = b[layer.name]["total"]
            assert lo <= tot.min() and tot.max() <= hi, layer.name


def test_signed_bits() -> None:
    assert A.signed_bits(-128, 127) == 8
    assert A.signed_bits(-129, 0) == 9
    assert A.signed_bits(0, 128) == 9
    assert A.signed_bits(0, 0) == 1


def _manifest(d: Path) -> dict:
    return json.loads((d / "manifest.json").read_text())


def _write(d: Path, m: dict) -> None:
    (d / "manifest.json").write_text(json.dumps(m))


def _first(m: dict, kind: str) -> dict:
    return next(layer for layer in m["layers"] if layer["kind"] == kind)


def _mutate_arrays(d: Path, key: str, fn) -> None:
    with np.load(d / "arrays.npz") as z:
        arrays = {k: z[k] for k in z.files}
    arrays[key] = fn(arrays[key])
    np.savez(d / "arrays.npz", **arrays)


def _expect(d: Path, text: str, capsys) -> None:
    with pytest.raises(A.ArtifactError, match=text.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[").replace("]", r"\]")):
        A.load(d)
    # The CLI: one line on stderr naming the same field, non-zero exit.
    rc = main(["eval", str(d), "--data", "digits", "--limit", "1"])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.count("\n") == 1 and text in err


def test_missing_key(copy_dir: Path, capsys) -> None:
    m = _manifest(copy_dir)
    del m["T"]
    _write(copy_dir, m)
    _expect(copy_dir, "T: missing key", capsys)


def test_missing_layer_key(copy_dir: Path, capsys) -> None:
    m = _manifest(copy_dir)
    del m["layers"][2]["kind"]
    _write(copy_dir, m)
    _expect(copy_dir, "layers[2].kind: missing key", capsys)


def test_unknown_schema_version(copy_dir: Path, capsys) -> None:
    m = _manifest(copy_dir)
    m["schema_version"] = 99
    _write(copy_dir, m)
    _expect(copy_dir, "schema_version: unknown schema version 99", capsys)


@pytest.mark.parametrize("T", [0, -1])
def test_T_below_one(copy_dir: Path, capsys, T: int) -> None:
    m = _manifest(copy_dir)
    m["T"] = T
    _write(copy_dir, m)
    _expect(copy_dir, "T: must be an integer >= 1", capsys)


@pytest.mark.parametrize("delay", [-1, 4, 10])
def test_delay_out_of_range(copy_dir: Path, capsys, delay: int) -> None:
    m = _manifest(copy_dir)
    m["delay"] = delay
    _write(copy_dir, m)
    _expect(copy_dir, "delay: must be an integer in 0..T-1", capsys)


def test_threshold_not_positive(copy_dir: Path, capsys) -> None:
    m = _manifest(copy_dir)
    dif = _first(m, "dif")
    key = dif["arrays"]["threshold"]["key"]
    _mutate_arrays(copy_dir, key, lambda a: np.where(np.arange(a.size).reshape(a.shape) == 0, 0, a).astype(a.dtype))
    dif.pop("bounds")
    _write(copy_dir, m)
    _expect(copy_dir, f"({dif['name']}).threshold: must be > 0", capsys)


def test_unknown_layer_kind(copy_dir: Path, capsys) -> None:
    m = _manifest(copy_dir)
    m["layers"][3]["kind"] = "softmax"
    _write(copy_dir, m)
    _expect(copy_dir, "kind: unknown layer kind 'softmax'", capsys)


def test_wrong_dtype(copy_dir: Path, capsys) -> None:
    m = _manifest(copy_dir)
    lin = _first(m, "linear")
    key = lin["arrays"]["weight"]["key"]
    _mutate_arrays(copy_dir, key, lambda a: a.astype(np.float32))
    lin["arrays"]["weight"]["dtype"] = "float32"
    _write(copy_dir, m)
    _expect(copy_dir, f"({lin['name']}).weight: dtype must be an integer type, got float32", capsys)


def test_wrong_shape(copy_dir: Path, capsys) -> None:
    m = _manifest(copy_dir)
    lin = _first(m, "linear")
    key = lin["arrays"]["weight"]["key"]
    _mutate_arrays(copy_dir, key, lambda a: a[:, :-1])
    _write(copy_dir, m)
    _expect(copy_dir, f"({lin['name']}).weight: manifest says shape", capsys)
    lin["arrays"]["weight"]["shape"][1] -= 1
    _write(copy_dir, m)
    _expect(copy_dir, f"({lin['name']}).weight: shape", capsys)


def test_stated_shape_mismatch(copy_dir: Path, capsys) -> None:
    m = _manifest(copy_dir)
    lin = _first(m, "linear")
    lin["shape"][1] += 1
    _write(copy_dir, m)
    _expect(copy_dir, f"({lin['name']}).shape: stated", capsys)


def test_stated_bounds_mismatch(copy_dir: Path, capsys) -> None:
    m = _manifest(copy_dir)
    lin = _first(m, "linear")
    lin["bounds"]["frame"][1] -= 1
    _write(copy_dir, m)
    _expect(copy_dir, f"({lin['name']}).bounds.frame: stated", capsys)


def test_truncated_npz(copy_dir: Path, capsys) -> None:
    data = (copy_dir / "arrays.npz").read_bytes()
    (copy_dir / "arrays.npz").write_bytes(data[: len(data) // 2])
    _expect(copy_dir, "arrays.npz: truncated or corrupt", capsys)


def test_weight_outside_bits(art: A.Artifact) -> None:
    bad = copy.deepcopy(art)
    lin = next(layer for layer in bad.layers if layer.kind == "linear")
    lin.arrays["weight"] = lin.arrays["weight"].astype(np.int16) * 4
    with pytest.raises(A.ArtifactError, match=r"weight: values .* exceed 8-bit range"):
        A.validate(bad)


def test_unknown_input_tensor(art: A.Artifact) -> None:
    bad = copy.deepcopy(art)
    bad.layers[3].inputs = ("nowhere",)
    with pytest.raises(A.ArtifactError, match=r"inputs\[0\]: unknown or later tensor 'nowhere'"):
        A.validate(bad)


def test_not_a_folder(tmp_path: Path, capsys) -> None:
    rc = main(["eval", str(tmp_path / "none"), "--data", "digits"])
    assert rc == 2 and "not an artifact folder" in capsys.readouterr().err


def test_save_is_atomic(art: A.Artifact, tmp_path: Path, monkeypatch) -> None:
    out = tmp_path / "out"
    A.save(art, out)
    before = sorted(p.name for p in out.iterdir())
    before_bytes = (out / "manifest.json").read_bytes()

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez_compressed", boom)
    with pytest.raises(OSError, match="disk full"):
        A.save(art, out, overwrite=True)
    with pytest.raises(OSError, match="disk full"):
        A.save(art, tmp_path / "fresh")
    assert not (tmp_path / "fresh").exists()
    assert sorted(p.name for p in out.iterdir()) == before
    assert (out / "manifest.json").read_bytes() == before_bytes
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no temporary left behind
