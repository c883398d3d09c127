"""Malformed configs (issue 16): each goes through ``csdformer train CFG --out OUT`` under a 2 GB
memory limit and a 30 s time limit, and must end with exit status 2, exactly one stderr line naming
the offending key (the text is asserted), no run folder and nothing else written.

The cases run in one worker process (``hostile.run_group``); a few also run alone in a fresh
process. Also here: checkpoints and CIFAR batches are read as data (a pickle payload never runs).

The malformed configs are text edits of a frozen copy of the digits config as it was at commit
4575c58 (``tests/fixtures/digits-4575c58.yaml``: csdformer-1-16, 1 head, 60 epochs, seed 0), so the
edits and the line numbers in the expected messages do not move when the shipped config changes.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import yaml

from hostile import check_one_line_error, run_alone, run_watched, snapshot

#: the digits config of commit 4575c58, frozen (the edits below and their line numbers refer to it)
BASE = (Path(__file__).parent / "fixtures" / "digits-4575c58.yaml").read_text()
BASE_DICT = yaml.safe_load(BASE)


def patch(section: str | None, key: str, value) -> str:
    d = yaml.safe_load(BASE)
    (d if section is None else d[section])[key] = value
    return yaml.safe_dump(d)


def text(old: str, new: str) -> str:
    assert old in BASE, old
    return BASE.replace(old, new, 1)


def _alias_bomb() -> str:
    """A "billion laughs": nine levels of ten references each (10^9 leaves if expanded)."""
    levels = ["&a0 [" + ", ".join(["lol"] * 10) + "]"]
    for i in range(1, 9):
        levels.append(f"&a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]")
    return "name: [" + ", ".join(levels) + "]\n"


# id -> (config text or bytes, expected text in the one stderr line)
CASES: dict[str, tuple[str | bytes, str]] = {
    # --- the file ---
    "empty-file": ("", "empty config (no keys)"),
    "only-comments": ("# nothing here\n\n", "empty config (no keys)"),
    "not-utf8": (b"name: digits\nmodel:\n  arch: \xff\xfe\n", "not UTF-8 text (byte 28)"),
    "too-large": ("#" * (2 << 20), "config larger than 1048576 bytes"),
    "yaml-syntax": ("model: [unclosed\n", "not valid YAML"),
    "yaml-python-tag": ("name: !!python/object/apply:os.system ['echo hi']\n", "not valid YAML"),
    "duplicate-top-key": (BASE + "train:\n  epochs: 1\n", "duplicate key 'train' at line 29 (first at line 18)"),
    "duplicate-nested-key": (text("  lr: 0.003\n", "  lr: 0.003\n  lr: 0.3\n"), "duplicate key 'lr' at line 22"),
    "top-level-list": ("- name: digits\n", "config: expected a mapping, got list"),
    "top-level-scalar": ("digits\n", "config: expected a mapping, got str"),
    "alias-bomb": (_alias_bomb(), "name: expected str, got list"),
    "unknown-key": (patch(None, "eval", "os.system('x')"), "eval: unknown key"),
    "unknown-nested-key": (patch("train", "momentum", 0.9), "train.momentum: unknown key"),
    # --- numbers that are not numbers ---
    "lr-inf": (text("lr: 0.003", "lr: .inf"), "train.lr: must be a finite number, got inf"),
    "lr-nan": (text("lr: 0.003", "lr: .nan"), "train.lr: must be a finite number, got nan"),
    "weight-decay-nan": (text("weight_decay: 0.02", "weight_decay: .nan"), "train.weight_decay: must be a finite number"),
    "weight-decay-minus-inf": (text("weight_decay: 0.02", "weight_decay: -.inf"), "train.weight_decay: must be a finite"),
    "lr-string": (text("lr: 0.003", "lr: fast"), "train.lr: expected float, got str 'fast'"),
    "lr-mapping": (text("lr: 0.003", "lr: {a: 1}"), "train.lr: expected float, got dict"),
    "epochs-float": (text("epochs: 60", "epochs: 2.5"), "train.epochs: expected int, got float 2.5"),
    "epochs-bool": (text("epochs: 60", "epochs: true"), "train.epochs: expected int, got bool True"),
    "levels-huge-int": (text("levels: 4", "levels: " + "9" * 40), "model.levels: integer out of range"),
    # --- out of range ---
    "lr-zero": (text("lr: 0.003", "lr: 0"), "train.lr: must be > 0 and <= 10, got 0.0"),
    "lr-100": (text("lr: 0.003", "lr: 100.0"), "train.lr: must be > 0 and <= 10, got 100.0"),
    "weight-decay-negative": (text("weight_decay: 0.02", "weight_decay: -1.0"), "train.weight_decay: must be in 0..10"),
    "epochs-zero": (text("epochs: 60", "epochs: 0"), "train.epochs: must be >= 1, got 0"),
    "epochs-1e9": (text("epochs: 60", "epochs: 1000000000"), "train.epochs: must be <= 100000"),
    "batch-zero": (text("batch_size: 64", "batch_size: 0"), "train.batch_size: must be >= 1, got 0"),
    "batch-1e7": (text("batch_size: 64", "batch_size: 10000000"), "train.batch_size: must be <= 1048576"),
    "warmup-ge-epochs": (text("warmup_epochs: 2", "warmup_epochs: 60"), "train.warmup_epochs: must be in 0..epochs-1"),
    "seed-negative": (text("seed: 0", "seed: -1"), "train.seed: must be in 0..2^32-1, got -1"),
    "threads-1e5": (text("threads: 2", "threads: 100000"), "train.threads: must be in 0..1024"),
    "out-empty": (text("out: runs/digits", "out: ''"), "train.out: must be a non-empty path"),
    "levels-zero": (text("levels: 4", "levels: 0"), "model.levels: must be >= 1, got 0"),
    "levels-1000": (text("levels: 4", "levels: 1000"), "model.levels: must be <= 64, got 1000"),
    "weight-bits-1": (text("weight_bits: 8", "weight_bits: 1"), "model.weight_bits: must be in 2..16, got 1"),
    "weight-bits-32": (text("weight_bits: 8", "weight_bits: 32"), "model.weight_bits: must be in 2..16, got 32"),
    "heads-3": (text("heads: 1 ", "heads: 3 "), "model.heads: 3 does not divide the model dimension 16"),
    "heads-above-dim": (text("heads: 1 ", "heads: 32 "), "model.heads: must be <= 16, got 32"),
    "mlp-ratio-1000": (text("mlp_ratio: 4", "mlp_ratio: 1000"), "model.mlp_ratio: must be <= 64"),
    "image-size-1e5": (text("image_size: 8", "image_size: 100000"), "model.image_size: must be <= 4096"),
    "num-classes-1": (text("num_classes: 10", "num_classes: 1"), "model.num_classes: must be >= 2, got 1"),
    "arch-0-16": (text("arch: csdformer-1-16", "arch: csdformer-0-16"), "model.arch: expected 'csdformer-L-D'"),
    "arch-5000-digits": (text("arch: csdformer-1-16", "arch: csdformer-1-" + "9" * 5000), "model.arch: string too long"),
    "arch-int": (text("arch: csdformer-1-16", "arch: 16"), "model.arch: expected str, got int 16"),
    "tokenizer-empty": (text("    - {channels: 8}         # encoding conv on the image\n    - {pool: true}", "    []"),
                        "model.tokenizer: expected a non-empty list of stages"),
    "tokenizer-pool-first": (text("- {channels: 8}", "- {channels: 8, pool: true}"), "model.tokenizer[0].pool: the first stage"),
    "tokenizer-channels-negative": (text("- {channels: 8}", "- {channels: -4}"), "model.tokenizer[0].channels: must be >= 1"),
    "data-unknown": (text("  name: digits\n  augment", "  name: mnist\n  augment"), "data.name: unknown dataset 'mnist'"),
    "data-root-int": (text("  augment: true", "  augment: true\n  root: 5"), "data.root: expected str, got int 5"),
    "delay-ge-levels": (text("delay: 3", "delay: 4"), "convert.delay: must be in 0..T-1 = 0..3, got 4"),
    # --- the model-size check before training ---
    "arch-64-8192": (text("arch: csdformer-1-16", "arch: csdformer-64-8192"),
                     "model.arch: csdformer-64-8192 has about 52154 M parameters, more than the limit 200 M"),
    "arch-4096-16": (text("arch: csdformer-1-16", "arch: csdformer-1024-512"), "model.arch: csdformer-1024-512 has about"),
    "activations": (text("batch_size: 64", "batch_size: 1048576").replace("arch: csdformer-1-16", "arch: csdformer-2-256"),
                    "train.batch_size: a batch of 1048576 keeps about"),
}

ALONE_CASES = ["arch-64-8192", "lr-nan", "empty-file"]


@pytest.fixture(scope="module")
def cases(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("hostile-configs")
    for cid, (body, _) in CASES.items():
        p = root / f"{cid}.yaml"
        if isinstance(body, bytes):
            p.write_bytes(body)
        else:
            p.write_text(body)
    return root


@pytest.fixture(scope="module")
def results(cases: Path) -> tuple[dict, dict, dict]:
    return run_watched({cid: ["train", str(cases / f"{cid}.yaml"), "--out", str(cases / f"run-{cid}"), "--quiet"]
                        for cid in CASES}, cases)


def test_case_count() -> None:
    assert len(CASES) >= 30


@pytest.mark.parametrize("cid", list(CASES))
def test_train_refuses(cid: str, results) -> None:
    res, before, after = results
    check_one_line_error(res[cid], CASES[cid][1])
    assert before == after  # no run folder, no checkpoint, nothing else


@pytest.mark.parametrize("cid", ALONE_CASES)
def test_alone_under_limits(cid: str, cases: Path) -> None:
    before = snapshot(cases)
    res = run_alone(["train", str(cases / f"{cid}.yaml"), "--out", str(cases / f"run-{cid}")], cases)
    check_one_line_error(res, CASES[cid][1])
    assert snapshot(cases) == before


def test_builtin_configs_pass_the_size_check() -> None:
    from csdformer.quantize import config as C

    for name in C.builtin_names():
        est = C.estimate(C.load(name))
        assert est["parameters"] <= C.MAX_PARAMETERS and est["activation_bytes"] <= C.MAX_ACTIVATION_BYTES


def test_estimate_counts_the_parameters_exactly() -> None:
    pytest.importorskip("torch")
    from csdformer.quantize import config as C
    from csdformer.quantize.model import CSDformer

    for name in C.builtin_names():
        cfg = C.load(name)
        assert C.estimate(cfg)["parameters"] == sum(p.numel() for p in CSDformer(cfg.model).parameters())


# --- files that are data, not code -------------------------------------------------------------------


class _Payload:
    """Unpickling this would create a file: proof that the pickle ran."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def test_checkpoint_with_payload_refused(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    from csdformer.cli import main
    from csdformer.quantize import config as C

    marker = tmp_path / "pwned"
    run = tmp_path / "run"
    run.mkdir()
    torch.save({"config": C.load("digits").to_dict(), "model": {}, "evil": _Payload(str(marker))}, run / "checkpoint.pt")
    before = snapshot(tmp_path)
    res = run_alone(["convert", str(run), str(tmp_path / "out")], tmp_path)
    check_one_line_error(res, "checkpoint.pt: not a readable checkpoint (the weights-only loader refused it: "
                         "Unsupported global: GLOBAL getattr")
    assert not marker.exists() and snapshot(tmp_path) == before
    # train --resume reads the same way
    cfg = tmp_path / "c.yaml"
    cfg.write_text(BASE)
    before = snapshot(tmp_path)
    assert main(["train", str(cfg), "--out", str(run), "--resume", "--quiet"]) == 2
    assert not marker.exists() and snapshot(tmp_path) == before


def test_cifar_pickle_with_payload_refused(tmp_path: Path) -> None:
    from csdformer import datasets as D

    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    marker = tmp_path / "pwned"
    for f in ["test_batch"]:
        with open(folder / f, "wb") as fh:
            pickle.dump({b"data": np.zeros((1, 3072), np.uint8), b"labels": [_Payload(str(marker))]}, fh, protocol=2)
    res = run_alone(["eval", "digits", "--data", "cifar10", "--root", str(tmp_path)], tmp_path)
    check_one_line_error(res, "test_batch: not a readable CIFAR batch (UnpicklingError: refused global __builtin__.getattr")
    assert not marker.exists()
    with pytest.raises(D.DatasetError, match="refused global"):
        D.load("cifar10", "test", tmp_path)
    assert not marker.exists()


def test_cifar_python2_format_still_reads(tmp_path: Path) -> None:
    """A batch as the real CIFAR-10 files hold it (Python 2 pickle: numpy.core names, byte strings)."""
    from csdformer import datasets as D

    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    data = pickle.dumps({b"batch_label": b"testing batch 1 of 1", b"labels": [3, 7],
                         b"data": np.arange(2 * 3072, dtype=np.uint8).reshape(2, 3072),
                         b"filenames": [b"a.png", b"b.png"]}, protocol=2)
    # Python 2 pickled numpy from numpy.core.multiarray and bytes as str (no _codecs)
    data = data.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
    assert b"numpy.core.multiarray\n_reconstruct" in data
    (folder / "test_batch").write_bytes(data)
    x, y = D.load("cifar10", "test", tmp_path)
    assert x.shape == (2, 3, 32, 32) and list(y) == [3, 7]
