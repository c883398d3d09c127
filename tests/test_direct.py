"""Direct SNN training (quantize/direct.py): its neurons and TDEC ops against the golden ones, its
float forward pass against the golden model running the converted artifact, its equality with
the QANN at D = T-1, and training / checkpoint / conversion of a direct run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from csdformer.datasets import load  # noqa: E402
from csdformer.quantize import config as C  # noqa: E402
from csdformer.quantize.convert import convert  # noqa: E402
from csdformer.quantize.direct import DirectSNN, dif, tdec_matmul, tdec_maxpool  # noqa: E402
from csdformer.quantize.evaluate import torch_accuracies  # noqa: E402
from csdformer.quantize.model import ConvBN, CSDformer, LinearBN  # noqa: E402
from csdformer.quantize.train import load_checkpoint, train  # noqa: E402
from csdformer.sim import golden, runner  # noqa: E402


@pytest.mark.parametrize("delay", [0, 1, 2, 3])
def test_dif_matches_golden(delay: int) -> None:
    rng = np.random.default_rng(delay)
    cur = rng.integers(-40, 60, size=(4, 500))
    for theta in (1, 7, 16, 33):
        got = dif(torch.tensor(cur, dtype=torch.float64), torch.tensor(float(theta), dtype=torch.float64), delay)
        assert np.array_equal(got.numpy().astype(np.uint8), golden.dif(cur, theta, delay)), theta


def test_tdec_ops_match_golden() -> None:
    rng = np.random.default_rng(1)
    a = rng.integers(0, 2, size=(4, 3, 5, 6))
    b = rng.integers(0, 2, size=(4, 3, 6, 7))
    got = tdec_matmul(torch.tensor(a, dtype=torch.float64), torch.tensor(b, dtype=torch.float64))
    assert np.array_equal(got.numpy().astype(np.int64), golden.tdec_matmul(a, b))
    s = rng.integers(0, 2, size=(4, 2, 3, 6, 6))
    got = tdec_maxpool(torch.tensor(s, dtype=torch.float64))
    assert np.array_equal(got.numpy().astype(np.uint8), golden.tdec_maxpool(s, 2))


def test_surrogate_is_the_sigmoid_derivative() -> None:
    """Backward of the spike is the gradient of ``sigmoid(α (v − θ)/θ)``, in ``v`` and in ``θ``."""
    from csdformer.quantize.direct import SURROGATE_ALPHA, _Spike

    v = torch.linspace(-3, 5, 41, dtype=torch.float64, requires_grad=True)
    theta = torch.tensor(1.7, dtype=torch.float64, requires_grad=True)
    g = torch.rand(41, dtype=torch.float64)
    spikes = _Spike.apply(v - theta, theta, SURROGATE_ALPHA)
    assert torch.equal(spikes, (v >= theta).double())
    gv, gt = torch.autograd.grad(spikes, (v, theta), g)
    smooth = torch.sigmoid(SURROGATE_ALPHA * (v - theta) / theta)
    rv, rt = torch.autograd.grad(smooth, (v, theta), g)
    assert torch.allclose(gv, rv) and torch.allclose(gt, rt)


def test_surrogate_gradient_reaches_every_parameter() -> None:
    cfg = C.load("digits")
    torch.manual_seed(0)
    model = DirectSNN(cfg.model, delay=1).train()
    x = torch.from_numpy(load("digits", "test")[0][:16]).float() / 16
    torch.nn.functional.cross_entropy(model(x), torch.arange(16) % 10).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert float(p.grad.abs().sum()) > 0, name


# --- the float SNN equals the golden model of the converted artifact ------------------------------

#: Thresholds (LSQ steps), powers of two so that every float product here is exact.
STEPS = {
    "stages.1.quant": 1024.0, "rpe_quant": 512.0,
    "attn.quant_in": 512.0, "attn.quant_q": 256.0, "attn.quant_k": 256.0, "attn.quant_v": 256.0,
    "attn.quant_attn": 2.0**13, "attn.quant_out": 2.0**23,
    "mlp.quant1": 512.0, "mlp.quant2": 256.0, "head_quant": 512.0,
}


def _tiny_cfg() -> C.Config:
    # The tokenizer of the digits config at 4575c58 (encoding conv, then conv + max-pool): the
    # STEPS above and the lossless weights below name its layers; the shipped config changes.
    raw = C.load(Path(__file__).parent / "fixtures" / "digits-4575c58.yaml").to_dict()
    raw["model"].update({"arch": "csdformer-1-16", "heads": 4, "mlp_ratio": 2})
    return C.from_dict(raw)


def _integer_rows(rng: np.random.Generator, shape: tuple[int, ...], wmax: int = 127) -> np.ndarray:
    """Random integer weights in ±wmax with a ±127 in every output row (conversion scale σ = 1)."""
    w = rng.integers(-wmax, wmax + 1, size=shape)
    flat = w.reshape(shape[0], -1)
    flat[np.arange(shape[0]), rng.integers(0, flat.shape[1], size=shape[0])] = rng.choice([-127, 127], size=shape[0])
    return flat.reshape(shape)


def _lossless_model(seed: int) -> tuple[C.Config, CSDformer]:
    """A model whose conversion loses nothing: every folded weight and bias an integer, every
    current scale 1, every threshold (and attention threshold with its shift) an exact integer."""
    cfg = _tiny_cfg()
    model = CSDformer(cfg.model).double().eval()
    rng = np.random.default_rng(seed)
    for name, q in model.named_modules():
        if hasattr(q, "levels") and hasattr(q, "step"):
            key = name.split(".", 2)[-1] if name.startswith("blocks.") else name
            q.step.data.fill_(STEPS[key])
            q.initialized.fill_(True)
    in_step = {m: None for m in model.modules() if isinstance(m, (ConvBN, LinearBN))}
    in_step[model.stages[0].body] = 1.0 / 16  # digits pixels 0..16
    in_step[model.stages[1].body] = float(model.stages[1].quant.step.detach())
    in_step[model.rpe] = float(model.rpe_quant.step.detach())
    for blk in model.blocks:
        at, ml = blk.attn, blk.mlp
        for m in (at.q, at.k, at.v):
            in_step[m] = float(at.quant_in.step.detach())
        in_step[at.proj] = float(at.quant_out.step.detach())
        in_step[ml.fc1], in_step[ml.fc2] = float(ml.quant1.step.detach()), float(ml.quant2.step.detach())
    with torch.no_grad():
        for m, step in in_step.items():
            lin = m.conv if isinstance(m, ConvBN) else m.linear
            lin.weight.copy_(torch.tensor(_integer_rows(rng, tuple(lin.weight.shape)) / step))
            bn = m.bn
            bn.eps = 0.0
            bn.running_mean.zero_()
            bn.running_var.fill_(1.0)
            bn.weight.fill_(1.0)
            bn.bias.copy_(torch.tensor(rng.integers(-64, 65, size=bn.bias.shape), dtype=torch.float64))
        n = model.grid**2
        hw = _integer_rows(rng, tuple(model.head.weight.shape))
        model.head.weight.copy_(torch.tensor(hw * n / float(model.head_quant.step.detach())))
        model.head.bias.copy_(torch.tensor(rng.integers(-300, 301, size=model.head.bias.shape), dtype=torch.float64))
    return cfg, model


@pytest.mark.parametrize("delay", [0, 1, 2, 3])
def test_forward_equals_golden_model_of_the_artifact(delay: int) -> None:
    """Same weights and thresholds in both: every spike frame of every layer and the logits agree."""
    cfg, qann = _lossless_model(seed=delay)
    art = convert(qann, cfg, delay=delay)
    # The conversion is lossless here: integer weights equal the folded float ones.
    assert all(int(np.max(layer.arrays["threshold"])) == int(np.min(layer.arrays["threshold"]))
               for layer in art.layers if layer.kind == "dif")
    snn = DirectSNN(cfg.model, delay=delay).double().eval()
    snn.load_state_dict(qann.state_dict())
    for m in snn.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.eps = 0.0
    images, _ = load("digits", "test")
    images = images[:48]
    record: dict = {}
    with torch.no_grad():
        logits = snn(torch.from_numpy(images).double() / 16, record=record)
    spike_layers = [layer.name for layer in art.layers if layer.kind in ("dif", "maxpool")]
    ref = runner.run(art, images, mode="snn", trace=tuple(spike_layers))
    assert ref.delay == delay
    assert set(record) == set(spike_layers)
    for name in spike_layers:
        got = record[name].numpy()
        want = ref.frames[name]
        assert got.shape == want.shape, (name, got.shape, want.shape)
        assert np.array_equal(got, want), (name, float(np.mean(got == want)))
        # The test means something only if the neurons neither stay silent nor saturate.
        rate = float(want.mean())
        assert 0.02 < rate < 0.98, (name, rate)
    assert np.array_equal(logits.numpy(), ref.logits.astype(np.float64))


def test_equals_qann_at_full_delay() -> None:
    """With D = T-1 each DIF neuron's count is the LSQ level: the forward pass equals the QANN's."""
    cfg = C.load("digits")
    torch.manual_seed(3)
    snn = DirectSNN(cfg.model)  # D = T-1
    x = torch.from_numpy(load("digits", "test")[0][:64]).double() / 16
    snn.double().train()
    with torch.no_grad():
        snn(x)  # statistical init of the thresholds, BN running statistics
    qann = CSDformer(cfg.model).double()
    qann.load_state_dict(snn.state_dict())
    snn.eval(), qann.eval()
    with torch.no_grad():
        a, b = snn(x), qann(x)
    assert torch.allclose(a, b, rtol=0, atol=1e-9)
    snn.spiking = False  # the inherited QANN forward pass on the same parameters
    with torch.no_grad():
        assert torch.equal(snn(x), b)


# --- training ---------------------------------------------------------------------------------------


def test_direct_train_checkpoint_convert(tmp_path: Path) -> None:
    raw = C.load("digits").to_dict()
    raw["train"].update({"epochs": 2, "warmup_epochs": 0, "direct": True, "out": str(tmp_path / "run")})
    raw["convert"]["delay"] = 1
    cfg = C.from_dict(raw)
    res = train(cfg, progress=False, max_steps=4)
    assert res["history"][0]["epoch"] == 1
    cfg2, model, ck = load_checkpoint(tmp_path / "run")
    assert isinstance(model, DirectSNN) and model.delay == 1 and cfg2.train.direct
    assert all(bool(q.initialized) for q in model.quantizers())
    # Same parameters and names as the QANN: the converter takes a direct checkpoint as it is.
    assert set(ck["model"]) == set(CSDformer(cfg.model).state_dict())
    art = convert(model, cfg2, delay=model.delay)
    assert art.delay == 1
    acc = torch_accuracies(model, cfg2)
    assert set(acc) == {"float", "qann", "snn_torch"}
    assert acc["snn_torch"] == pytest.approx(res["history"][-1]["test_acc"])


@pytest.mark.slow
def test_direct_training_reaches_95_percent_on_digits(tmp_path: Path) -> None:
    """The shipped digits config trained directly as an SNN (D = T-1), all its epochs, on CPU."""
    raw = C.load("digits").to_dict()
    raw["train"].update({"direct": True, "out": str(tmp_path / "run")})
    res = train(C.from_dict(raw), progress=False)
    assert res["test_acc"] >= 0.95, res["history"][-1]


@pytest.mark.slow
def test_direct_torchrun_ddp_two_processes(tmp_path: Path) -> None:
    """Direct SNN training under torchrun, as the QANN's: two CPU processes (gloo), one checkpoint."""
    from torchrun import torchrun_train

    _, out = torchrun_train(tmp_path, 29519, direct=True)
    _, model, ck = load_checkpoint(out)
    assert isinstance(model, DirectSNN) and ck["epoch"] == 1
    assert ck["scheduler"]["last_epoch"] == 11  # half of the 1,437 training images per rank, batch 64
