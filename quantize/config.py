"""Run configuration: model, data, training, conversion. Loaded from YAML and validated.

A config names its architecture as in the paper (``csdformer-L-D``: L blocks, D channels) and
states the rest explicitly; unknown or ill-typed keys are errors naming the key.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, fields
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from .. import CsdformerError


class ConfigError(CsdformerError):
    """A malformed configuration; the message names the key."""


@dataclass
class StageConfig:
    channels: int | None = None  # None: the model dimension (only the last stage may omit it)
    pool: bool = False  # 2x2 max-pool on this stage's input spikes (not allowed on stage 0)


@dataclass
class ModelConfig:
    arch: str = "csdformer-1-32"
    heads: int = 2
    mlp_ratio: int = 4
    levels: int = 4  # Lq, and the time window T of the converted SNN
    in_channels: int = 1
    image_size: int = 8
    num_classes: int = 10
    tokenizer: list[StageConfig] = field(default_factory=lambda: [StageConfig(16), StageConfig(None)])
    weight_bits: int = 8

    @property
    def depth(self) -> int:
        return parse_arch(self.arch)[0]

    @property
    def dim(self) -> int:
        return parse_arch(self.arch)[1]


@dataclass
class DataConfig:
    name: str = "digits"
    root: str | None = None
    augment: bool = False


@dataclass
class TrainConfig:
    epochs: int = 40
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 0.02
    warmup_epochs: int = 1
    seed: int = 0
    amp: bool = True  # on CUDA only
    threads: int = 0  # torch CPU threads; 0 = leave the default
    direct: bool = False  # train the same architecture directly as an SNN (quantize/direct.py), D = convert.delay
    out: str = "runs/digits"


@dataclass
class ConvertConfig:
    delay: int | None = None  # default D stored in the artifact; None = T - 1


@dataclass
class Config:
    name: str = "digits"
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    convert: ConvertConfig = field(default_factory=ConvertConfig)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


_ARCH = re.compile(r"^csdformer-(\d+)-(\d+)$")


def parse_arch(arch: str) -> tuple[int, int]:
    m = _ARCH.match(str(arch))
    if not m or int(m.group(1)) < 1 or int(m.group(2)) < 1:
        raise ConfigError(f"model.arch: expected 'csdformer-L-D' (e.g. csdformer-4-384), got {arch!r}")
    return int(m.group(1)), int(m.group(2))


def _typecheck(where: str, value: Any, annot: str) -> Any:
    base = annot.replace(" | None", "")
    if value is None and "None" in annot:
        return None
    ok = {
        "int": isinstance(value, int) and not isinstance(value, bool),
        "float": isinstance(value, (int, float)) and not isinstance(value, bool),
        "bool": isinstance(value, bool),
        "str": isinstance(value, str),
    }.get(base)
    if ok is None:
        raise AssertionError(annot)
    if not ok:
        raise ConfigError(f"{where}: expected {base}, got {type(value).__name__} {value!r}")
    return float(value) if base == "float" else value


def _build(cls: type, raw: Any, where: str) -> Any:
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{where or 'config'}: expected a mapping, got {type(raw).__name__}")
    known = {f.name: f for f in fields(cls)}
    for key in raw:
        if key not in known:
            raise ConfigError(f"{where + '.' if where else ''}{key}: unknown key (known: {', '.join(known)})")
    kwargs = {}
    for name, f in known.items():
        if name not in raw:
            continue
        sub = f"{where + '.' if where else ''}{name}"
        annot = f.type if isinstance(f.type, str) else f.type.__name__
        value = raw[name]
        if annot in ("ModelConfig", "DataConfig", "TrainConfig", "ConvertConfig"):
            kwargs[name] = _build(globals()[annot], value, sub)
        elif annot == "list[StageConfig]":
            if not isinstance(value, list) or not value:
                raise ConfigError(f"{sub}: expected a non-empty list of stages")
            kwargs[name] = [_build(StageConfig, v, f"{sub}[{i}]") for i, v in enumerate(value)]
        else:
            kwargs[name] = _typecheck(sub, value, annot)
    return cls(**kwargs)


def _positive(where: str, v: int | float, minimum: int | float = 1) -> None:
    if v < minimum:
        raise ConfigError(f"{where}: must be >= {minimum}, got {v!r}")


def validate(cfg: Config) -> Config:
    m = cfg.model
    depth, dim = parse_arch(m.arch)
    _positive("model.heads", m.heads)
    if dim % m.heads:
        raise ConfigError(f"model.heads: {m.heads} does not divide the model dimension {dim}")
    _positive("model.mlp_ratio", m.mlp_ratio)
    _positive("model.levels", m.levels)
    _positive("model.in_channels", m.in_channels)
    _positive("model.image_size", m.image_size)
    _positive("model.num_classes", m.num_classes, 2)
    if not 2 <= m.weight_bits <= 16:
        raise ConfigError(f"model.weight_bits: must be in 2..16, got {m.weight_bits}")
    size = m.image_size
    for i, st in enumerate(m.tokenizer):
        last = i == len(m.tokenizer) - 1
        if st.channels is None and not last:
            raise ConfigError(f"model.tokenizer[{i}].channels: required (only the last stage defaults to the model dimension)")
        if last and st.channels not in (None, dim):
            raise ConfigError(f"model.tokenizer[{i}].channels: the last stage must have the model dimension {dim}, got {st.channels}")
        if st.channels is not None:
            _positive(f"model.tokenizer[{i}].channels", st.channels)
        if st.pool:
            if i == 0:
                raise ConfigError(f"model.tokenizer[{i}].pool: the first stage reads the image and cannot pool")
            if size < 2:
                raise ConfigError(f"model.tokenizer[{i}].pool: feature map {size}x{size} is too small to pool")
            size //= 2
    from ..datasets import NAMES

    if cfg.data.name not in NAMES:
        raise ConfigError(f"data.name: unknown dataset {cfg.data.name!r} (known: {', '.join(NAMES)})")
    t = cfg.train
    _positive("train.epochs", t.epochs)
    _positive("train.batch_size", t.batch_size)
    if not t.lr > 0:
        raise ConfigError(f"train.lr: must be > 0, got {t.lr}")
    if t.weight_decay < 0:
        raise ConfigError(f"train.weight_decay: must be >= 0, got {t.weight_decay}")
    if t.warmup_epochs < 0 or t.warmup_epochs >= t.epochs:
        raise ConfigError(f"train.warmup_epochs: must be in 0..epochs-1, got {t.warmup_epochs}")
    if t.threads < 0:
        raise ConfigError(f"train.threads: must be >= 0, got {t.threads}")
    d = cfg.convert.delay
    if d is not None and not 0 <= d <= m.levels - 1:
        raise ConfigError(f"convert.delay: must be in 0..T-1 = 0..{m.levels - 1}, got {d}")
    return cfg


def from_dict(raw: Any) -> Config:
    return validate(_build(Config, raw, ""))


def load(path: str | Path) -> Config:
    """Load a YAML config file, or a built-in config by name (``digits``, ``fashion_mnist``)."""
    p = Path(path)
    if not p.exists() and str(path) in builtin_names():
        text = resources.files("csdformer").joinpath("configs", f"{path}.yaml").read_text()
        where = f"built-in config {path!r}"
    else:
        try:
            text = p.read_text()
        except OSError as e:
            raise ConfigError(f"{path}: cannot read config ({e.strerror})") from None
        where = str(path)
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"{where}: not valid YAML ({str(e).splitlines()[0]})") from None
    return from_dict(raw)


def builtin_names() -> list[str]:
    d = resources.files("csdformer").joinpath("configs")
    return sorted(p.name[:-5] for p in d.iterdir() if p.name.endswith(".yaml"))
