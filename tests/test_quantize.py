"""The PyTorch side: config validation, LSQ, BN folding, training/resume, and conversion fidelity."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from csdformer.cli import main  # noqa: E402
from csdformer.datasets import load  # noqa: E402
from csdformer.quantize import config as C  # noqa: E402
from csdformer.quantize.convert import fold, convert  # noqa: E402
from csdformer.quantize.lsq import LSQ  # noqa: E402
from csdformer.quantize.model import ConvBN, CSDformer, LinearBN  # noqa: E402
from csdformer.quantize.train import load_checkpoint, train  # noqa: E402
from csdformer.sim import runner  # noqa: E402


# --- config ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "patch, message",
    [
        ({"model": {"arch": "csdformer-x"}}, "model.arch: expected 'csdformer-L-D'"),
        ({"model": {"heads": 3}}, "model.heads: 3 does not divide the model dimension 32"),  # csdformer-1-32
        ({"model": {"levels": "4"}}, "model.levels: expected int, got str"),
        ({"model": {"levels": 0}}, "model.levels: must be >= 1"),
        ({"model": {"colour": 1}}, "model.colour: unknown key"),
        ({"model": {"tokenizer": [{"channels": 16, "pool": True}, {}]}}, "model.tokenizer[0].pool: the first stage"),
        ({"model": {"tokenizer": [{}, {}]}}, "model.tokenizer[0].channels: required"),
        ({"data": {"name": "imagenet"}}, "data.name: unknown dataset 'imagenet'"),
        ({"train": {"lr": -1}}, "train.lr: must be > 0"),
        ({"train": "fast"}, "train: expected a mapping"),
        ({"convert": {"delay": 4}}, "convert.delay: must be in 0..T-1 = 0..3, got 4"),
    ],
)
def test_config_errors(patch: dict, message: str) -> None:
    raw = C.load("digits").to_dict()
    for k, v in patch.items():
        if isinstance(v, dict) and isinstance(raw[k], dict):
            raw[k].update(v)
        else:
            raw[k] = v
    with pytest.raises(C.ConfigError) as e:
        C.from_dict(raw)
    assert message in str(e.value)


def test_config_cli_errors(tmp_path: Path, capsys) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: [unclosed\n")
    assert main(["train", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("csdformer: error: ") and "not valid YAML" in err and err.count("\n") == 1
    bad.write_text("model:\n  heads: two\n")
    assert main(["train", str(bad)]) == 2
    assert "model.heads: expected int, got str 'two'" in capsys.readouterr().err
    assert main(["train", str(tmp_path / "missing.yaml")]) == 2
    assert "cannot read config" in capsys.readouterr().err


def test_builtin_configs_load() -> None:
    assert {"digits", "fashion_mnist"} <= set(C.builtin_names())
    for name in C.builtin_names():
        cfg = C.load(name)
        assert cfg.name == name


# --- LSQ and folding ---------------------------------------------------------------------------------


def test_lsq_levels_and_gradients() -> None:
    q = LSQ(4)
    x = torch.linspace(-2, 6, 101, requires_grad=True)
    q.train()
    y = q(x.unsqueeze(0))
    s = float(q.step.detach())
    expect = s * torch.clamp(torch.floor(x.detach() / s + 0.5), 0, 4)
    torch.testing.assert_close(y.squeeze(0), expect)
    torch.testing.assert_close(q.level(x.detach()), expect / s)
    y.sum().backward()
    assert q.step.grad is not None and float(q.step.grad) != 0
    inside = (x.detach() > 0) & (x.detach() < 4 * s)
    assert torch.all(x.grad[inside] == 1) and torch.all(x.grad[~inside] == 0)  # straight-through


@pytest.mark.parametrize("mod", [ConvBN(3, 5), LinearBN(6, 4)])
def test_fold_matches_eval_bn(mod) -> None:
    torch.manual_seed(0)
    for p in mod.bn.parameters():
        torch.nn.init.uniform_(p, 0.5, 1.5)
    mod.bn.running_mean.uniform_(-1, 1)
    mod.bn.running_var.uniform_(0.5, 2)
    mod.eval()
    step = 0.37
    if isinstance(mod, ConvBN):
        n = torch.randint(0, 5, (2, 3, 6, 6)).double()
        f = fold(mod, step)
        ref = torch.nn.functional.conv2d(n, torch.from_numpy(f.weight), torch.from_numpy(f.bias), padding=1)
    else:
        n = torch.randint(0, 5, (2, 7, 6)).double()
        f = fold(mod, step)
        ref = n @ torch.from_numpy(f.weight).T + torch.from_numpy(f.bias)
    got = mod.double()(n * step)
    torch.testing.assert_close(got, ref)


# --- training, resume, conversion ---------------------------------------------------------------------


def _tiny(tmp_path: Path, **train) -> C.Config:
    raw = C.load("digits").to_dict()
    raw["train"].update({"epochs": 2, "batch_size": 64, "out": str(tmp_path / "run"), "warmup_epochs": 0, **train})
    return C.from_dict(raw)


def test_train_checkpoint_resume(tmp_path: Path) -> None:
    cfg = _tiny(tmp_path)
    first = train(cfg, progress=False, max_steps=3)
    assert [h["epoch"] for h in first["history"]] == [1]
    ck = torch.load(first["checkpoint"], weights_only=False)
    assert ck["epoch"] == 1 and ck["scheduler"]["last_epoch"] == 3
    resumed = train(cfg, progress=False, resume=True)
    assert [h["epoch"] for h in resumed["history"]] == [1, 2]
    _, model, ck2 = load_checkpoint(tmp_path / "run")
    assert ck2["epoch"] == 2
    assert all(bool(q.initialized) for q in model.quantizers())


def test_resume_without_checkpoint(tmp_path: Path) -> None:
    with pytest.raises(Exception, match="nothing to resume from"):
        train(_tiny(tmp_path), progress=False, resume=True)


def _levels_by_name(model: CSDformer, x: torch.Tensor) -> dict[str, np.ndarray]:
    """Each quantizer's integer levels, named and shaped as the artifact's DIF layers."""
    out: dict[str, np.ndarray] = {}
    names = {m: n for n, m in model.named_modules()}
    hooks = []

    def hook(mod, inp, _):
        lv = mod.level(inp[0]).numpy()
        name = names[mod]
        if name.endswith("attn.quant_out"):  # (B, heads, N, d) → tokens (B, N, C)
            lv = np.swapaxes(lv, 1, 2).reshape(lv.shape[0], lv.shape[2], -1)
        if name == "rpe_quant":  # the grid (B, C, H, W) → tokens (B, N, C)
            lv = np.swapaxes(lv.reshape(lv.shape[0], lv.shape[1], -1), 1, 2)
        out[name] = lv

    for q in model.quantizers():
        hooks.append(q.register_forward_hook(hook))
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    return out


def test_conversion_fidelity(tmp_path: Path) -> None:
    """With fine weight quantization, the integer QANN reproduces the torch QANN's levels.

    Thresholds are rounded, so a few elements at rounding boundaries may differ; a wrong scale,
    fold or threshold anywhere makes whole layers disagree.
    """
    cfg = _tiny(tmp_path)
    train(cfg, progress=False, max_steps=40)
    cfg16 = copy.deepcopy(cfg)
    cfg16.model.weight_bits = 16
    _, model, _ = load_checkpoint(tmp_path / "run")
    art = convert(model, cfg16)
    images, _ = load("digits", "test")
    images = images[:100]
    ref = _levels_by_name(model, torch.from_numpy(images).float() / 16)
    got = runner.run(art, images, mode="qann").counts
    difs = [layer.name for layer in art.layers if layer.kind == "dif"]
    assert set(difs) == set(ref)
    agree = {name: float(np.mean(got[name] == ref[name])) for name in difs}
    # Rounding differences cascade through the layers (measured on the trained digits model:
    # >= 0.989 everywhere); a wrong scale, fold or threshold would leave a layer near chance.
    assert min(agree[n] for n in difs[:3]) >= 0.99, agree
    assert min(agree.values()) >= 0.85, agree
    with torch.no_grad():
        torch_pred = model(torch.from_numpy(images).float() / 16).argmax(1).numpy()
    assert np.mean(runner.run(art, images, mode="qann").predictions == torch_pred) >= 0.9


def test_convert_cli_writes_atomically(tmp_path: Path, capsys) -> None:
    cfg = _tiny(tmp_path)
    train(cfg, progress=False, max_steps=2)
    out = tmp_path / "art"
    assert main(["convert", str(tmp_path / "run"), str(out), "--no-eval"]) == 0
    assert (out / "manifest.json").exists() and (out / "arrays.npz").exists()
    # Refuses to overwrite; a corrupt checkpoint fails with one line and writes nothing.
    assert main(["convert", str(tmp_path / "run"), str(out), "--no-eval"]) == 2
    assert "already exists" in capsys.readouterr().err
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    assert main(["convert", str(bad), str(tmp_path / "nothing")]) == 2
    assert "not a readable checkpoint" in capsys.readouterr().err
    assert not (tmp_path / "nothing").exists()


@pytest.mark.slow
def test_torchrun_ddp_two_processes(tmp_path: Path) -> None:
    """The same training script under torchrun: two CPU processes (gloo), one checkpoint."""
    from torchrun import torchrun_train

    p, out = torchrun_train(tmp_path, 29517)
    assert p.stdout.count("trained digits") == 2  # both ranks finish
    _, _, ck = load_checkpoint(out)
    assert ck["epoch"] == 1
    # Each rank took half of the 1,437 training images: 11 steps of 64 per epoch.
    assert ck["scheduler"]["last_epoch"] == 11
