"""Malformed artifacts (issue 16): each one, built from a copy of a frozen ``digits`` artifact,
goes through ``csdformer eval ART --data digits`` (and a subset through ``csdformer rtl ART -o
OUT``) under a 2 GB memory limit and a 30 s time limit. Each must end with exit status 2 and
exactly one stderr line naming the offending field (the text is asserted, not only the status),
and nothing may be written.

The cases run in one worker process per command (``hostile.run_group``: each case under the
limits, one interpreter start-up); the memory and time blow-ups also run alone in a fresh process.

The base artifact is the digits model as shipped at commit 4575c58 (csdformer-1-16, 1 head, MLP x4),
frozen under ``tests/fixtures/digits-4575c58/``: the layer indices, names, shapes and values in the
expected messages refer to it, so they do not move when the shipped model is retrained.
"""

from __future__ import annotations

import io
import json
import shutil
import zipfile
import zlib
from pathlib import Path
from typing import Callable

import numpy as np
import pytest

from csdformer.artifact import resolve_artifact
from hostile import check_one_line_error, run_alone, run_watched, snapshot

#: the digits artifact of commit 4575c58, frozen (the layer indices below refer to it)
DIGITS = Path(__file__).parent / "fixtures" / "digits-4575c58"
BASE_MANIFEST = json.loads((DIGITS / "manifest.json").read_text())
with np.load(DIGITS / "arrays.npz") as _z:
    BASE_ARRAYS = {k: _z[k] for k in _z.files}

# layer indices in the frozen digits artifact
ENC, Q0, POOL, CONV1, FLAT, RPEQ, RPE, ADD, QIN, LQ, QQ = range(11)
SCORES, QATTN, VALUES, HEAD = 15, 16, 17, 27

Mutation = Callable[[dict, dict, Path], None]


def set_array(m: dict, arrays: dict, idx: int, nm: str, arr: np.ndarray) -> None:
    """Replace one array and keep the manifest's reference in step (stated bounds dropped)."""
    layer = m["layers"][idx]
    ref = layer["arrays"][nm]
    arrays[ref["key"]] = arr
    ref["dtype"], ref["shape"] = str(arr.dtype), list(arr.shape)
    for la in m["layers"]:
        la.pop("bounds", None)


def arr(m: dict, arrays: dict, idx: int, nm: str) -> np.ndarray:
    return arrays[m["layers"][idx]["arrays"][nm]["key"]].copy()


def top(key: str, value) -> Mutation:
    return lambda m, a, d: m.__setitem__(key, value)


def inp(key: str, value) -> Mutation:
    return lambda m, a, d: m["input"].__setitem__(key, value)


def layer(idx: int, key: str, value) -> Mutation:
    return lambda m, a, d: m["layers"][idx].__setitem__(key, value)


def attr(idx: int, key: str, value) -> Mutation:
    return lambda m, a, d: m["layers"][idx]["attrs"].__setitem__(key, value)


def raw_manifest(data: bytes) -> Mutation:
    def f(m, a, d):
        (d / "manifest.json").write_bytes(data)
        shutil.copy(DIGITS / "arrays.npz", d / "arrays.npz")
        raise _Raw
    return f


class _Raw(Exception):
    """The mutation wrote the files itself."""


def _npz_bytes(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buf.getvalue()


def _npy(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a)
    return buf.getvalue()


def _members(arrays: dict) -> dict[str, bytes]:
    return {f"{k}.npy": _npy(v) for k, v in arrays.items()}


def npz_raw(build: Callable[[dict], bytes]) -> Mutation:
    def f(m, a, d):
        (d / "manifest.json").write_text(json.dumps(m))
        (d / "arrays.npz").write_bytes(build(a))
        raise _Raw
    return f


def huge_header(a: dict) -> bytes:
    """The encoding weight's member: a .npy header claiming 64 GiB, 17 bytes of data."""
    mem = _members(a)
    hdr = io.BytesIO()
    np.lib.format.write_array_header_1_0(hdr, {"descr": "|i1", "fortran_order": False, "shape": (1 << 36,)})
    mem["stages.0/weight.npy"] = hdr.getvalue() + b"\0" * 17
    return _npz_bytes(mem)


def huge_header_declared(m: dict, a: dict, d: Path) -> None:
    """The manifest agrees with a header claiming 64 GiB: refused from the manifest, nothing read."""
    m["layers"][ENC]["arrays"]["weight"]["shape"] = [1 << 30, 64]
    npz_raw(huge_header)(m, a, d)


_BOMB: dict[str, bytes] = {}


def _deflated_zeros(n: int) -> tuple[bytes, int]:
    """``n`` zero bytes deflated (raw stream) and their CRC."""
    if n not in _BOMB:
        c = zlib.compressobj(9, zlib.DEFLATED, -15)
        chunk = b"\0" * (1 << 22)
        out = [c.compress(chunk) for _ in range(n >> 22)]
        out.append(c.flush())
        crc = 0
        for _ in range(n >> 22):
            crc = zlib.crc32(chunk, crc)
        _BOMB[n] = (b"".join(out), crc)
    return _BOMB[n]


def zip_bomb(referenced: bool) -> Callable[[dict], bytes]:
    """A 1 GiB member of zeros, deflated to about 1 MB (as the bias of the encoding layer, or unnamed)."""
    def build(a: dict) -> bytes:
        n = 1 << 30
        data, crc = _deflated_zeros(n)
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
            for name, raw in _members(a).items():
                if referenced and name == "stages.0/bias.npy":
                    continue
                z.writestr(name, raw)
            info = zipfile.ZipInfo("stages.0/bias.npy" if referenced else "bomb.npy")
            info.compress_type = zipfile.ZIP_DEFLATED
            # write the pre-compressed stream by hand: local header, data; the central directory
            # is written by ZipFile from the info below
            info.file_size, info.compress_size, info.CRC = n, len(data), crc
            info.header_offset = buf.tell()
            z.fp.write(info.FileHeader())
            z.fp.write(data)
            z.filelist.append(info)
            z.NameToInfo[info.filename] = info
            z.start_dir = buf.tell()
        return buf.getvalue()
    return build


def dup_name(m, a, d):
    m["layers"][Q0]["name"] = "stages.0"


def zero_size(m, a, d):
    set_array(m, a, LQ, "weight", np.zeros((0, 16), np.int8))
    set_array(m, a, LQ, "bias", np.zeros((0,), np.int32))
    m["layers"][LQ]["shape"] = [16, 0]


def pool_too_big(m, a, d):
    m["layers"][POOL]["attrs"]["kernel"] = 16
    m["layers"][POOL]["shape"] = [8, -5, -5]


def pool_too_big_consistent(m, a, d):
    m["layers"][POOL]["attrs"].update(kernel=16, stride=1)
    m["layers"][POOL]["shape"] = [8, 1, 1]


def with_array(idx: int, nm: str, make: Callable[[np.ndarray], np.ndarray]) -> Mutation:
    return lambda m, a, d: set_array(m, a, idx, nm, make(arr(m, a, idx, nm)))


def head_bias_max(m, a, d):
    b = arr(m, a, HEAD, "bias").astype(np.int64)
    b[3] = 2**63 - 1
    set_array(m, a, HEAD, "bias", b)


def head_bias_31(m, a, d):
    b = arr(m, a, HEAD, "bias")
    b[3] = 2**31 - 1
    set_array(m, a, HEAD, "bias", b)


def big_threshold(m, a, d):
    t = arr(m, a, RPEQ, "threshold").astype(np.int64)
    t[0] = 1 << 40
    set_array(m, a, RPEQ, "threshold", t)


def dif_value(nm: str, v: int) -> Mutation:
    """One value of the rpe quantizer's ``threshold`` or ``v0`` set to ``v``."""
    def f(m, a, d):
        t = arr(m, a, RPEQ, nm)
        t[2] = v
        set_array(m, a, RPEQ, nm, t)
    return f


def weight_outside(m, a, d):
    w = arr(m, a, LQ, "weight").astype(np.int32)
    w[0, 0] = 500
    set_array(m, a, LQ, "weight", w)


def extra_member(m, a, d):
    a["evil/extra"] = np.zeros(4, np.int8)


def manifest_npz_shape_disagree(m, a, d):
    m["layers"][LQ]["arrays"]["weight"]["shape"] = [16, 15]


def manifest_npz_dtype_disagree(m, a, d):
    m["layers"][LQ]["arrays"]["weight"]["dtype"] = "uint8"


def missing_member(m, a, d):
    del a[m["layers"][LQ]["arrays"]["bias"]["key"]]


def key_twice(m, a, d):
    m["layers"][LQ]["arrays"]["bias"]["key"] = m["layers"][LQ + 2]["arrays"]["bias"]["key"]
    del a["blocks.0.attn.q/bias"]


def stated_bounds(m, a, d):
    m["layers"][LQ]["bounds"]["frame"][1] += 1


def big_endian(m, a, d):
    a["blocks.0.attn.q/bias"] = a["blocks.0.attn.q/bias"].astype(">i4")


def five_dims(m, a, d):
    set_array(m, a, LQ, "weight", arr(m, a, LQ, "weight").reshape(16, 16, 1, 1, 1))


def deep_model(depth: int) -> Mutation:
    def f(m, a, d):
        x: object = 1
        for _ in range(depth):
            x = [x]
        m["model"] = {"nest": x}
    return f


def write_case(root: Path, mutate: Mutation) -> Path:
    d = root / "art"
    d.mkdir(parents=True)
    m = json.loads(json.dumps(BASE_MANIFEST))
    arrays = {k: v.copy() for k, v in BASE_ARRAYS.items()}
    try:
        mutate(m, arrays, d)
    except _Raw:
        return d
    (d / "manifest.json").write_text(json.dumps(m))
    np.savez_compressed(d / "arrays.npz", **arrays)
    return d


def manifest_folder(m, a, d):
    (d / "manifest.json").mkdir()
    shutil.copy(DIGITS / "arrays.npz", d / "arrays.npz")
    raise _Raw


def manifest_missing(m, a, d):
    shutil.copy(DIGITS / "arrays.npz", d / "arrays.npz")
    raise _Raw


def npz_folder(m, a, d):
    (d / "manifest.json").write_text(json.dumps(m))
    (d / "arrays.npz").mkdir()
    raise _Raw


def npz_missing(m, a, d):
    (d / "manifest.json").write_text(json.dumps(m))
    raise _Raw


def npz_truncated(m, a, d):
    (d / "manifest.json").write_text(json.dumps(m))
    (d / "arrays.npz").write_bytes((DIGITS / "arrays.npz").read_bytes()[:5000])
    raise _Raw


def npz_not_zip(m, a, d):
    (d / "manifest.json").write_text(json.dumps(m))
    (d / "arrays.npz").write_bytes(b"\x93NUMPY" + b"\xff" * 3000)
    raise _Raw


def npz_text_member(a: dict) -> bytes:
    mem = _members(a)
    mem["README.txt"] = b"hello"
    return _npz_bytes(mem)


def npz_corrupt_member(a: dict) -> bytes:
    """One member's data with a flipped byte (stored uncompressed, so only the CRC can tell)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        for name, data in _members(a).items():
            z.writestr(name, data)
        info = z.getinfo("stages.0/bias.npy")
    out = bytearray(buf.getvalue())
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    out[start + info.file_size - 1] ^= 0xFF
    return bytes(out)


def npz_pickled_member(a: dict) -> bytes:
    mem = _members(a)
    buf = io.BytesIO()
    np.save(buf, np.array([print] * 8, dtype=object), allow_pickle=True)
    mem["stages.0/bias.npy"] = buf.getvalue()
    return _npz_bytes(mem)


# id -> (mutation, expected text in the one stderr line)
CASES: dict[str, tuple[Mutation, str]] = {
    # --- the manifest file ---
    "manifest-not-utf8": (raw_manifest(b'{"format": "\xff\xfe"}'), "manifest.json: not UTF-8"),
    "manifest-folder": (manifest_folder, "manifest.json: not a file"),
    "manifest-missing": (manifest_missing, "manifest.json: missing"),
    "manifest-truncated": (raw_manifest(json.dumps(BASE_MANIFEST).encode()[:3000]), "manifest.json: not valid JSON"),
    "manifest-deep-nesting": (raw_manifest(b"[" * 100_000 + b"]" * 100_000), "manifest.json: nested too deeply"),
    "manifest-nesting-40": (deep_model(40), "model: nested deeper than 32 levels"),
    "manifest-5000-digits": (raw_manifest(json.dumps(BASE_MANIFEST).replace('"T": 4', '"T": ' + "9" * 5000).encode()),
                             "manifest.json: not valid JSON"),
    "manifest-4000-digits": (top("T", int("9" * 4000)), "T: must be an integer"),
    "manifest-nan": (raw_manifest(json.dumps(BASE_MANIFEST).replace('"scale": 0.0625', '"scale": NaN').encode()),
                     "manifest.json: NaN is not a number"),
    "manifest-infinity": (raw_manifest(json.dumps(BASE_MANIFEST).replace('"scale": 0.0625', '"scale": Infinity').encode()),
                          "manifest.json: Infinity is not a number"),
    "manifest-list": (raw_manifest(b"[1, 2]"), "manifest: expected an object"),
    "manifest-17MB": (raw_manifest(b" " * (17 << 20) + b"{}"), "manifest.json: 17825794 bytes, more than the limit"),
    # --- top-level fields ---
    "unknown-top-key": (top("exec", "rm -rf"), "'exec': unknown top-level key"),
    "format": (top("format", "onnx"), "format: expected 'csdformer-spiking-model'"),
    "schema-version-2": (top("schema_version", 2), "schema_version: unknown schema version 2"),
    "schema-version-true": (top("schema_version", True), "schema_version: unknown schema version True"),
    "T-true": (top("T", True), "T: must be an integer"),
    "T-zero": (top("T", 0), "T: must be an integer >= 1"),
    "T-1000": (top("T", 1000), "T: must be an integer >= 1 and <= 64, got 1000"),
    "T-1e7": (top("T", 10**7), "T: must be an integer >= 1 and <= 64, got 10000000"),
    "T-float": (top("T", 4.0), "T: must be an integer"),
    "T-string": (top("T", "4"), "T: must be an integer"),
    "delay-T": (top("delay", 4), "delay: must be an integer in 0..T-1 = 0..3, got 4"),
    "delay-negative": (top("delay", -1), "delay: must be an integer in 0..T-1"),
    "delay-true": (top("delay", True), "delay: must be an integer in 0..T-1"),
    "weight-bits-64": (top("weight_bits", 64), "weight_bits: must be an integer in 2..32"),
    "weight-bits-1": (top("weight_bits", 1), "weight_bits: must be an integer in 2..32"),
    "num-classes-11": (top("num_classes", 11), "output: head gives (10,) logits, num_classes is 11"),
    "num-classes-false": (top("num_classes", False), "num_classes: must be an integer"),
    "name-empty": (top("name", ""), "name: must be a printable string"),
    "name-newline": (top("name", "a\nb"), "name: must be a printable string"),
    "model-list": (top("model", [1, 2]), "model: expected an object"),
    "metrics-string": (top("metrics", "great"), "metrics: expected an object"),
    "output-not-head": (top("output", "rpe"), "output: must name a 'head' layer, got 'rpe'"),
    "output-image": (top("output", "image"), "output: must name a 'head' layer, got 'image'"),
    "output-missing": (lambda m, a, d: m.pop("output"), "output: missing key"),
    # --- input ---
    "input-list": (top("input", [1, 8, 8]), "input: expected an object"),
    "input-missing-key": (lambda m, a, d: m["input"].pop("channels"), "input.channels: missing key"),
    "input-4096x4096": (lambda m, a, d: m["input"].update(height=4096, width=4096),
                        "input: 1x4096x4096 pixels, more than the limit 4194304"),
    "input-height-bool": (inp("height", True), "input.height: must be an integer"),
    "input-max-value-2^62": (inp("max_value", 2**62), "input.max_value: must be an integer in 1..2147483647"),
    "input-max-value-2^24": (inp("max_value", 2**24), "layers[0](stages.0).bounds.frame: range -11425284096..10552868864 needs 35 signed bits"),
    "input-scale-negative": (inp("scale", -1.0), "input.scale: must be a finite number > 0"),
    "input-scale-string": (inp("scale", "1/16"), "input.scale: must be a finite number > 0"),
    "input-dataset-int": (inp("dataset", 5), "input.dataset: must be a string"),
    "input-unknown-key": (inp("colour", "rgb"), "input.'colour': unknown key"),
    # --- layer structure ---
    "layers-object": (top("layers", {"a": 1}), "layers: expected a list"),
    "layers-empty": (top("layers", []), "layers: empty"),
    "layer-is-list": (lambda m, a, d: m["layers"].__setitem__(3, [1, 2]), "layers[3]: expected an object"),
    "layer-name-duplicate": (dup_name, "layers[1].name: must be a unique name"),
    "layer-name-int": (layer(5, "name", 5), "layers[5].name: must be a name"),
    "layer-name-newline": (layer(5, "name", "rpe\nquant"), "layers[5].name: must be a name"),
    "layer-kind-unknown": (layer(3, "kind", "softmax"), "layers[3](stages.1).kind: unknown layer kind 'softmax'"),
    "layer-kind-list": (layer(3, "kind", ["conv"]), "layers[3](stages.1).kind: unknown layer kind"),
    "layer-unknown-key": (layer(3, "code", "import os"), "layers[3].'code': unknown key"),
    "inputs-later": (layer(3, "inputs", ["tokens"]), "layers[3](stages.1).inputs[0]: unknown or later tensor 'tokens'"),
    "inputs-count": (layer(ADD, "inputs", ["tokens"]), "layers[7](rpe_add).inputs: add takes 2 input(s), got 1"),
    "inputs-string": (layer(3, "inputs", "stages.1.pool"), "layers[3](stages.1).inputs: expected a list"),
    "inputs-kind": (layer(Q0, "inputs", ["image"]), "layers[1](stages.1.quant).inputs[0]: dif needs current"),
    "attrs-list": (layer(3, "attrs", [1, 2]), "layers[3](stages.1).attrs: expected an object"),
    "attrs-unknown": (attr(3, "dilation", 2), "layers[3](stages.1).attrs: unknown attribute(s)"),
    "attr-missing": (lambda m, a, d: m["layers"][3]["attrs"].pop("stride"), "layers[3](stages.1).stride: missing attribute"),
    "stride-true": (attr(3, "stride", True), "layers[3](stages.1).stride: expected an integer"),
    "stride-zero": (attr(3, "stride", 0), "layers[3](stages.1).stride: expected an integer in 1..65536, got 0"),
    "padding-1e6": (attr(3, "padding", 10**6), "layers[3](stages.1).padding: expected an integer in 0..65536"),
    "layout-unknown": (attr(3, "layout", "nhwc"), "layers[3](stages.1).layout: expected 'grid' or 'tokens'"),
    "grid-wrong": (attr(RPE, "grid", [4, 0]), "layers[6](rpe).grid: expected [height, width]"),
    "pool-kernel-16": (pool_too_big, "layers[2](stages.1.pool).shape: dimensions must be integers in 1..65536"),
    "pool-kernel-16-stated": (pool_too_big_consistent, "layers[2](stages.1.pool).kernel: kernel 16"),
    "shift-60": (attr(SCORES, "shift", 60), "layers[15](blocks.0.attn.scores).shift: expected an integer in 0..31"),
    "shift-31": (lambda m, a, d: [attr(SCORES, "shift", 31)(m, a, d), [la.pop("bounds") for la in m["layers"]]],
                 "layers[15](blocks.0.attn.scores).bounds.frame: range"),
    "heads-3": (attr(SCORES, "heads", 3), "layers[15](blocks.0.attn.scores).inputs: q (16, 16) and k (16, 16)"),
    "operands-unknown": (attr(SCORES, "operands", "qk"), "layers[15](blocks.0.attn.scores).operands"),
    "shape-strings": (layer(LQ, "shape", ["16", "16"]), "layers[9](blocks.0.attn.q).shape: dimensions must be integers"),
    "shape-wrong": (layer(LQ, "shape", [16, 17]), "layers[9](blocks.0.attn.q).shape: stated (16, 17)"),
    "zero-size-layer": (zero_size, "layers[9](blocks.0.attn.q).arrays.weight.shape: expected a list of at most 4 positive"),
    # --- arrays: references, dtypes, values ---
    "arrays-list": (layer(LQ, "arrays", ["weight"]), "layers[9](blocks.0.attn.q).arrays: expected an object"),
    "array-ref-no-dtype": (lambda m, a, d: m["layers"][LQ]["arrays"]["weight"].pop("dtype"),
                           "layers[9](blocks.0.attn.q).arrays.weight.dtype: missing key"),
    "array-unexpected": (lambda m, a, d: m["layers"][POOL]["arrays"].update(weight={"key": "x", "dtype": "int8", "shape": [1]}),
                         "layers[2](stages.1.pool).arrays: unexpected array 'weight' for kind 'maxpool'"),
    "array-missing-member": (missing_member, "layers[9](blocks.0.attn.q).bias: array 'blocks.0.attn.q/bias' missing"),
    "array-key-twice": (key_twice, "layers[11](blocks.0.attn.k).bias: array 'blocks.0.attn.k/bias' is named twice"),
    "array-float32": (with_array(LQ, "weight", lambda w: w.astype(np.float32)),
                      "layers[9](blocks.0.attn.q).weight: dtype must be an integer type, got float32"),
    "array-uint64": (with_array(LQ, "bias", lambda b: b.astype(np.uint64)),
                     "layers[9](blocks.0.attn.q).arrays.bias.dtype: must be one of int8"),
    "array-bool": (with_array(LQ, "weight", lambda w: w > 0), "layers[9](blocks.0.attn.q).weight: dtype must be an integer type, got bool"),
    "array-5-dims": (five_dims, "layers[9](blocks.0.attn.q).arrays.weight.shape"),
    "array-shape-disagrees": (manifest_npz_shape_disagree, "layers[9](blocks.0.attn.q).weight: manifest says shape (16, 15)"),
    "array-dtype-disagrees": (manifest_npz_dtype_disagree, "layers[9](blocks.0.attn.q).weight: manifest says dtype uint8, arrays.npz has 'int8'"),
    "array-big-endian": (big_endian, "layers[9](blocks.0.attn.q).bias: manifest says dtype int32, arrays.npz has '>i4'"),
    "weight-outside-bits": (weight_outside, "layers[9](blocks.0.attn.q).weight: values -127..500 exceed 8-bit range"),
    "head-bias-2^63-1": (head_bias_max, "layers[27](head).bias: values"),
    "head-bias-2^31-1": (head_bias_31, "layers[27](head).bounds.frame: range"),
    "threshold-2^40": (big_threshold, "layers[5](rpe_quant).threshold: values"),
    "threshold-zero": (dif_value("threshold", 0), "layers[5](rpe_quant).threshold: must be > 0 (found 0)"),
    "threshold-negative": (dif_value("threshold", -7), "layers[5](rpe_quant).threshold: must be > 0 (found -7)"),
    "v0-at-threshold": (dif_value("v0", 10**6), "layers[5](rpe_quant).v0: must satisfy 0 <= v0 < threshold"),
    "v0-negative": (dif_value("v0", -1), "layers[5](rpe_quant).v0: must satisfy 0 <= v0 < threshold"),
    "threshold-shape": (with_array(RPEQ, "threshold", lambda t: np.ones((3,), np.int32)),
                        "layers[5](rpe_quant).threshold: shape (3,) does not broadcast to (16, 16)"),
    "bounds-stated-wrong": (stated_bounds, "layers[9](blocks.0.attn.q).bounds.frame: stated [-997, 954] but the arrays give [-997, 953]"),
    "bounds-list": (layer(LQ, "bounds", [1, 2]), "layers[9](blocks.0.attn.q).bounds: expected an object"),
    # --- arrays.npz ---
    "npz-extra-member": (extra_member, "arrays.npz: member 'evil/extra' is not named by the manifest"),
    "npz-text-member": (npz_raw(npz_text_member), "arrays.npz: unexpected member 'README.txt'"),
    "npz-missing": (npz_missing, "arrays.npz: missing file"),
    "npz-folder": (npz_folder, "arrays.npz: not a file"),
    "npz-truncated": (npz_truncated, "arrays.npz: truncated or corrupt"),
    "npz-not-zip": (npz_not_zip, "arrays.npz: truncated or corrupt (BadZipFile"),
    "npz-bad-crc": (npz_raw(npz_corrupt_member), "arrays.npz: member 'stages.0/bias' truncated or corrupt (BadZipFile"),
    "npz-pickled-member": (npz_raw(npz_pickled_member), "layers[0](stages.0).bias: manifest says dtype int32, arrays.npz has 'object'"),
    "npz-64GiB-header": (npz_raw(huge_header), "layers[0](stages.0).weight: manifest says shape (8, 1, 3, 3), arrays.npz has (68719476736,)"),
    "npz-64GiB-declared": (huge_header_declared, "layers[0](stages.0).arrays.weight.shape: expected a list"),
    "npz-zip-bomb": (npz_raw(zip_bomb(True)), "layers[0](stages.0).bias: arrays.npz member 'stages.0/bias' holds 1073741824 bytes"),
    "npz-zip-bomb-unnamed": (npz_raw(zip_bomb(False)), "arrays.npz: member 'bomb' is not named by the manifest"),
}

#: Also through ``csdformer rtl ART -o OUT`` (the hardware sizes registers from the bounds).
RTL_CASES = ["T-1000", "T-true", "shift-60", "shift-31", "head-bias-2^63-1", "head-bias-2^31-1", "array-uint64",
             "input-max-value-2^62", "pool-kernel-16", "zero-size-layer", "threshold-2^40", "npz-64GiB-header"]
#: Also alone in a fresh process (the memory and time blow-ups of issue 16).
ALONE_CASES = ["npz-64GiB-header", "npz-zip-bomb", "input-4096x4096", "T-1e7", "manifest-5000-digits",
               "manifest-deep-nesting"]


@pytest.fixture(scope="module")
def cases(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("hostile-artifacts")
    return {cid: write_case(root / cid, mutate) for cid, (mutate, _) in CASES.items()}


@pytest.fixture(scope="module")
def eval_results(cases: dict[str, Path]) -> tuple[dict, dict, dict]:
    root = next(iter(cases.values())).parent.parent
    return run_watched({cid: ["eval", str(d), "--data", "digits"] for cid, d in cases.items()}, root)


@pytest.fixture(scope="module")
def rtl_results(cases: dict[str, Path]) -> tuple[dict, dict, dict]:
    pytest.importorskip("amaranth")
    root = next(iter(cases.values())).parent.parent
    return run_watched({cid: ["rtl", str(cases[cid]), "-o", str(cases[cid].parent / "rtl-out")] for cid in RTL_CASES},
                       root)


def test_case_count() -> None:
    assert len(CASES) >= 50


@pytest.mark.parametrize("cid", list(CASES))
def test_eval_refuses(cid: str, eval_results) -> None:
    res, before, after = eval_results
    check_one_line_error(res[cid], CASES[cid][1])
    written = {p for p in set(after) ^ set(before) if p.startswith(cid + "/")}
    changed = {p for p in before if p.startswith(cid + "/") and after.get(p) != before[p]}
    assert not written and not changed, (written, changed)


@pytest.mark.parametrize("cid", RTL_CASES)
def test_rtl_refuses(cid: str, rtl_results, cases: dict[str, Path]) -> None:
    res, before, after = rtl_results
    check_one_line_error(res[cid], CASES[cid][1])
    assert not (cases[cid].parent / "rtl-out").exists()
    assert before == after


@pytest.mark.parametrize("cid", ALONE_CASES)
def test_alone_under_limits(cid: str, cases: dict[str, Path]) -> None:
    root = cases[cid].parent
    before = snapshot(root)
    res = run_alone(["eval", str(cases[cid]), "--data", "digits"], root)
    check_one_line_error(res, CASES[cid][1])
    assert snapshot(root) == before


def test_shipped_artifacts_still_load() -> None:
    from csdformer.artifact import load, shipped_models

    for name in shipped_models():
        load(resolve_artifact(name))
