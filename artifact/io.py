"""Reading and writing artifact folders: ``manifest.json`` + ``arrays.npz``.

Writing is atomic: the folder is assembled beside its destination and renamed into place, so a
failure leaves nothing half-written. Reading validates everything before returning.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import zipfile
from importlib import resources
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from .schema import (
    DTYPES, FORMAT, KIND_ARRAYS, MAX_ARRAY_BYTES, MAX_LAYERS, MAX_TENSOR_ELEMENTS, SCHEMA_VERSION, _NAME, Artifact,
    ArtifactError, InputSpec, Layer, bounds, is_int, short, validate,
)

MANIFEST = "manifest.json"
ARRAYS = "arrays.npz"


def to_manifest(a: Artifact) -> dict[str, Any]:
    b = bounds(a)
    return {
        "format": FORMAT,
        "schema_version": SCHEMA_VERSION,
        "name": a.name,
        "created_by": a.created_by,
        "T": a.T,
        "delay": a.delay,
        "weight_bits": a.weight_bits,
        "num_classes": a.num_classes,
        "input": {
            "channels": a.input.channels,
            "height": a.input.height,
            "width": a.input.width,
            "max_value": a.input.max_value,
            "scale": a.input.scale,
            "dataset": a.input.dataset,
        },
        "output": a.output,
        "layers": [
            {
                "name": layer.name,
                "kind": layer.kind,
                "inputs": list(layer.inputs),
                "shape": list(layer.shape),
                "attrs": layer.attrs,
                "arrays": {
                    nm: {"key": f"{layer.name}/{nm}", "dtype": str(arr.dtype), "shape": list(arr.shape)}
                    for nm, arr in layer.arrays.items()
                },
                "bounds": b[layer.name],
            }
            for layer in a.layers
        ],
        "model": a.model,
        "metrics": a.metrics,
    }


def save(a: Artifact, out_dir: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
    """Validate and write an artifact folder atomically; return its path."""
    validate(a)
    out = Path(out_dir)
    if out.exists() and not overwrite:
        raise ArtifactError(f"{out}: already exists (use overwrite)")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes 0700; the result is an ordinary folder
        manifest = to_manifest(a)
        with open(tmp / MANIFEST, "w") as f:
            json.dump(manifest, f, indent=1)
            f.write("\n")
        arrays = {f"{layer.name}/{nm}": arr for layer in a.layers for nm, arr in layer.arrays.items()}
        np.savez_compressed(tmp / ARRAYS, **arrays)
        load(tmp)  # what was written must read back valid
        if out.exists():
            old = out.with_name(f".{out.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(out, old)
            os.replace(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


#: Largest manifest.json read, and deepest nesting of objects and lists in it.
MAX_MANIFEST_BYTES = 16 << 20
MAX_DEPTH = 32
_NPY_HEADER_MAX = 1 << 16


def _need(d: Any, key: str, where: str) -> Any:
    if not isinstance(d, dict):
        raise ArtifactError(f"{where or 'manifest'}: expected an object, got {type(d).__name__}")
    if key not in d:
        raise ArtifactError(f"{where}.{key}: missing key" if where else f"{key}: missing key")
    return d[key]


def _typed(value: Any, typ: type | tuple[type, ...], where: str, what: str) -> Any:
    if not isinstance(value, typ):
        raise ArtifactError(f"{where}: expected {what}, got {type(value).__name__} {short(value)}")
    return value


def _depth_check(m: Any) -> None:
    """Refuse objects and lists nested deeper than :data:`MAX_DEPTH` (checked without recursion)."""
    stack = [(m, 1, "manifest")]
    while stack:
        v, d, where = stack.pop()
        if isinstance(v, (dict, list)):
            if d > MAX_DEPTH:
                raise ArtifactError(f"{where}: nested deeper than {MAX_DEPTH} levels")
            items = v.items() if isinstance(v, dict) else enumerate(v)
            for k, x in items:
                if isinstance(x, (dict, list)):
                    stack.append((x, d + 1, str(k)[:60] if d == 1 else where))


class _Npz:
    """``arrays.npz`` read lazily: members listed from the zip directory, each one's size checked
    from its zip entry and its .npy header against the manifest before any data is read."""

    def __init__(self, path: Path):
        if not path.exists():
            raise ArtifactError(f"{ARRAYS}: missing file {path}")
        if not path.is_file():
            raise ArtifactError(f"{ARRAYS}: not a file ({path})")
        try:
            self.zf = zipfile.ZipFile(path)
            infos = self.zf.infolist()
        except Exception as e:  # noqa: BLE001 - any failure to parse an untrusted zip
            raise ArtifactError(f"{ARRAYS}: truncated or corrupt ({type(e).__name__}: {_line(e)})") from None
        self.members: dict[str, zipfile.ZipInfo] = {}
        for info in infos:
            name = info.filename
            if not name.endswith(".npy") or name[:-4] in self.members:
                self.zf.close()
                raise ArtifactError(f"{ARRAYS}: unexpected member {short(name)} (only one .npy per array)")
            self.members[name[:-4]] = info
        self.declared = 0

    def close(self) -> None:
        self.zf.close()

    def keys(self) -> list[str]:
        return list(self.members)

    def __contains__(self, key: object) -> bool:
        return key in self.members

    def read(self, key: str, dtype: np.dtype, shape: tuple[int, ...], where: str) -> np.ndarray:
        info = self.members[key]
        nbytes = dtype.itemsize
        for d in shape:
            nbytes *= d
        self.declared += nbytes
        if self.declared > MAX_ARRAY_BYTES:
            raise ArtifactError(f"{where}: the arrays declared so far need {self.declared} bytes, "
                                f"more than the limit {MAX_ARRAY_BYTES}")
        if info.file_size > nbytes + _NPY_HEADER_MAX or info.file_size < nbytes:
            raise ArtifactError(f"{where}: {ARRAYS} member {key!r} holds {info.file_size} bytes, "
                                f"the manifest's {dtype} {shape} needs {nbytes}")
        try:
            with self.zf.open(info) as f:
                version = np.lib.format.read_magic(f)
                if version == (1, 0):
                    got_shape, fortran, got_dtype = np.lib.format.read_array_header_1_0(f, max_header_size=_NPY_HEADER_MAX)
                else:
                    got_shape, fortran, got_dtype = np.lib.format.read_array_header_2_0(f, max_header_size=_NPY_HEADER_MAX)
                if tuple(got_shape) != tuple(shape):
                    raise ArtifactError(f"{where}: manifest says shape {tuple(shape)}, {ARRAYS} has {short(tuple(got_shape))}")
                if got_dtype != dtype:
                    raise ArtifactError(f"{where}: manifest says dtype {dtype}, {ARRAYS} has {short(str(got_dtype))}")
                data = f.read(nbytes)
                if len(data) != nbytes:
                    raise ArtifactError(f"{where}: {ARRAYS} member {key!r} is truncated")
                if f.read(1):
                    raise ArtifactError(f"{where}: {ARRAYS} member {key!r} has trailing data")
        except ArtifactError:
            raise
        except Exception as e:  # noqa: BLE001 - any failure to parse an untrusted member
            raise ArtifactError(f"{ARRAYS}: member {key!r} truncated or corrupt ({type(e).__name__}: {_line(e)})") from None
        arr = np.frombuffer(data, dtype=dtype).reshape(shape, order="F" if fortran else "C")
        return arr.copy(order="K")


def _line(e: BaseException) -> str:
    text = str(e).splitlines()
    return short(text[0], 120)[1:-1] if text else ""


def _array_ref(ref: Any, layer: str, nm: str) -> tuple[str, np.dtype, tuple[int, ...]]:
    where = f"{layer}.arrays.{nm}"
    _typed(ref, dict, where, "an object {key, dtype, shape}")
    key = _typed(_need(ref, "key", where), str, f"{where}.key", "a string")
    dt = _need(ref, "dtype", where)
    if not isinstance(dt, str) or dt not in DTYPES:
        try:
            kind = np.dtype(dt).kind if isinstance(dt, str) and len(dt) < 20 else "?"
        except Exception:  # noqa: BLE001 - not a dtype numpy knows
            kind = "?"
        if kind not in "iu?":
            raise ArtifactError(f"{layer}.{nm}: dtype must be an integer type, got {dt}")
        raise ArtifactError(f"{where}.dtype: must be one of {', '.join(DTYPES)}, got {short(dt)}")
    shape = _need(ref, "shape", where)
    if not isinstance(shape, list) or len(shape) > 4 or not all(
            is_int(d) and 1 <= d <= MAX_TENSOR_ELEMENTS for d in shape):
        raise ArtifactError(f"{where}.shape: expected a list of at most 4 positive integers, got {short(shape)}")
    n = 1
    for d in shape:
        n *= d
    if n > MAX_TENSOR_ELEMENTS:
        raise ArtifactError(f"{where}.shape: {tuple(shape)} has {n} elements, more than the limit {MAX_TENSOR_ELEMENTS}")
    return key, np.dtype(dt), tuple(shape)


def from_manifest(m: dict[str, Any], arrays: Mapping[str, np.ndarray] | _Npz) -> Artifact:
    """Build (and validate) an artifact from a parsed manifest and its arrays.

    Every array the manifest names must be in ``arrays`` with the stated dtype and shape, and every
    member of ``arrays`` must be named by the manifest.
    """
    _typed(m, dict, "manifest", "an object")
    _depth_check(m)
    known = {"format", "schema_version", "name", "created_by", "T", "delay", "weight_bits", "num_classes",
             "input", "output", "layers", "model", "metrics"}
    extra = [k for k in m if k not in known]
    if extra:
        raise ArtifactError(f"{short(extra[0])}: unknown top-level key")
    fmt = _need(m, "format", "")
    if fmt != FORMAT:
        raise ArtifactError(f"format: expected {FORMAT!r}, got {short(fmt)}")
    ver = _need(m, "schema_version", "")
    if not is_int(ver) or ver != SCHEMA_VERSION:
        raise ArtifactError(f"schema_version: unknown schema version {short(ver)} (this csdformer reads {SCHEMA_VERSION})")
    inp = _need(m, "input", "")
    _typed(inp, dict, "input", "an object")
    keys = ("channels", "height", "width", "max_value", "scale", "dataset")
    extra = [k for k in inp if k not in keys]
    if extra:
        raise ArtifactError(f"input.{short(extra[0])}: unknown key")
    spec = InputSpec(**{k: _need(inp, k, "input") for k in keys})
    layers = []
    raw_layers = _need(m, "layers", "")
    if not isinstance(raw_layers, list):
        raise ArtifactError("layers: expected a list")
    if not raw_layers:
        raise ArtifactError("layers: empty")
    if len(raw_layers) > MAX_LAYERS:
        raise ArtifactError(f"layers: {len(raw_layers)} layers, more than the limit {MAX_LAYERS}")
    referenced: set[str] = set()
    stated = {}
    for i, raw in enumerate(raw_layers):
        where = f"layers[{i}]"
        _typed(raw, dict, where, "an object")
        extra = [k for k in raw if k not in ("name", "kind", "inputs", "shape", "attrs", "arrays", "bounds")]
        if extra:
            raise ArtifactError(f"{where}.{short(extra[0])}: unknown key")
        name = _need(raw, "name", where)
        if not isinstance(name, str) or not _NAME.match(name):
            raise ArtifactError(f"{where}.name: must be a name of 1..128 letters, digits and _.:+-, got {short(name)}")
        base, where = where, f"{where}({name})"
        kind = _need(raw, "kind", base)
        if not isinstance(kind, str) or kind not in KIND_ARRAYS:
            raise ArtifactError(f"{where}.kind: unknown layer kind {short(kind)}")
        refs = _typed(_need(raw, "arrays", base), dict, f"{where}.arrays", "an object")
        arrs = {}
        for nm, ref in refs.items():
            if not isinstance(nm, str) or nm not in KIND_ARRAYS.get(kind, ()):
                raise ArtifactError(f"{where}.arrays: unexpected array {short(nm)} for kind {short(kind)}")
            key, dt, shape = _array_ref(ref, where, nm)
            if key not in arrays:
                raise ArtifactError(f"{where}.{nm}: array {key!r} missing from {ARRAYS}")
            if key in referenced:
                raise ArtifactError(f"{where}.{nm}: array {key!r} is named twice")
            referenced.add(key)
            if isinstance(arrays, _Npz):
                arr = arrays.read(key, dt, shape, f"{where}.{nm}")
            else:
                arr = arrays[key]
                if list(arr.shape) != list(shape):
                    raise ArtifactError(f"{where}.{nm}: manifest says shape {shape}, {ARRAYS} has {arr.shape}")
                if arr.dtype != dt:
                    raise ArtifactError(f"{where}.{nm}: manifest says dtype {dt}, {ARRAYS} has {arr.dtype}")
            arrs[nm] = arr
        inputs = _typed(_need(raw, "inputs", base), list, f"{where}.inputs", "a list")
        shape = _typed(_need(raw, "shape", base), list, f"{where}.shape", "a list")
        attrs = raw.get("attrs")
        attrs = {} if attrs is None else _typed(attrs, dict, f"{where}.attrs", "an object")
        b = raw.get("bounds")
        stated[name] = None if b is None else _typed(b, dict, f"{where}.bounds", "an object")
        layers.append(Layer(name=name, kind=kind, inputs=tuple(inputs), shape=tuple(shape), attrs=dict(attrs),
                            arrays=arrs))
    unused = sorted(set(arrays.keys()) - referenced)
    if unused:
        raise ArtifactError(f"{ARRAYS}: member {short(unused[0])} is not named by the manifest"
                            + (f" (and {len(unused) - 1} more)" if len(unused) > 1 else ""))
    model, metrics = m.get("model"), m.get("metrics")
    a = Artifact(
        name=_need(m, "name", ""),
        T=_need(m, "T", ""),
        delay=_need(m, "delay", ""),
        input=spec,
        num_classes=_need(m, "num_classes", ""),
        weight_bits=_need(m, "weight_bits", ""),
        layers=layers,
        output=_need(m, "output", ""),
        model={} if model is None else model,
        metrics={} if metrics is None else metrics,
        created_by=m.get("created_by", ""),
    )
    validate(a)
    for i, (name, real) in enumerate(bounds(a).items()):
        said = stated.get(name)
        if said is not None and said != real:
            key = next((k for k in sorted(set(said) | set(real)) if said.get(k) != real.get(k)), "")
            raise ArtifactError(f"layers[{i}]({name}).bounds.{short(key, 30).strip(chr(39))}: stated {short(said.get(key))} "
                                f"but the arrays give {real.get(key)}")
    return a


def load(path: str | os.PathLike[str]) -> Artifact:
    """Read and validate an artifact folder (or its ``manifest.json``).

    The files are untrusted data: sizes are checked before reading (:data:`MAX_MANIFEST_BYTES`,
    the npz members against the manifest and :data:`~csdformer.artifact.schema.MAX_ARRAY_BYTES`),
    and every failure is one :class:`ArtifactError` line naming the field.
    """
    p = Path(path)
    if p.is_file() and p.name == MANIFEST:
        p = p.parent
    if not p.is_dir():
        raise ArtifactError(f"{p}: not an artifact folder")
    mp = p / MANIFEST
    if not mp.exists():
        raise ArtifactError(f"{MANIFEST}: missing in {p}")
    if not mp.is_file():
        raise ArtifactError(f"{MANIFEST}: not a file ({mp})")
    try:
        size = mp.stat().st_size
        if size > MAX_MANIFEST_BYTES:
            raise ArtifactError(f"{MANIFEST}: {size} bytes, more than the limit {MAX_MANIFEST_BYTES}")
        with open(mp, "rb") as f:
            raw = f.read(MAX_MANIFEST_BYTES + 1)
    except OSError as e:
        raise ArtifactError(f"{MANIFEST}: cannot read ({e.strerror or type(e).__name__})") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ArtifactError(f"{MANIFEST}: not UTF-8 text (byte {e.start})") from None

    def constant(name: str) -> Any:
        raise ArtifactError(f"{MANIFEST}: {name} is not a number JSON allows")

    try:
        m = json.loads(text, parse_constant=constant)
    except json.JSONDecodeError as e:
        raise ArtifactError(f"{MANIFEST}: not valid JSON ({e})") from None
    except RecursionError:
        raise ArtifactError(f"{MANIFEST}: nested too deeply") from None
    except ValueError as e:  # e.g. an integer beyond Python's digit limit
        raise ArtifactError(f"{MANIFEST}: not valid JSON ({_line(e)})") from None
    npz = _Npz(p / ARRAYS)
    try:
        return from_manifest(m, npz)
    finally:
        npz.close()


def shipped_models() -> list[str]:
    """Names of the models shipped in the package (``csdformer/models/<name>/manifest.json``)."""
    d = resources.files("csdformer").joinpath("models")
    return sorted(p.name for p in d.iterdir() if p.joinpath(MANIFEST).is_file())


def resolve_artifact(spec: str) -> Path:
    """A path to an artifact folder, or the name of a shipped model (``digits``)."""
    p = Path(spec)
    if not p.exists() and spec in shipped_models():
        return Path(str(resources.files("csdformer").joinpath("models", spec)))
    return p
