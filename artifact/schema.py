"""The spiking model artifact: typed, versioned, validated. Torch-free.

An artifact is a list of layers in execution order. Each layer produces one tensor, named by the
layer, and reads tensors named by earlier layers (or ``image``). Every tensor is either integer
``current`` frames or binary ``spikes`` frames, ``T`` of them (the window domain, SPEC §5); the
shapes stored here exclude the time axis. The format is documented in ``docs/artifact.md``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import CsdformerError

FORMAT = "csdformer-spiking-model"
SCHEMA_VERSION = 1

# ---------------------------------------------------------------------------------------------
# Limits (docs/artifact.md, "Limits"). Everything an artifact states is checked against these
# before anything is allocated or computed from it; the bounds are exact Python integers.

#: Largest time window: the link's T field is one byte (255); 64 keeps the golden model's
#: ``T`` frames per tensor small (the paper's models use T <= 16).
MAX_T = 64
#: Signed bits of every stored value and every bound (frame, total, potential, logits): the
#: accelerator's registers are at most 32 bits wide, and the golden model's int64 arithmetic is
#: then exact with room to spare.
MAX_BITS = 32
#: Elements of any one tensor frame (the input image included), and of any one array.
MAX_TENSOR_ELEMENTS = 1 << 22
#: Bytes of all arrays together (uncompressed), checked from the npz headers before reading.
MAX_ARRAY_BYTES = 256 << 20
#: Layers in one artifact.
MAX_LAYERS = 4096
#: Any integer attribute (stride, padding, kernel, heads, grid) and any stated dimension.
MAX_ATTR = 1 << 16
#: ``tdec_matmul`` shift.
MAX_SHIFT = 31
#: Classes of the output layer.
MAX_CLASSES = 1 << 16
#: Array dtypes an artifact may use (numpy names; no uint64, which could wrap in int64).
DTYPES = ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32")
_VALUE_MAX = (1 << (MAX_BITS - 1)) - 1
_NAME = __import__("re").compile(r"^[A-Za-z0-9_.:+-]{1,128}$")


def is_int(v: Any) -> bool:
    """A Python integer that is not a ``bool``."""
    return isinstance(v, int) and not isinstance(v, bool)


def short(v: Any, n: int = 60) -> str:
    """``repr(v)``, cut to ``n`` characters (error messages stay one short line)."""
    try:
        r = repr(v) if not (is_int(v) and abs(v) >= 10**30) else f"<integer of {len(str(abs(v)))} digits>"
    except ValueError:  # an integer beyond Python's digit limit
        r = "<a huge integer>"
    return r if len(r) <= n else r[: n - 3] + "..."

#: Layer kinds, with what they read and write. Order of ``inputs`` matters.
KIND_IO: dict[str, tuple[tuple[str, ...], str]] = {
    "encode_conv": (("image",), "current"),
    "conv": (("spikes",), "current"),
    "linear": (("spikes",), "current"),
    "head": (("spikes",), "current"),
    "dif": (("current",), "spikes"),
    "maxpool": (("spikes",), "spikes"),
    "flatten": (("any",), "same"),
    "add": (("current", "current"), "current"),
    "tdec_matmul": (("spikes", "spikes"), "current"),
}

#: Arrays each kind carries.
KIND_ARRAYS: dict[str, tuple[str, ...]] = {
    "encode_conv": ("weight", "bias"),
    "conv": ("weight", "bias"),
    "linear": ("weight", "bias"),
    "head": ("weight", "bias"),
    "dif": ("threshold", "v0"),
    "maxpool": (),
    "flatten": (),
    "add": (),
    "tdec_matmul": (),
}

#: Required attributes of each kind and their checks.
KIND_ATTRS: dict[str, dict[str, str]] = {
    "encode_conv": {"stride": "pos_int", "padding": "nonneg_int"},
    "conv": {"stride": "pos_int", "padding": "nonneg_int", "layout": "layout"},
    "linear": {},
    "head": {},
    "dif": {},
    "maxpool": {"kernel": "pos_int", "stride": "pos_int", "padding": "nonneg_int"},
    "flatten": {},
    "add": {},
    "tdec_matmul": {"operands": "operands", "heads": "pos_int", "shift": "shift"},
}
OPTIONAL_ATTRS: dict[str, dict[str, str]] = {"conv": {"grid": "grid"}}


class ArtifactError(CsdformerError):
    """The artifact is malformed; the message names the field."""


@dataclass(frozen=True)
class InputSpec:
    """The image the encoding layer reads: unsigned integer pixels ``0..max_value``.

    The float model saw ``pixel * scale``; that scale is folded into the encoding weights.
    """

    channels: int
    height: int
    width: int
    max_value: int
    scale: float
    dataset: str

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.channels, self.height, self.width)


@dataclass
class Layer:
    name: str
    kind: str
    inputs: tuple[str, ...]
    shape: tuple[int, ...]
    attrs: dict[str, Any] = field(default_factory=dict)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass
class Artifact:
    """A converted spiking model: everything the golden model and the RTL generator read."""

    name: str
    T: int
    delay: int
    input: InputSpec
    num_classes: int
    weight_bits: int
    layers: list[Layer]
    output: str
    model: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    created_by: str = ""

    def layer(self, name: str) -> Layer:
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise KeyError(name)

    @property
    def spiking_layers(self) -> list[Layer]:
        """Layers whose output is a spike tensor made by neurons (``dif``)."""
        return [layer for layer in self.layers if layer.kind == "dif"]

    def tensor_kinds(self) -> dict[str, str]:
        kinds = {"image": "image"}
        for layer in self.layers:
            out = KIND_IO[layer.kind][1]
            kinds[layer.name] = kinds[layer.inputs[0]] if out == "same" else out
        return kinds

    def validate(self) -> "Artifact":
        validate(self)
        return self


# ---------------------------------------------------------------------------------------------
# Validation


def _check_attr(where: str, value: Any, check: str) -> None:
    ok = {
        "pos_int": lambda v: is_int(v) and 1 <= v <= MAX_ATTR,
        "nonneg_int": lambda v: is_int(v) and 0 <= v <= MAX_ATTR,
        "shift": lambda v: is_int(v) and 0 <= v <= MAX_SHIFT,
        "layout": lambda v: isinstance(v, str) and v in ("grid", "tokens"),
        "operands": lambda v: isinstance(v, str) and v in ("q_kT", "attn_v"),
        "grid": lambda v: isinstance(v, (list, tuple)) and len(v) == 2
        and all(is_int(x) and 1 <= x <= MAX_ATTR for x in v),
    }[check](value)
    if not ok:
        expect = {
            "pos_int": f"an integer in 1..{MAX_ATTR}",
            "nonneg_int": f"an integer in 0..{MAX_ATTR}",
            "shift": f"an integer in 0..{MAX_SHIFT}",
            "layout": "'grid' or 'tokens'",
            "operands": "'q_kT' or 'attn_v'",
            "grid": "[height, width] of positive integers",
        }[check]
        raise ArtifactError(f"{where}: expected {expect}, got {short(value)}")


def _int_array(where: str, arr: Any, ndim: int | None = None) -> np.ndarray:
    if not isinstance(arr, np.ndarray):
        raise ArtifactError(f"{where}: missing array")
    if not np.issubdtype(arr.dtype, np.integer):
        raise ArtifactError(f"{where}: dtype must be an integer type, got {arr.dtype}")
    if arr.dtype.name not in DTYPES:
        raise ArtifactError(f"{where}: dtype {arr.dtype} not allowed (allowed: {', '.join(DTYPES)})")
    if ndim is not None and arr.ndim != ndim:
        raise ArtifactError(f"{where}: expected {ndim} dimensions, got shape {arr.shape}")
    if arr.ndim > 4:
        raise ArtifactError(f"{where}: at most 4 dimensions, got shape {arr.shape}")
    if arr.size == 0:
        raise ArtifactError(f"{where}: empty array (shape {arr.shape})")
    if arr.size > MAX_TENSOR_ELEMENTS:
        raise ArtifactError(f"{where}: {arr.size} elements, more than the limit {MAX_TENSOR_ELEMENTS}")
    return arr


def _value_range(where: str, arr: np.ndarray, lo: int = -_VALUE_MAX, hi: int = _VALUE_MAX) -> tuple[int, int]:
    """Exact min and max of an integer array, checked to lie in ``lo..hi``."""
    amin, amax = int(arr.min()), int(arr.max())
    if amin < lo or amax > hi:
        raise ArtifactError(f"{where}: values {amin}..{amax} outside {lo}..{hi}")
    return amin, amax


def _conv_out(size: int, kernel: int, stride: int, padding: int) -> int:
    return (size + 2 * padding - kernel) // stride + 1


def _infer_shape(a: "Artifact", layer: Layer, in_shapes: list[tuple[int, ...]], where: str) -> tuple[int, ...]:
    """Output shape of a layer from its input shapes, attributes and arrays (also checks them)."""
    k = layer.kind
    ar = layer.arrays
    if k in ("encode_conv", "conv"):
        w = _int_array(f"{where}.weight", ar.get("weight"), 4)
        co, ci, kh, kw = w.shape
        if kh != kw:
            raise ArtifactError(f"{where}.weight: kernel must be square, got shape {w.shape}")
        if k == "conv" and layer.attrs["layout"] == "tokens":
            grid = layer.attrs.get("grid")
            if grid is None:
                raise ArtifactError(f"{where}.grid: required when layout is 'tokens'")
            n, c = in_shapes[0] if len(in_shapes[0]) == 2 else (None, None)
            if n is None or n != grid[0] * grid[1]:
                raise ArtifactError(f"{where}.inputs: tokens of shape {in_shapes[0]} do not fill grid {grid}")
            c_in, h, wd = c, grid[0], grid[1]
        else:
            if len(in_shapes[0]) != 3:
                raise ArtifactError(f"{where}.inputs: expected a (C, H, W) tensor, got shape {in_shapes[0]}")
            c_in, h, wd = in_shapes[0]
        if ci != c_in:
            raise ArtifactError(f"{where}.weight: expects {ci} input channels, input has {c_in}")
        s, p = layer.attrs["stride"], layer.attrs["padding"]
        ho, wo = _conv_out(h, kh, s, p), _conv_out(wd, kw, s, p)
        if ho < 1 or wo < 1:
            raise ArtifactError(f"{where}: output would be empty ({ho}x{wo})")
        _bias(where, ar, co)
        if k == "conv" and layer.attrs["layout"] == "tokens":
            if (ho, wo) != tuple(layer.attrs["grid"]):
                raise ArtifactError(f"{where}: a token-layout conv must keep the grid size")
            return (ho * wo, co)
        return (co, ho, wo)
    if k in ("linear", "head"):
        w = _int_array(f"{where}.weight", ar.get("weight"), 2)
        m, kk = w.shape
        if len(in_shapes[0]) != 2 or in_shapes[0][1] != kk:
            raise ArtifactError(f"{where}.weight: shape {w.shape} does not fit input tokens {in_shapes[0]}")
        _bias(where, ar, m)
        return (in_shapes[0][0], m) if k == "linear" else (m,)
    if k == "dif":
        shape = in_shapes[0]
        th = _int_array(f"{where}.threshold", ar.get("threshold"))
        v0 = _int_array(f"{where}.v0", ar.get("v0"))
        for nm, arr in (("threshold", th), ("v0", v0)):
            try:
                np.broadcast_shapes(arr.shape, shape)
                if np.broadcast_shapes(arr.shape, shape) != tuple(shape):
                    raise ValueError
            except ValueError:
                raise ArtifactError(f"{where}.{nm}: shape {arr.shape} does not broadcast to {shape}") from None
        if int(th.min()) <= 0:
            raise ArtifactError(f"{where}.threshold: must be > 0 (found {int(th.min())})")
        _value_range(f"{where}.threshold", th)
        _value_range(f"{where}.v0", v0)
        # compared over the two arrays' own broadcast shape (at most the tensor's), never allocating more
        tb, vb = np.broadcast_arrays(th, v0)
        if int(v0.min()) < 0 or bool(np.any(vb >= tb)):
            raise ArtifactError(f"{where}.v0: must satisfy 0 <= v0 < threshold")
        return shape
    if k == "maxpool":
        if len(in_shapes[0]) != 3:
            raise ArtifactError(f"{where}.inputs: expected a (C, H, W) tensor, got shape {in_shapes[0]}")
        c, h, wd = in_shapes[0]
        kk, s, p = layer.attrs["kernel"], layer.attrs["stride"], layer.attrs["padding"]
        if 2 * p > kk:
            raise ArtifactError(f"{where}.padding: must be at most kernel/2")
        ho, wo = _conv_out(h, kk, s, p), _conv_out(wd, kk, s, p)
        if ho < 1 or wo < 1:
            raise ArtifactError(f"{where}.kernel: kernel {kk} (padding {p}) does not fit the {h}x{wd} input "
                                f"(output would be {ho}x{wo})")
        return (c, ho, wo)
    if k == "flatten":
        if len(in_shapes[0]) != 3:
            raise ArtifactError(f"{where}.inputs: expected a (C, H, W) tensor, got shape {in_shapes[0]}")
        c, h, wd = in_shapes[0]
        return (h * wd, c)
    if k == "add":
        if in_shapes[0] != in_shapes[1]:
            raise ArtifactError(f"{where}.inputs: shapes differ: {in_shapes[0]} and {in_shapes[1]}")
        return in_shapes[0]
    if k == "tdec_matmul":
        heads = layer.attrs["heads"]
        sa, sb = in_shapes
        if layer.attrs["operands"] == "q_kT":
            if len(sa) != 2 or sa != sb or sa[1] % heads:
                raise ArtifactError(f"{where}.inputs: q {sa} and k {sb} must be equal (N, C) with C divisible by heads")
            return (heads, sa[0], sa[0])
        if len(sa) != 3 or len(sb) != 2 or sa[0] != heads or sa[1] != sa[2] or sa[2] != sb[0] or sb[1] % heads:
            raise ArtifactError(f"{where}.inputs: attn {sa} and v {sb} do not fit (heads, N, N) x (N, C)")
        return sb
    raise ArtifactError(f"{where}.kind: unknown layer kind {k!r}")


def _bias(where: str, ar: dict[str, np.ndarray], n: int) -> None:
    b = _int_array(f"{where}.bias", ar.get("bias"), 1)
    if b.shape != (n,):
        raise ArtifactError(f"{where}.bias: expected shape ({n},), got {b.shape}")
    _value_range(f"{where}.bias", b)


def _check_shape(where: str, shape: Any) -> tuple[int, ...]:
    """A tensor shape: a list of 1..4 integers, each in 1..MAX_ATTR, with at most MAX_TENSOR_ELEMENTS elements."""
    if not isinstance(shape, (list, tuple)) or not 1 <= len(shape) <= 4:
        raise ArtifactError(f"{where}: expected a list of 1 to 4 dimensions, got {short(shape)}")
    n = 1
    for d in shape:
        if not is_int(d) or not 1 <= d <= MAX_ATTR:
            raise ArtifactError(f"{where}: dimensions must be integers in 1..{MAX_ATTR}, got {short(shape)}")
        n *= d
    if n > MAX_TENSOR_ELEMENTS:
        raise ArtifactError(f"{where}: {short(tuple(shape))} has {n} elements, more than the limit {MAX_TENSOR_ELEMENTS}")
    return tuple(shape)


def validate(a: Artifact) -> None:
    """Check every field of an artifact; raise :class:`ArtifactError` naming the first bad one.

    Types (a ``bool`` is not an integer), ranges against the limits above, shapes derived layer by
    layer, array dtypes and values, and finally the exact bounds (:func:`bounds`) against
    :data:`MAX_BITS`. Nothing is allocated in proportion to a stated shape.
    """
    if not isinstance(a.name, str) or not a.name or len(a.name) > 200 or not a.name.isprintable():
        raise ArtifactError(f"name: must be a printable string of 1..200 characters, got {short(a.name)}")
    if not isinstance(a.created_by, str):
        raise ArtifactError(f"created_by: must be a string, got {short(a.created_by)}")
    if not is_int(a.T) or not 1 <= a.T <= MAX_T:
        raise ArtifactError(f"T: must be an integer >= 1 and <= {MAX_T}, got {short(a.T)}")
    if not is_int(a.delay) or not 0 <= a.delay <= a.T - 1:
        raise ArtifactError(f"delay: must be an integer in 0..T-1 = 0..{a.T - 1}, got {short(a.delay)}")
    if not is_int(a.weight_bits) or not 2 <= a.weight_bits <= MAX_BITS:
        raise ArtifactError(f"weight_bits: must be an integer in 2..{MAX_BITS}, got {short(a.weight_bits)}")
    if not is_int(a.num_classes) or not 1 <= a.num_classes <= MAX_CLASSES:
        raise ArtifactError(f"num_classes: must be an integer in 1..{MAX_CLASSES}, got {short(a.num_classes)}")
    if not isinstance(a.model, dict):
        raise ArtifactError(f"model: expected an object, got {type(a.model).__name__}")
    if not isinstance(a.metrics, dict):
        raise ArtifactError(f"metrics: expected an object, got {type(a.metrics).__name__}")
    i = a.input
    for nm in ("channels", "height", "width"):
        v = getattr(i, nm)
        if not is_int(v) or not 1 <= v <= MAX_ATTR:
            raise ArtifactError(f"input.{nm}: must be an integer in 1..{MAX_ATTR}, got {short(v)}")
    if i.channels * i.height * i.width > MAX_TENSOR_ELEMENTS:
        raise ArtifactError(f"input: {i.channels}x{i.height}x{i.width} pixels, more than the limit {MAX_TENSOR_ELEMENTS}")
    if not is_int(i.max_value) or not 1 <= i.max_value <= _VALUE_MAX:
        raise ArtifactError(f"input.max_value: must be an integer in 1..{_VALUE_MAX}, got {short(i.max_value)}")
    if not isinstance(i.scale, (int, float)) or isinstance(i.scale, bool) or not 0 < i.scale < float("inf"):
        raise ArtifactError(f"input.scale: must be a finite number > 0, got {short(i.scale)}")
    if not isinstance(i.dataset, str):
        raise ArtifactError(f"input.dataset: must be a string, got {short(i.dataset)}")
    if not isinstance(a.layers, list) or not a.layers:
        raise ArtifactError("layers: empty")
    if len(a.layers) > MAX_LAYERS:
        raise ArtifactError(f"layers: {len(a.layers)} layers, more than the limit {MAX_LAYERS}")
    shapes: dict[str, tuple[int, ...]] = {"image": i.shape}
    kinds: dict[str, str] = {"image": "image"}
    wmax = 2 ** (a.weight_bits - 1) - 1
    for idx, layer in enumerate(a.layers):
        if not isinstance(layer.name, str) or not _NAME.match(layer.name) or layer.name in shapes:
            raise ArtifactError(f"layers[{idx}].name: must be a unique name of 1..128 letters, digits and _.:+-, "
                                f"got {short(layer.name)}")
        where = f"layers[{idx}]({layer.name})"
        if not isinstance(layer.kind, str) or layer.kind not in KIND_IO:
            raise ArtifactError(f"{where}.kind: unknown layer kind {short(layer.kind)}")
        want_in, out_kind = KIND_IO[layer.kind]
        if not isinstance(layer.inputs, (list, tuple)) or len(layer.inputs) != len(want_in):
            n = len(layer.inputs) if isinstance(layer.inputs, (list, tuple)) else short(layer.inputs)
            raise ArtifactError(f"{where}.inputs: {layer.kind} takes {len(want_in)} input(s), got {n}")
        for j, (src, want) in enumerate(zip(layer.inputs, want_in)):
            if not isinstance(src, str) or src not in shapes:
                raise ArtifactError(f"{where}.inputs[{j}]: unknown or later tensor {short(src)}")
            if want != "any" and kinds[src] != want:
                raise ArtifactError(f"{where}.inputs[{j}]: {layer.kind} needs {want}, {src!r} is {kinds[src]}")
        if not isinstance(layer.attrs, dict):
            raise ArtifactError(f"{where}.attrs: expected an object, got {type(layer.attrs).__name__}")
        known = set(KIND_ATTRS[layer.kind]) | set(OPTIONAL_ATTRS.get(layer.kind, {}))
        extra = [k for k in layer.attrs if k not in known]
        if extra:
            raise ArtifactError(f"{where}.attrs: unknown attribute(s) {short(sorted(map(str, extra)))} for {layer.kind}")
        for nm, check in KIND_ATTRS[layer.kind].items():
            if nm not in layer.attrs:
                raise ArtifactError(f"{where}.{nm}: missing attribute")
            _check_attr(f"{where}.{nm}", layer.attrs[nm], check)
        for nm, check in OPTIONAL_ATTRS.get(layer.kind, {}).items():
            if layer.attrs.get(nm) is not None:
                _check_attr(f"{where}.{nm}", layer.attrs[nm], check)
        if not isinstance(layer.arrays, dict):
            raise ArtifactError(f"{where}.arrays: expected an object, got {type(layer.arrays).__name__}")
        unknown = set(layer.arrays) - set(KIND_ARRAYS[layer.kind])
        if unknown:
            raise ArtifactError(f"{where}.arrays: unexpected array(s) {short(sorted(map(str, unknown)))}")
        for nm in KIND_ARRAYS[layer.kind]:
            if nm not in layer.arrays:
                raise ArtifactError(f"{where}.{nm}: missing array")
            _int_array(f"{where}.{nm}", layer.arrays[nm])
        stated = _check_shape(f"{where}.shape", layer.shape)
        shape = _infer_shape(a, layer, [shapes[s] for s in layer.inputs], where)
        if stated != tuple(shape):
            raise ArtifactError(f"{where}.shape: stated {stated}, inputs and arrays give {tuple(shape)}")
        if "weight" in layer.arrays:
            w = layer.arrays["weight"]
            if int(w.min()) < -wmax or int(w.max()) > wmax:
                raise ArtifactError(f"{where}.weight: values {int(w.min())}..{int(w.max())} exceed "
                                    f"{a.weight_bits}-bit range ±{wmax}")
        shapes[layer.name] = tuple(shape)
        kinds[layer.name] = kinds[layer.inputs[0]] if out_kind == "same" else out_kind
    if not isinstance(a.output, str) or a.output not in shapes or a.output == "image" or a.layer(a.output).kind != "head":
        raise ArtifactError(f"output: must name a 'head' layer, got {short(a.output)}")
    if shapes[a.output] != (a.num_classes,):
        raise ArtifactError(f"output: head gives {shapes[a.output]} logits, num_classes is {a.num_classes}")
    for name, info in bounds(a).items():
        for key in ("frame", "total", "potential"):
            if key in info and signed_bits(*info[key]) > MAX_BITS:
                idx = next(j for j, la in enumerate(a.layers) if la.name == name)
                lo, hi = info[key]
                raise ArtifactError(f"layers[{idx}]({name}).bounds.{key}: range {lo}..{hi} needs "
                                    f"{signed_bits(lo, hi)} signed bits; the limit is {MAX_BITS}")


# ---------------------------------------------------------------------------------------------
# Value bounds: what the hardware sizes its widths from.


def signed_bits(lo: int, hi: int) -> int:
    """Bits of a two's-complement integer holding every value in ``lo..hi``."""
    lo, hi = min(int(lo), 0), max(int(hi), 0)
    lo_bits = (-lo - 1).bit_length() if lo < 0 else 0
    return max(lo_bits, hi.bit_length()) + 1


def _ranges(w: np.ndarray) -> tuple[list[int], list[int]]:
    """Per output row: sum of negative and of positive weights, as exact Python integers.

    The int64 row sums cannot wrap for a validated artifact (values of at most 32 bits, at most
    :data:`MAX_TENSOR_ELEMENTS` of them); the results are Python integers from then on.
    """
    w = w.reshape(w.shape[0], -1).astype(np.int64)
    return [int(x) for x in np.minimum(w, 0).sum(1)], [int(x) for x in np.maximum(w, 0).sum(1)]


def bounds(a: Artifact) -> dict[str, dict[str, Any]]:
    """Exact worst-case ranges of every layer's values, from the arrays alone.

    For a current tensor: ``frame`` (any single frame) and ``total`` (sum over the window).
    For a ``dif`` layer: ``potential`` (the membrane, at any step, before or after reset).
    Each range comes with the signed ``bits`` that hold it.
    """
    T = a.T
    out: dict[str, dict[str, Any]] = {}
    cur: dict[str, tuple[int, int, int, int]] = {}  # frame lo, hi; total lo, hi
    for layer in a.layers:
        k = layer.kind
        info: dict[str, Any] = {}
        if k in ("encode_conv", "conv", "linear", "head"):
            neg, pos = _ranges(layer.arrays["weight"])
            b = [int(x) for x in layer.arrays["bias"].astype(np.int64)]
            mult = a.input.max_value if k == "encode_conv" else 1
            if k == "head":
                mult = layer_in_rows(a, layer)
            neg, pos = [x * mult for x in neg], [x * mult for x in pos]
            # Frame 1 carries the bias; the encoding layer's whole current is in frame 1.
            f_lo = min(min(n + min(c, 0) for n, c in zip(neg, b)), 0)
            f_hi = max(max(p + max(c, 0) for p, c in zip(pos, b)), 0)
            frames = 1 if k == "encode_conv" else T
            t_lo, t_hi = min(n * frames + c for n, c in zip(neg, b)), max(p * frames + c for p, c in zip(pos, b))
            cur[layer.name] = (f_lo, f_hi, min(t_lo, 0), max(t_hi, 0))
            info["weight"] = [int(layer.arrays["weight"].min()), int(layer.arrays["weight"].max())]
            info["bias"] = [min(b), max(b)]
        elif k == "tdec_matmul":
            src = a.layer(layer.inputs[1])
            kk = src.shape[1] // layer.attrs["heads"] if layer.attrs["operands"] == "q_kT" else src.shape[0]
            sh = 1 << layer.attrs["shift"]
            cur[layer.name] = (0, kk * (2 * T - 1) * sh, 0, kk * T * T * sh)
        elif k == "add":
            x, y = cur[layer.inputs[0]], cur[layer.inputs[1]]
            cur[layer.name] = tuple(p + q for p, q in zip(x, y))  # type: ignore[assignment]
        elif k == "flatten" and layer.inputs[0] in cur:
            cur[layer.name] = cur[layer.inputs[0]]
        elif k == "dif":
            f_lo, f_hi, _, _ = cur[layer.inputs[0]]
            th, v0 = layer.arrays["threshold"], layer.arrays["v0"]
            p_lo = min(int(v0.min()), 0) + T * min(f_lo, 0)
            p_hi = int(v0.max()) + T * max(f_hi, 0)
            info["threshold"] = [int(th.min()), int(th.max())]
            info["v0"] = [int(v0.min()), int(v0.max())]
            info["potential"] = [p_lo, p_hi]
            info["potential_bits"] = signed_bits(p_lo, p_hi)
        if layer.name in cur:
            f_lo, f_hi, t_lo, t_hi = cur[layer.name]
            info["frame"] = [f_lo, f_hi]
            info["total"] = [t_lo, t_hi]
            info["frame_bits"] = signed_bits(f_lo, f_hi)
            info["total_bits"] = signed_bits(t_lo, t_hi)
        out[layer.name] = info
    return out


def layer_in_rows(a: Artifact, layer: Layer) -> int:
    """Tokens summed by a head layer (its input's first dimension)."""
    for other in a.layers:
        if other.name == layer.inputs[0]:
            return other.shape[0]
    raise KeyError(layer.inputs[0])

