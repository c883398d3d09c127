"""Run configuration: model, data, training, conversion. Loaded from YAML and validated.

A config names its architecture as in the paper (``csdformer-L-D``: L blocks, D channels) and
states the rest explicitly; unknown or ill-typed keys are errors naming the key.

Refused, each with a one-line :class:`ConfigError` naming the key: an empty, non-UTF-8 or
oversized file (over :data:`MAX_CONFIG_BYTES`), invalid YAML or YAML tags that build objects, a
key given twice, NaN or infinite numbers, values out of their ranges (``model.levels`` is the
artifact's ``T``: at most ``MAX_T`` = 64), and a model too large to train: before anything is
built, :func:`estimate` gives the parameter count (exact) and the activation memory of one
training batch (a rough float32 upper estimate), and :func:`validate` refuses more than
:data:`MAX_PARAMETERS` (200 M) parameters or :data:`MAX_ACTIVATION_BYTES` (64 GiB) of
activations per batch.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field, fields
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from .. import CsdformerError
from ..artifact.schema import MAX_T

#: Largest config file read.
MAX_CONFIG_BYTES = 1 << 20
#: The model-size check before training (:func:`estimate`): parameters, and the activation memory
#: one training batch keeps for the backward pass (float32, a rough upper estimate).
MAX_PARAMETERS = 200_000_000
MAX_ACTIVATION_BYTES = 64 << 30


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


_ARCH = re.compile(r"^csdformer-(\d{1,6})-(\d{1,6})$")


def parse_arch(arch: str) -> tuple[int, int]:
    m = _ARCH.match(arch) if isinstance(arch, str) else None
    if not m or not 1 <= int(m.group(1)) <= 1024 or not 1 <= int(m.group(2)) <= 65536:
        shown = repr(arch) if len(repr(arch)) <= 60 else repr(arch)[:57] + "..."
        raise ConfigError(f"model.arch: expected 'csdformer-L-D' with L in 1..1024 and D in 1..65536 "
                          f"(e.g. csdformer-4-384), got {shown}")
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
        shown = repr(value) if isinstance(value, (str, int, float)) and len(repr(value)) <= 60 else "..."
        raise ConfigError(f"{where}: expected {base}, got {type(value).__name__} {shown}")
    if base == "float":
        if abs(value) > 1e300 or (isinstance(value, float) and not math.isfinite(value)):
            raise ConfigError(f"{where}: must be a finite number, got {value!r}")
        return float(value)
    if base == "int" and abs(value) > 1 << 62:
        raise ConfigError(f"{where}: integer out of range")
    if base == "str" and (len(value) > 4096 or "\x00" in value):
        raise ConfigError(f"{where}: string too long or holding NUL")
    return value


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


def _positive(where: str, v: int | float, minimum: int | float = 1, maximum: int | float | None = None) -> None:
    if v < minimum:
        raise ConfigError(f"{where}: must be >= {minimum}, got {v!r}")
    if maximum is not None and v > maximum:
        raise ConfigError(f"{where}: must be <= {maximum}, got {v!r}")


def _stage_channels(m: ModelConfig) -> list[int]:
    return [st.channels if st.channels is not None else m.dim for st in m.tokenizer]


def estimate(cfg: Config) -> dict[str, int]:
    """The model size before anything is built: ``parameters`` (exact for the QANN, LSQ steps
    included) and ``activation_bytes``, a rough upper estimate of the float32 activations one
    training batch keeps for the backward pass (each module's output and its BN/quantizer copies)."""
    m = cfg.model
    depth, dim = parse_arch(m.arch)
    r, heads = m.mlp_ratio, m.heads
    chans = _stage_channels(m)
    cins = [m.in_channels] + chans[:-1]
    params = acts = 0
    size = m.image_size
    for i, (ci, co, st) in enumerate(zip(cins, chans, m.tokenizer)):
        if st.pool:
            size //= 2
        params += ci * co * 9 + 2 * co + (0 if i == 0 else 1)
        acts += 4 * co * size * size + (ci * size * size * 4 if st.pool else 0)
    n = size * size
    params += dim * dim * 9 + 2 * dim + 1  # rpe
    linear = lambda a, b: a * b + 2 * b  # noqa: E731 - Linear without bias, then BN
    block = 4 * linear(dim, dim) + linear(dim, r * dim) + linear(r * dim, dim) + 8
    params += depth * block + dim * m.num_classes + m.num_classes + 1
    acts += 4 * dim * n + depth * ((17 + 3 * r) * n * dim + 3 * heads * n * n)
    return {"parameters": params, "activation_bytes": 4 * cfg.train.batch_size * acts}


def validate(cfg: Config) -> Config:
    m = cfg.model
    depth, dim = parse_arch(m.arch)
    _positive("model.heads", m.heads, 1, dim)
    if dim % m.heads:
        raise ConfigError(f"model.heads: {m.heads} does not divide the model dimension {dim}")
    _positive("model.mlp_ratio", m.mlp_ratio, 1, 64)
    _positive("model.levels", m.levels, 1, MAX_T)
    _positive("model.in_channels", m.in_channels, 1, 4096)
    _positive("model.image_size", m.image_size, 1, 4096)
    _positive("model.num_classes", m.num_classes, 2, 65536)
    if not 1 <= len(m.tokenizer) <= 16:
        raise ConfigError(f"model.tokenizer: 1 to 16 stages, got {len(m.tokenizer)}")
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
            _positive(f"model.tokenizer[{i}].channels", st.channels, 1, 65536)
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
    _positive("train.epochs", t.epochs, 1, 100_000)
    _positive("train.batch_size", t.batch_size, 1, 1 << 20)
    if not 0 < t.lr <= 10:
        raise ConfigError(f"train.lr: must be > 0 and <= 10, got {t.lr}")
    if not 0 <= t.weight_decay <= 10:
        raise ConfigError(f"train.weight_decay: must be in 0..10, got {t.weight_decay}")
    if t.warmup_epochs < 0 or t.warmup_epochs >= t.epochs:
        raise ConfigError(f"train.warmup_epochs: must be in 0..epochs-1, got {t.warmup_epochs}")
    if not 0 <= t.seed < 1 << 32:
        raise ConfigError(f"train.seed: must be in 0..2^32-1, got {t.seed}")
    if not 0 <= t.threads <= 1024:
        raise ConfigError(f"train.threads: must be in 0..1024, got {t.threads}")
    if not t.out:
        raise ConfigError("train.out: must be a non-empty path")
    if cfg.data.root is not None and not cfg.data.root:
        raise ConfigError("data.root: must be a non-empty path (or null)")
    if not isinstance(cfg.name, str) or not cfg.name:
        raise ConfigError(f"name: must be a non-empty string, got {cfg.name!r}")
    d = cfg.convert.delay
    if d is not None and not 0 <= d <= m.levels - 1:
        raise ConfigError(f"convert.delay: must be in 0..T-1 = 0..{m.levels - 1}, got {d}")
    est = estimate(cfg)
    if est["parameters"] > MAX_PARAMETERS:
        raise ConfigError(f"model.arch: {m.arch} has about {est['parameters'] / 1e6:.0f} M parameters, "
                          f"more than the limit {MAX_PARAMETERS / 1e6:.0f} M")
    if est["activation_bytes"] > MAX_ACTIVATION_BYTES:
        raise ConfigError(f"train.batch_size: a batch of {t.batch_size} keeps about "
                          f"{est['activation_bytes'] / 2**30:.0f} GiB of activations, more than the limit "
                          f"{MAX_ACTIVATION_BYTES >> 30} GiB (lower the batch size or the model size)")
    return cfg


def from_dict(raw: Any) -> Config:
    return validate(_build(Config, raw, ""))


class _UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a key given twice in one mapping (PyYAML keeps the last)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: dict[Any, Any] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                hash(key)
            except TypeError:
                raise yaml.constructor.ConstructorError(None, None, "a key that is not a scalar",
                                                        key_node.start_mark) from None
            if key in seen:
                raise _DuplicateKey(key, key_node.start_mark.line + 1, seen[key])
            seen[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep=deep)


class _DuplicateKey(Exception):
    def __init__(self, key: Any, line: int, first: int):
        super().__init__(key, line, first)
        self.key, self.line, self.first = key, line, first


def parse_yaml(text: str, where: str) -> Any:
    """Parse config text (one YAML document, unique keys, plain data only)."""
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except _DuplicateKey as e:
        key = e.key if isinstance(e.key, str) and len(e.key) <= 60 else "..."
        raise ConfigError(f"{where}: duplicate key {key!r} at line {e.line} (first at line {e.first})") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{where}: not valid YAML ({str(e).splitlines()[0]})") from None
    except RecursionError:
        raise ConfigError(f"{where}: nested too deeply") from None


def load(path: str | Path) -> Config:
    """Load a YAML config file, or a built-in config by name (``digits``, ``fashion_mnist``).

    Refused with a one-line :class:`ConfigError`: an unreadable, non-UTF-8, oversized
    (:data:`MAX_CONFIG_BYTES`) or empty file, invalid YAML, a duplicate key, and every check of
    :func:`validate`.
    """
    p = Path(path)
    if not p.exists() and str(path) in builtin_names():
        text = resources.files("csdformer").joinpath("configs", f"{path}.yaml").read_text()
        where = f"built-in config {path!r}"
    else:
        try:
            if p.is_dir():
                raise ConfigError(f"{path}: cannot read config (a folder)")
            with open(p, "rb") as f:
                data = f.read(MAX_CONFIG_BYTES + 1)
        except OSError as e:
            raise ConfigError(f"{path}: cannot read config ({e.strerror})") from None
        if len(data) > MAX_CONFIG_BYTES:
            raise ConfigError(f"{path}: config larger than {MAX_CONFIG_BYTES} bytes")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as e:
            raise ConfigError(f"{path}: not UTF-8 text (byte {e.start})") from None
        where = str(path)
    raw = parse_yaml(text, where)
    if raw is None:
        raise ConfigError(f"{where}: empty config (no keys); start from a built-in one: {', '.join(builtin_names())}")
    return from_dict(raw)


def builtin_names() -> list[str]:
    d = resources.files("csdformer").joinpath("configs")
    return sorted(p.name[:-5] for p in d.iterdir() if p.name.endswith(".yaml"))
