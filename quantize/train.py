"""QANN training: AdamW + cosine schedule, seeds, checkpoint/resume, progress bar, AMP on GPU,
and multi-GPU DistributedDataParallel when started by ``torchrun`` (same script).

The whole data set lives on the device as one uint8 tensor (these data sets are small), so an
epoch is a loop of index gathers with augmentation done on the device.
"""

from __future__ import annotations

import math
import os
import pickle
import random
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from .. import CsdformerError
from ..datasets import info as dataset_info
from ..datasets import load as load_dataset
from .config import Config, from_dict
from .model import CSDformer

CHECKPOINT = "checkpoint.pt"


@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def _init_distributed() -> Dist:
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return Dist()
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    torch.distributed.init_process_group(backend)
    d = Dist(torch.distributed.get_rank(), torch.distributed.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))
    if torch.cuda.is_available():
        torch.cuda.set_device(d.local_rank)
    return d


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def to_input(images: torch.Tensor, max_value: int) -> torch.Tensor:
    """uint8 pixels → the float input the model sees (``pixel * (1 / max_value)``)."""
    return images.float() * (1.0 / max_value)


def augment(x: torch.Tensor, gen: torch.Generator, pad: int, flip: bool) -> torch.Tensor:
    """Random crop with zero padding (per sample) and optional horizontal flip, on the device."""
    b, c, h, w = x.shape
    xp = F.pad(x, (pad, pad, pad, pad))
    dy = torch.randint(0, 2 * pad + 1, (b,), generator=gen, device=gen.device).to(x.device)
    dx = torch.randint(0, 2 * pad + 1, (b,), generator=gen, device=gen.device).to(x.device)
    rows = (dy[:, None] + torch.arange(h, device=x.device)[None, :])  # (b, h)
    cols = (dx[:, None] + torch.arange(w, device=x.device)[None, :])  # (b, w)
    if flip:
        mirror = torch.rand(b, generator=gen, device=gen.device).to(x.device) < 0.5
        cols = torch.where(mirror[:, None], cols.flip(1), cols)
    idx_b = torch.arange(b, device=x.device)[:, None, None]
    out = xp.permute(0, 2, 3, 1)[idx_b, rows[:, :, None], cols[:, None, :]]  # (b, h, w, c)
    return out.permute(0, 3, 1, 2).contiguous()


def lr_lambda(step: int, total: int, warmup: int) -> float:
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


@torch.no_grad()
def accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, max_value: int, batch: int = 1000,
             amp: bool = False) -> float:
    """Top-1 accuracy of the model in eval mode (quantizers as they are set)."""
    was = model.training
    model.eval()
    correct = 0
    for s in range(0, len(images), batch):
        x = to_input(images[s : s + batch], max_value)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp):
            out = model(x)
        correct += int((out.argmax(1) == labels[s : s + batch]).sum())
    model.train(was)
    return correct / max(1, len(images))


def build_model(cfg: Config) -> CSDformer:
    """The QANN, or with ``train.direct`` the same architecture as a multi-step SNN (``DirectSNN``)."""
    if cfg.train.direct:
        from .direct import DirectSNN

        return DirectSNN(cfg.model, delay=cfg.convert.delay)
    return CSDformer(cfg.model)


def read_checkpoint(path: str | Path, map_location: Any = "cpu") -> dict[str, Any]:
    """Read a checkpoint file as data: ``torch.load(weights_only=True)`` admits tensors and plain
    containers only (a pickle that would build any other object, or run code, is refused)."""
    p = Path(path)
    try:
        ck = torch.load(p, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise CsdformerError(f"{path}: no checkpoint found") from None
    except IsADirectoryError:
        raise CsdformerError(f"{path}: no checkpoint found (a folder)") from None
    except pickle.UnpicklingError as e:
        text = str(e).partition("WeightsUnpickler error:")[2] or str(e)
        why = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
        why = why.partition(" was not an allowed global")[0][:160]
        raise CsdformerError(f"{path}: not a readable checkpoint (the weights-only loader refused it: {why}; "
                             "checkpoints are read as tensors and plain data only)") from None
    except Exception as e:  # noqa: BLE001 - torch raises many kinds for a corrupt file
        first = (str(e).strip().splitlines() or [""])[0][:200]
        raise CsdformerError(f"{path}: not a readable checkpoint ({type(e).__name__}: {first})") from None
    if not isinstance(ck, dict) or not isinstance(ck.get("config"), dict) or not isinstance(ck.get("model"), dict):
        raise CsdformerError(f"{path}: not a csdformer checkpoint (missing 'config' or 'model')")
    return ck


def _load_state(path: Any, what: str, target: Any, state: Any) -> None:
    try:
        target.load_state_dict(state)
    except Exception as e:  # noqa: BLE001 - a mismatched or malformed state dict
        first = (str(e).strip().splitlines() or [""])[0][:200]
        raise CsdformerError(f"{path}: {what} does not fit ({type(e).__name__}: {first})") from None


def load_checkpoint(path: str | Path, map_location: str = "cpu") -> tuple[Config, CSDformer, dict[str, Any]]:
    """Rebuild the model of a checkpoint written by :func:`train` (read as data: :func:`read_checkpoint`)."""
    p = Path(path)
    if p.is_dir():
        p = p / CHECKPOINT
    ck = read_checkpoint(p, map_location)
    cfg = from_dict(ck["config"])
    model = build_model(cfg)
    _load_state(path, "model", model, ck["model"])
    return cfg, model.eval(), ck


def batch(xtr, idx, max_value: int, augmentation=None):
    """Training images ``idx`` as the model's input, augmented (``(generator, pad, flip)``) or not."""
    x = to_input(xtr[idx], max_value)
    return augment(x, *augmentation) if augmentation else x


def train_step(model, opt, sched, x, y, *, amp: bool):
    """One optimizer step on a batch, bf16 autocast on GPU (``amp``): ``(logits, detached loss)``."""
    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp):
        logits = model(x)
        loss = F.cross_entropy(logits.float(), y)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    sched.step()
    return logits, loss.detach()


def train(cfg: Config, *, out: str | Path | None = None, resume: bool = False, progress: bool = True,
          device: str | None = None, max_steps: int | None = None,
          max_seconds: float | None = None) -> dict[str, Any]:
    """Train the QANN of ``cfg``; write ``out/checkpoint.pt`` every epoch; return final metrics.

    ``max_steps`` stops early (for tests); ``resume`` continues from ``out/checkpoint.pt``.
    ``max_seconds`` stops after the first epoch that ends past that many seconds of this call
    (its checkpoint written), so that a time-limited machine can train in chunks with ``resume``;
    the result's ``epochs_done`` and ``finished`` say where it stopped.
    """
    dist = _init_distributed()
    out = Path(out or cfg.train.out)
    tc = cfg.train
    if tc.threads:
        torch.set_num_threads(tc.threads)
    dev = torch.device(device or (f"cuda:{dist.local_rank}" if torch.cuda.is_available() else "cpu"))
    amp = tc.amp and dev.type == "cuda"
    seed_everything(tc.seed + dist.rank)
    di = dataset_info(cfg.data.name)
    if (di.channels, di.height, di.num_classes) != (cfg.model.in_channels, cfg.model.image_size, cfg.model.num_classes):
        raise CsdformerError(
            f"model: in_channels/image_size/num_classes {cfg.model.in_channels}/{cfg.model.image_size}/"
            f"{cfg.model.num_classes} do not match dataset {cfg.data.name} "
            f"({di.channels}/{di.height}/{di.num_classes})")
    xtr, ytr = load_dataset(cfg.data.name, "train", cfg.data.root)
    xte, yte = load_dataset(cfg.data.name, "test", cfg.data.root)
    xtr, ytr = torch.tensor(xtr, device=dev), torch.tensor(ytr, device=dev)
    xte, yte = torch.tensor(xte, device=dev), torch.tensor(yte, device=dev)

    model = build_model(cfg).to(dev)
    decay = [p for n, p in model.named_parameters() if p.ndim > 1]
    no_decay = [p for n, p in model.named_parameters() if p.ndim <= 1]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": tc.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=tc.lr)
    per_rank = len(xtr) // dist.world
    steps_per_epoch = max(1, per_rank // tc.batch_size)
    total = steps_per_epoch * tc.epochs
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_lambda(s, total, steps_per_epoch * tc.warmup_epochs))
    start_epoch, history = 0, []
    ck_path = out / CHECKPOINT
    if resume:
        if not ck_path.exists():
            raise CsdformerError(f"{ck_path}: nothing to resume from")
        ck = read_checkpoint(ck_path, dev)
        if from_dict(ck["config"]).model != cfg.model:
            raise CsdformerError(f"{ck_path}: config: the checkpoint's model differs from the config's")
        _load_state(ck_path, "model", model, ck["model"])
        _load_state(ck_path, "optimizer", opt, ck.get("optimizer"))
        _load_state(ck_path, "scheduler", sched, ck.get("scheduler"))
        start_epoch, history = ck.get("epoch"), ck.get("history", [])
        if not isinstance(start_epoch, int) or isinstance(start_epoch, bool) or start_epoch < 0:
            raise CsdformerError(f"{ck_path}: epoch: must be an integer >= 0, got {start_epoch!r}")
        if not isinstance(history, list):
            raise CsdformerError(f"{ck_path}: history: expected a list")
    ddp = model
    if dist.world > 1:
        # A (16, 1, 3, 3) conv weight's gradient may carry a different (meaningless) stride on its
        # size-1 axis than DDP's bucket view; DDP warns though the copy is correct.
        warnings.filterwarnings("ignore", message="Grad strides do not match bucket view strides")
        ddp = nn.parallel.DistributedDataParallel(model, device_ids=[dist.local_rank] if dev.type == "cuda" else None,
                                                  gradient_as_bucket_view=True)
    gen = torch.Generator(device=dev)
    pad = max(1, cfg.model.image_size // 8)
    flip = cfg.data.name in ("cifar10", "cifar100", "fashion_mnist")
    steps_done = 0
    t0 = time.time()
    for epoch in range(start_epoch, tc.epochs):
        gen.manual_seed(tc.seed * 1000 + epoch)  # same permutation on every rank
        perm = torch.randperm(len(xtr), generator=gen, device=dev)[dist.rank * per_rank : (dist.rank + 1) * per_rank]
        ddp.train()
        bar = None
        if progress and dist.main:  # a bar on a terminal, plain lines in a log (csdformer.progress)
            from ..progress import Progress

            bar = Progress(steps_per_epoch, f"epoch {epoch + 1}/{tc.epochs}", unit="steps")
        loss_sum = correct = seen = 0
        for step in range(steps_per_epoch):
            idx = perm[step * tc.batch_size : (step + 1) * tc.batch_size]
            y = ytr[idx]
            logits, loss = train_step(ddp, opt, sched, batch(xtr, idx, di.max_value, cfg.data.augment and (gen, pad, flip)),
                                      y, amp=amp)
            loss_sum += float(loss) * len(y)
            correct += int((logits.argmax(1) == y).sum())
            seen += len(y)
            if bar is not None:
                bar.update(1, postfix=f"loss {loss_sum / seen:.3f}, acc {correct / seen:.3f}")
            steps_done += 1
            if max_steps is not None and steps_done >= max_steps:
                break
        if bar is not None:
            bar.close()
        test_acc = accuracy(model, xte, yte, di.max_value, amp=amp)
        rec = {"epoch": epoch + 1, "loss": loss_sum / max(1, seen), "train_acc": correct / max(1, seen),
               "test_acc": test_acc, "elapsed_s": time.time() - t0}
        history.append(rec)
        if dist.main:
            if progress:
                print(f"epoch {epoch + 1}/{tc.epochs}  loss {rec['loss']:.4f}  train {100 * rec['train_acc']:.2f} %  "
                      f"test {100 * test_acc:.2f} %  ({rec['elapsed_s']:.0f} s)", flush=True)
            _save(ck_path, {"config": cfg.to_dict(), "model": model.state_dict(), "optimizer": opt.state_dict(),
                            "scheduler": sched.state_dict(), "epoch": epoch + 1, "history": history})
        if max_steps is not None and steps_done >= max_steps:
            break
        if max_seconds is not None and time.time() - t0 >= max_seconds:
            break
    if dist.world > 1:
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()
    done = history[-1]["epoch"] if history else 0
    return {"checkpoint": str(ck_path), "history": history, "test_acc": history[-1]["test_acc"] if history else None,
            "train_seconds": time.time() - t0, "epochs_done": done, "finished": done >= tc.epochs}


def _save(path: Path, obj: dict) -> None:
    """Write a checkpoint atomically (a crash mid-write keeps the previous one)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)
