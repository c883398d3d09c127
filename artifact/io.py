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
from typing import Any

import numpy as np

from .schema import FORMAT, SCHEMA_VERSION, Artifact, ArtifactError, InputSpec, Layer, bounds, validate

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


def _need(d: dict[str, Any], key: str, where: str) -> Any:
    if not isinstance(d, dict):
        raise ArtifactError(f"{where}: expected an object")
    if key not in d:
        raise ArtifactError(f"{where}.{key}: missing key" if where else f"{key}: missing key")
    return d[key]


def _load_arrays(path: Path) -> dict[str, np.ndarray]:
    if not path.exists():
        raise ArtifactError(f"{ARRAYS}: missing file {path}")
    try:
        with open(path, "rb") as fh, np.load(fh, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as e:
        raise ArtifactError(f"{ARRAYS}: truncated or corrupt ({type(e).__name__}: {e})") from None


def from_manifest(m: dict[str, Any], arrays: dict[str, np.ndarray]) -> Artifact:
    """Build (and validate) an artifact from a parsed manifest and its arrays."""
    fmt = _need(m, "format", "")
    if fmt != FORMAT:
        raise ArtifactError(f"format: expected {FORMAT!r}, got {fmt!r}")
    ver = _need(m, "schema_version", "")
    if ver != SCHEMA_VERSION:
        raise ArtifactError(f"schema_version: unknown schema version {ver!r} (this csdformer reads {SCHEMA_VERSION})")
    inp = _need(m, "input", "")
    spec = InputSpec(**{k: _need(inp, k, "input") for k in ("channels", "height", "width", "max_value", "scale", "dataset")})
    layers = []
    raw_layers = _need(m, "layers", "")
    if not isinstance(raw_layers, list):
        raise ArtifactError("layers: expected a list")
    for i, raw in enumerate(raw_layers):
        where = f"layers[{i}]"
        name = _need(raw, "name", where)
        kind = _need(raw, "kind", where)
        arrs = {}
        for nm, ref in (_need(raw, "arrays", where) or {}).items():
            key = _need(ref, "key", f"{where}.arrays.{nm}")
            if key not in arrays:
                raise ArtifactError(f"{where}({name}).{nm}: array {key!r} missing from {ARRAYS}")
            arr = arrays[key]
            if "shape" in ref and list(arr.shape) != list(ref["shape"]):
                raise ArtifactError(f"{where}({name}).{nm}: manifest says shape {tuple(ref['shape'])}, {ARRAYS} has {arr.shape}")
            if "dtype" in ref and str(arr.dtype) != ref["dtype"]:
                raise ArtifactError(f"{where}({name}).{nm}: manifest says dtype {ref['dtype']}, {ARRAYS} has {arr.dtype}")
            arrs[nm] = arr
        inputs = _need(raw, "inputs", where)
        shape = _need(raw, "shape", where)
        if not isinstance(inputs, list) or not isinstance(shape, list):
            raise ArtifactError(f"{where}({name}): inputs and shape must be lists")
        layers.append(Layer(name=name, kind=kind, inputs=tuple(inputs), shape=tuple(shape),
                            attrs=dict(raw.get("attrs") or {}), arrays=arrs))
    a = Artifact(
        name=_need(m, "name", ""),
        T=_need(m, "T", ""),
        delay=_need(m, "delay", ""),
        input=spec,
        num_classes=_need(m, "num_classes", ""),
        weight_bits=_need(m, "weight_bits", ""),
        layers=layers,
        output=_need(m, "output", ""),
        model=m.get("model") or {},
        metrics=m.get("metrics") or {},
        created_by=m.get("created_by", ""),
    )
    validate(a)
    stated = {raw["name"]: raw.get("bounds") for raw in raw_layers}
    for name, real in bounds(a).items():
        if stated.get(name) is not None and stated[name] != real:
            raise ArtifactError(f"layers({name}).bounds: stated {stated[name]} but the arrays give {real}")
    return a


def load(path: str | os.PathLike[str]) -> Artifact:
    """Read and validate an artifact folder (or its ``manifest.json``)."""
    p = Path(path)
    if p.is_file() and p.name == MANIFEST:
        p = p.parent
    if not p.is_dir():
        raise ArtifactError(f"{p}: not an artifact folder")
    try:
        with open(p / MANIFEST) as f:
            m = json.load(f)
    except FileNotFoundError:
        raise ArtifactError(f"{MANIFEST}: missing in {p}") from None
    except json.JSONDecodeError as e:
        raise ArtifactError(f"{MANIFEST}: not valid JSON ({e})") from None
    return from_manifest(m, _load_arrays(p / ARRAYS))


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
