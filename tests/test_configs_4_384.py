"""The paper's CSDformer-4-384 configs: CIFAR-10/100 (load, build, 9.32 M parameters, one training
step on a CIFAR-format fixture) and Fashion-MNIST (the shipped model's artifact and metrics)."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from csdformer.artifact import load as load_artifact
from csdformer.quantize import config as C
from csdformer.quantize.train import build_model, load_checkpoint, train
from csdformer.sim.runner import run

PAPER_PARAMS = 9.32e6  # Table 2: CSDformer-4-384 (and Spikformer-4-384) on CIFAR
FOLDERS = {"cifar10": ("cifar-10-batches-py", b"labels", [f"data_batch_{i}" for i in range(1, 6)], "test_batch", 10),
           "cifar100": ("cifar-100-python", b"fine_labels", ["train"], "test", 100)}


def _cifar_fixture(parent: Path, name: str, per_file: int) -> Path:
    """Tiny batches in the real python-pickle format (random pixels and labels)."""
    folder, key, train_files, test_file, classes = FOLDERS[name]
    (parent / folder).mkdir(parents=True)
    rng = np.random.default_rng(0)
    for f in [*train_files, test_file]:
        batch = {b"data": rng.integers(0, 256, size=(per_file, 3072), dtype=np.uint8),
                 key: [int(v) for v in rng.integers(0, classes, size=per_file)]}
        with open(parent / folder / f, "wb") as fh:
            pickle.dump(batch, fh, protocol=2)
    return parent / folder


@pytest.mark.parametrize("name,classes", [("cifar10-4-384", 10), ("cifar100-4-384", 100)])
def test_cifar_config_is_the_papers(name: str, classes: int) -> None:
    cfg = C.load(name)
    m, t = cfg.model, cfg.train
    assert (cfg.name, m.depth, m.dim, m.heads, m.levels, m.num_classes) == (name, 4, 384, 12, 4, classes)
    assert (m.in_channels, m.image_size, m.weight_bits) == (3, 32, 8)
    # Max-pools only in the last two tokenizer convs: 32x32 -> 8x8 = 64 tokens.
    assert [st.pool for st in m.tokenizer] == [False, False, True, True]
    assert [st.channels for st in m.tokenizer] == [48, 96, 192, None]
    assert (t.batch_size, t.lr, t.epochs) == (64, 5e-4, 310)  # AdamW and the cosine schedule: train.py
    model = build_model(cfg)
    assert model.grid**2 == 64
    n = sum(p.numel() for p in model.parameters())
    assert abs(n - PAPER_PARAMS) / PAPER_PARAMS < 0.02, n
    assert n == {10: 9_310_943, 100: 9_345_593}[classes]  # the head grows by 90 x 385


@pytest.mark.parametrize("name", ["cifar10-4-384", "cifar100-4-384"])
def test_cifar_config_trains_one_step(tmp_path: Path, name: str) -> None:
    cfg = C.load(name)
    cfg.data.root = str(_cifar_fixture(tmp_path / "data", cfg.data.name, per_file=2))
    cfg.train.batch_size = 2
    cfg.train.out = str(tmp_path / "run")
    before = {k: v.clone() for k, v in build_model(cfg).state_dict().items()}  # same seed as train()
    res = train(cfg, progress=False, device="cpu", max_steps=1)
    assert res["epochs_done"] == 1 and not res["finished"]
    h = res["history"][0]
    assert np.isfinite(h["loss"]) and 0.0 <= h["test_acc"] <= 1.0
    _, model, ck = load_checkpoint(tmp_path / "run")
    assert ck["scheduler"]["last_epoch"] == 1
    after = model.state_dict()
    assert not torch.equal(before["blocks.0.attn.q.linear.weight"], after["blocks.0.attn.q.linear.weight"])


def test_max_seconds_stops_and_resume_finishes(tmp_path: Path) -> None:
    # How fashion_mnist-4-384 is trained in calls of under 10 minutes (bench/train_on_budget.py);
    # the small digits config keeps this fast.
    cfg = C.load("digits")
    cfg.train.epochs, cfg.train.warmup_epochs, cfg.train.threads = 2, 0, 1
    cfg.train.out = str(tmp_path / "run")
    first = train(cfg, progress=False, device="cpu", max_seconds=0)
    assert (first["epochs_done"], first["finished"]) == (1, False)
    second = train(cfg, progress=False, device="cpu", resume=True, max_seconds=0)
    assert (second["epochs_done"], second["finished"]) == (2, True)
    assert [h["epoch"] for h in second["history"]] == [1, 2]


def test_fashion_mnist_4_384_config_and_shipped_model() -> None:
    cfg = C.load("fashion_mnist-4-384")
    m = cfg.model
    assert (m.depth, m.dim, m.heads, m.levels, m.weight_bits) == (4, 384, 12, 4, 8)
    assert [(st.channels, st.pool) for st in m.tokenizer] == [(48, False), (96, False), (192, True), (None, True)]
    assert build_model(cfg).grid ** 2 == 49
    root = Path(__file__).resolve().parents[1] / "csdformer" / "models" / "fashion_mnist-4-384"
    art = load_artifact(root)
    assert (art.name, art.T, art.delay, art.model["tokens"]) == ("fashion_mnist-4-384", 4, 3, 49)
    mt = art.metrics
    # Measured on all 10,000 test images (docs/results.md): the bar is the 2-128 model's 94.28 %.
    assert mt["n"] == 10_000 and mt["snn_equals_int_qann"] == 1.0 and mt["int_qann"] == mt["snn"]["3"]
    assert mt["qann"] > 0.9428 and mt["int_qann"] > 0.9428
    # Two images through the golden model: SNN at D = T-1 gives the integer QANN's logits.
    x = np.random.default_rng(0).integers(0, 256, size=(2, 1, 28, 28)).astype(np.uint8)
    q, s = run(art, x, mode="qann"), run(art, x, mode="snn", delay=3)
    assert np.array_equal(q.logits, s.logits)
