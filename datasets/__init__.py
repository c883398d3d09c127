"""Image classification data sets as numpy arrays (torch-free).

``load(name, split, root)`` returns ``(images, labels)``: uint8 ``(N, C, H, W)`` pixels and
int64 ``(N,)`` labels. Pixels stay integers (``0..max_value``): the golden model and the hardware
read them as they are; the float model sees ``pixel / max_value``.

Sources
-------
digits
    scikit-learn's bundled 8x8 digits (values 0..16), with a fixed stratified 1437/360 split
    (:func:`digits_split`). scikit-learn is imported only when digits are loaded.
fashion_mnist
    The four idx files, raw or ``.gz``, in ``root``, else ``$CSDFORMER_FASHION_MNIST``, else
    ``/usr/share/datasets/fashion-mnist`` (Debian package ``dataset-fashion-mnist``).
cifar10, cifar100
    The python-pickle folders ``cifar-10-batches-py`` and ``cifar-100-python`` (fine labels);
    ``root`` (or ``$CSDFORMER_CIFAR10`` / ``$CSDFORMER_CIFAR100``) is that folder or its parent.
"""

from __future__ import annotations

import gzip
import os
import pickle
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from csdformer import CsdformerError

__all__ = ["NAMES", "SPLITS", "DatasetError", "DatasetInfo", "info", "load", "digits_split", "read_idx"]

NAMES = ("digits", "fashion_mnist", "cifar10", "cifar100")
SPLITS = ("train", "test")
FASHION_MNIST_DEFAULT = "/usr/share/datasets/fashion-mnist"
IDX_IMAGES_MAGIC = 2051  # 0x00000803: unsigned bytes, 3 dimensions
IDX_LABELS_MAGIC = 2049  # 0x00000801: unsigned bytes, 1 dimension

PathLike = str | os.PathLike[str]


class DatasetError(CsdformerError):
    """A data set cannot be found or read; the one-line message names the file or field."""


@dataclass(frozen=True)
class DatasetInfo:
    """Static shape of a data set.

    Attributes
    ----------
    name : str
        One of :data:`NAMES`.
    channels, height, width : int
        Image layout ``(C, H, W)``.
    max_value : int
        Largest pixel value (16 for digits, 255 otherwise).
    num_classes : int
        Labels lie in ``0..num_classes - 1``.
    """

    name: str
    channels: int
    height: int
    width: int
    max_value: int
    num_classes: int


_INFO = {
    "digits": DatasetInfo("digits", 1, 8, 8, 16, 10),
    "fashion_mnist": DatasetInfo("fashion_mnist", 1, 28, 28, 255, 10),
    "cifar10": DatasetInfo("cifar10", 3, 32, 32, 255, 10),
    "cifar100": DatasetInfo("cifar100", 3, 32, 32, 255, 100),
}
_CACHE: dict[tuple[str, str, str], tuple[np.ndarray, np.ndarray]] = {}


def info(name: str) -> DatasetInfo:
    """Return the :class:`DatasetInfo` of ``name``.

    Raises
    ------
    DatasetError
        If ``name`` is not one of :data:`NAMES`.
    """
    if name not in _INFO:
        raise DatasetError(f"data: unknown dataset {name!r} (known: {', '.join(NAMES)})")
    return _INFO[name]


def load(name: str, split: str = "train", root: PathLike | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Load one split of a data set.

    Parameters
    ----------
    name : str
        One of :data:`NAMES`.
    split : {"train", "test"}
    root : path, optional
        Data folder (ignored for digits); see the module docstring for defaults.

    Returns
    -------
    images : ndarray of uint8, shape (N, C, H, W)
    labels : ndarray of int64, shape (N,)

    Raises
    ------
    DatasetError
        Unknown name or split, missing folder or file, or a malformed file.

    Notes
    -----
    Each split is read once per process and data folder; later calls return fresh copies, so
    callers may modify (or ``torch.from_numpy``) the arrays freely.
    """
    info(name)
    if split not in SPLITS:
        raise DatasetError(f"split: must be 'train' or 'test', got {split!r}")
    resolve, read = _SOURCES[name]
    folder = resolve(root)
    key = (name, split, str(folder))
    if key not in _CACHE:
        x, y = read(split, folder)
        _check(name, x, y, folder or "scikit-learn")
        x.setflags(write=False)
        y.setflags(write=False)
        _CACHE[key] = (x, y)
    x, y = _CACHE[key]
    return x.copy(), y.copy()


def _check(name: str, x: np.ndarray, y: np.ndarray, where: object) -> None:
    """Check the loader output against :func:`info` (shape, dtypes, label range)."""
    di = info(name)
    shape = (di.channels, di.height, di.width)
    if x.dtype != np.uint8 or x.ndim != 4 or x.shape[1:] != shape:
        raise DatasetError(f"{name}: {where}: images are {x.dtype} {x.shape}, expected uint8 (N, {shape})")
    if y.dtype != np.int64 or y.shape != (len(x),):
        raise DatasetError(f"{name}: {where}: {len(x)} images but labels {y.dtype} {y.shape}")
    if y.size and (y.min() < 0 or y.max() >= di.num_classes):
        raise DatasetError(f"{name}: {where}: labels must lie in 0..{di.num_classes - 1}, "
                           f"got {y.min()}..{y.max()}")


def _user_path(root: PathLike) -> Path:
    return Path(root).expanduser().resolve()


# --- digits --------------------------------------------------------------------------------------

DIGITS_TEST_SIZE = 360  # 20 % of 1,797, rounded up


def digits_split(labels: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The fixed stratified train/test split of scikit-learn's 1,797 digits.

    Class ``c`` with ``n_c`` images gives ``floor(360 * n_c / N)`` test images; the classes with
    the largest remainders (ties: lower class first) give one more, so the total is exactly 360
    and each class's share is within one image of 20 % (this equals ``round(0.2 * n_c)`` except
    for class 1, which gets the one extra image). Which images: the first ``take_c`` of
    ``rng.permutation`` of the class's indices, one ``np.random.default_rng(0)`` drawn from for
    classes 0, 1, ..., 9 in order.

    Parameters
    ----------
    labels : ndarray of int, optional
        The digit labels in scikit-learn's order; loaded from scikit-learn when omitted.

    Returns
    -------
    train, test : ndarray of int64
        Sorted indices into the data set (so each split keeps scikit-learn's order); disjoint,
        together ``0..N-1``.
    """
    if labels is None:
        from sklearn.datasets import load_digits

        labels = load_digits().target
    labels = np.asarray(labels)
    counts = np.bincount(labels, minlength=10)
    quota = DIGITS_TEST_SIZE * counts / len(labels)
    take = np.floor(quota).astype(int)
    extra = np.argsort(-(quota - take), kind="stable")[: DIGITS_TEST_SIZE - take.sum()]
    take[extra] += 1
    rng = np.random.default_rng(0)
    test = np.concatenate([rng.permutation(np.flatnonzero(labels == c))[: take[c]] for c in range(len(counts))])
    test = np.sort(test).astype(np.int64)
    train = np.setdiff1d(np.arange(len(labels), dtype=np.int64), test)
    return train, test


def _digits_folder(root: PathLike | None) -> None:
    return None  # bundled with scikit-learn; root is ignored


def _read_digits(split: str, folder: None) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    d = load_digits()
    train, test = digits_split(d.target)
    idx = train if split == "train" else test
    return d.images[idx].astype(np.uint8)[:, None], d.target[idx].astype(np.int64)


# --- Fashion-MNIST (idx files) -------------------------------------------------------------------


def read_idx(base: PathLike, magic: int) -> np.ndarray:
    """Read an idx file of unsigned bytes, ``base`` itself or else ``base`` + ``.gz``.

    Parameters
    ----------
    base : path
        File name without ``.gz``.
    magic : int
        Expected magic number (:data:`IDX_IMAGES_MAGIC` or :data:`IDX_LABELS_MAGIC`); its low
        byte is the number of dimensions.

    Returns
    -------
    ndarray of uint8
        Shaped by the big-endian dimensions in the header.

    Raises
    ------
    DatasetError
        Missing file, bad gzip stream, wrong magic number, or a size that disagrees with the header.
    """
    base = Path(base)
    gz = base.with_name(base.name + ".gz")
    path = base if base.exists() else gz
    if not path.exists():
        raise DatasetError(f"missing file {base}(.gz)")
    try:
        with (gzip.open(path, "rb") if path is gz else open(path, "rb")) as f:
            data = f.read()
    except (OSError, EOFError, zlib.error) as e:
        raise DatasetError(f"{path}: unreadable ({e})") from None
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(data) < 4:
        raise DatasetError(f"{path}: truncated idx header ({len(data)} bytes)")
    got = struct.unpack(">I", data[:4])[0]
    if got != magic:
        raise DatasetError(f"{path}: bad idx magic number {got} (expected {magic})")
    if len(data) < header:
        raise DatasetError(f"{path}: truncated idx header ({len(data)} bytes, need {header})")
    dims = struct.unpack(f">{ndim}I", data[4:header])
    need = int(np.prod(dims, dtype=np.int64))
    if len(data) - header != need:
        raise DatasetError(f"{path}: truncated or oversized idx data ({len(data) - header} bytes, "
                           f"header {'x'.join(map(str, dims))} needs {need})")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)


def _fashion_mnist_folder(root: PathLike | None) -> Path:
    folder = _user_path(root or os.environ.get("CSDFORMER_FASHION_MNIST") or FASHION_MNIST_DEFAULT)
    if not folder.is_dir():
        raise DatasetError(f"fashion_mnist: data folder {folder} not found "
                           "(install dataset-fashion-mnist, pass a root or set CSDFORMER_FASHION_MNIST)")
    return folder


def _read_fashion_mnist(split: str, folder: Path) -> tuple[np.ndarray, np.ndarray]:
    stem = "train" if split == "train" else "t10k"
    try:
        x = read_idx(folder / f"{stem}-images-idx3-ubyte", IDX_IMAGES_MAGIC)
        y = read_idx(folder / f"{stem}-labels-idx1-ubyte", IDX_LABELS_MAGIC)
    except DatasetError as e:
        raise DatasetError(f"fashion_mnist: {e}") from None
    return x[:, None].copy(), y.astype(np.int64)


# --- CIFAR (python pickle folders) ---------------------------------------------------------------


def _cifar_folder(name: str, env: str, subfolder: str) -> Callable[[PathLike | None], Path]:
    def resolve(root: PathLike | None) -> Path:
        given = root or os.environ.get(env)
        if not given:
            raise DatasetError(f"{name}: no data folder given (pass a root or set {env})")
        folder = _user_path(given)
        if (folder / subfolder).is_dir():
            folder = folder / subfolder
        if not folder.is_dir():
            raise DatasetError(f"{name}: data folder {folder} not found")
        return folder

    return resolve


#: Largest CIFAR batch file read (the CIFAR-100 train file is 148 MiB).
MAX_PICKLE_BYTES = 512 << 20


def _latin1_encode(text: object, encoding: object = "latin1") -> bytes:
    """``_codecs.encode`` as protocol-2 pickles use it for ``bytes``: latin-1 text only."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError("_codecs.encode: only latin-1 text (how pickle protocol 2 stores bytes)")
    return text.encode("latin1")


_NDARRAY_RECONSTRUCT = np.array([0]).__reduce__()[0]  # numpy's _reconstruct, whatever its module
_NDARRAY_FROMBUFFER = np.array([0]).__reduce_ex__(5)[0]  # protocol 5: numpy's _frombuffer
#: What a CIFAR python batch may name: numpy arrays (built from bytes) and their dtypes, and the
#: latin-1 encoding that protocol-2 pickles use for bytes. Dicts, lists, ints, str and bytes need
#: no globals. Nothing else is importable, so a pickle cannot run code or build other objects.
_CIFAR_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): _NDARRAY_RECONSTRUCT,
    ("numpy._core.multiarray", "_reconstruct"): _NDARRAY_RECONSTRUCT,
    ("numpy.core.numeric", "_frombuffer"): _NDARRAY_FROMBUFFER,
    ("numpy._core.numeric", "_frombuffer"): _NDARRAY_FROMBUFFER,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): _latin1_encode,
}


class _CifarUnpickler(pickle.Unpickler):
    """An unpickler that admits only what the CIFAR python format holds (:data:`_CIFAR_GLOBALS`)."""

    def find_class(self, module: str, name: str) -> object:
        obj = _CIFAR_GLOBALS.get((module, name))
        if obj is None:
            raise pickle.UnpicklingError(f"refused global {module[:60]}.{name[:60]} (a CIFAR batch holds only "
                                         "dicts, lists, strings, bytes and numpy arrays)")
        return obj


def _plain(v: object, depth: int = 0) -> bool:
    """Only the CIFAR format's types: dict, list, str, bytes, int and non-object numpy arrays."""
    if depth > 4:
        return False
    if isinstance(v, dict):
        return all(isinstance(k, (bytes, str)) and _plain(x, depth + 1) for k, x in v.items())
    if isinstance(v, list):
        return all(isinstance(x, (bytes, str, int)) for x in v)
    if isinstance(v, np.ndarray):
        return v.dtype.kind in "biuf"
    return isinstance(v, (bytes, str, int))


def _unpickle(name: str, path: Path, label_key: bytes) -> tuple[np.ndarray, np.ndarray]:
    """Read one CIFAR batch file: ``b"data"`` (N, 3072) rows, labels under ``label_key``.

    The file is data, not code: :class:`_CifarUnpickler` refuses every global but numpy's array
    reconstruction, so a crafted pickle cannot run anything.
    """
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size > MAX_PICKLE_BYTES:
                raise DatasetError(f"{name}: {path}: {size} bytes, more than the limit {MAX_PICKLE_BYTES}")
            d = _CifarUnpickler(f, encoding="bytes").load()
    except FileNotFoundError:
        raise DatasetError(f"{name}: missing file {path}") from None
    except DatasetError:
        raise
    except pickle.UnpicklingError as e:
        first = (str(e).splitlines() or [""])[0][:160]
        raise DatasetError(f"{name}: {path}: not a readable CIFAR batch (UnpicklingError: {first})") from None
    except (MemoryError, RecursionError):
        raise DatasetError(f"{name}: {path}: not a readable CIFAR batch (too large or nested)") from None
    except Exception as e:  # noqa: BLE001 - any other failure to parse an untrusted pickle
        raise DatasetError(f"{name}: {path}: not a readable CIFAR batch ({type(e).__name__})") from None
    if isinstance(d, dict) and not _plain(d):
        raise DatasetError(f"{name}: {path}: holds types the CIFAR format does not have")
    if not isinstance(d, dict):
        raise DatasetError(f"{name}: {path}: expected a dict, got {type(d).__name__}")
    for k in (b"data", label_key):
        if k not in d:
            raise DatasetError(f"{name}: {path}: missing key {k.decode()!r}")
    x = np.asarray(d[b"data"])
    if x.dtype != np.uint8 or x.ndim != 2 or x.shape[1] != 3072:
        raise DatasetError(f"{name}: {path}: data must be uint8 (N, 3072), got {x.dtype} {x.shape}")
    y = np.asarray(d[label_key])
    if y.shape != (len(x),) or not np.issubdtype(y.dtype, np.integer):
        raise DatasetError(f"{name}: {path}: {label_key.decode()} must be {len(x)} integers, "
                           f"got {y.dtype} {y.shape}")
    # Each row holds the R plane, then G, then B, each 32x32 row-major: channel-first already.
    return x.reshape(-1, 3, 32, 32), y.astype(np.int64)


_Reader = Callable[[str, Path], tuple[np.ndarray, np.ndarray]]


def _cifar_reader(name: str, label_key: bytes, files: dict[str, list[str]]) -> _Reader:
    def read(split: str, folder: Path) -> tuple[np.ndarray, np.ndarray]:
        parts = [_unpickle(name, folder / f, label_key) for f in files[split]]
        return np.concatenate([x for x, _ in parts]), np.concatenate([y for _, y in parts])

    return read


_SOURCES = {
    "digits": (_digits_folder, _read_digits),
    "fashion_mnist": (_fashion_mnist_folder, _read_fashion_mnist),
    "cifar10": (_cifar_folder("cifar10", "CSDFORMER_CIFAR10", "cifar-10-batches-py"),
                _cifar_reader("cifar10", b"labels",
                              {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]})),
    "cifar100": (_cifar_folder("cifar100", "CSDFORMER_CIFAR100", "cifar-100-python"),
                 _cifar_reader("cifar100", b"fine_labels", {"train": ["train"], "test": ["test"]})),
}
