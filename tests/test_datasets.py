"""Data set loaders: digits split, idx and CIFAR pickle parsing on tiny fixtures, one-line errors."""

from __future__ import annotations

import gzip
import pickle
import re
import struct
from pathlib import Path

import numpy as np
import pytest

from csdformer import CsdformerError
from csdformer import datasets as D

FASHION_REAL = Path(D.FASHION_MNIST_DEFAULT)


@pytest.fixture(autouse=True)
def _no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("CSDFORMER_FASHION_MNIST", "CSDFORMER_CIFAR10", "CSDFORMER_CIFAR100"):
        monkeypatch.delenv(var, raising=False)


# --- API ----------------------------------------------------------------------------------------


def test_info_and_errors() -> None:
    assert D.NAMES == ("digits", "fashion_mnist", "cifar10", "cifar100")
    assert D.info("digits") == D.DatasetInfo("digits", 1, 8, 8, 16, 10)
    assert D.info("cifar100").num_classes == 100
    assert issubclass(D.DatasetError, CsdformerError)
    with pytest.raises(D.DatasetError, match="unknown dataset 'mnist'"):
        D.info("mnist")
    with pytest.raises(D.DatasetError, match="unknown dataset"):
        D.load("mnist")
    with pytest.raises(D.DatasetError, match="split: .*'val'"):
        D.load("digits", "val")


# --- digits -------------------------------------------------------------------------------------


def test_digits_shapes_and_values() -> None:
    xtr, ytr = D.load("digits", "train")
    xte, yte = D.load("digits", "test")
    assert xtr.shape == (1437, 1, 8, 8) and xte.shape == (360, 1, 8, 8)
    assert xtr.dtype == xte.dtype == np.uint8
    assert ytr.dtype == yte.dtype == np.int64
    assert ytr.shape == (1437,) and yte.shape == (360,)
    both = np.concatenate([xtr, xte])
    assert both.min() == 0 and both.max() == 16
    assert set(np.unique(np.concatenate([ytr, yte]))) == set(range(10))


def test_digits_split_stratified_disjoint_deterministic() -> None:
    from sklearn.datasets import load_digits

    d = load_digits()
    train, test = D.digits_split(d.target)
    assert np.array_equal(np.sort(np.concatenate([train, test])), np.arange(1797))
    assert np.intersect1d(train, test).size == 0
    assert np.all(np.diff(train) > 0) and np.all(np.diff(test) > 0)
    counts = np.bincount(d.target)
    tcounts = np.bincount(d.target[test], minlength=10)
    assert np.all(np.abs(tcounts - 0.2 * counts) <= 1)
    again_train, again_test = D.digits_split()
    assert np.array_equal(train, again_train) and np.array_equal(test, again_test)
    # load() returns exactly these rows, in scikit-learn's order.
    xte, yte = D.load("digits", "test")
    np.testing.assert_array_equal(xte[:, 0], d.images[test].astype(np.uint8))
    np.testing.assert_array_equal(yte, d.target[test])


def test_cache_returns_independent_writable_copies() -> None:
    x1, y1 = D.load("digits", "test")
    assert x1.flags.writeable and y1.flags.writeable
    x1[...] = 99
    x2, _ = D.load("digits", "test")
    assert x2.max() == 16


# --- Fashion-MNIST ------------------------------------------------------------------------------


def _idx(magic: int, arr: np.ndarray) -> bytes:
    return struct.pack(f">I{arr.ndim}I", magic, *arr.shape) + arr.astype(np.uint8).tobytes()


def _write(path: Path, data: bytes, gz: bool) -> Path:
    if gz:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(data))
    else:
        path.write_bytes(data)
    return path


def _fashion_fixture(folder: Path, gz: bool, n: int = 5, seed: int = 0) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for split, stem in (("train", "train"), ("test", "t10k")):
        x = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        y = rng.integers(0, 10, size=n, dtype=np.uint8)
        _write(folder / f"{stem}-images-idx3-ubyte", _idx(D.IDX_IMAGES_MAGIC, x), gz)
        _write(folder / f"{stem}-labels-idx1-ubyte", _idx(D.IDX_LABELS_MAGIC, y), gz)
        out[split] = (x, y)
        n += 1  # different sizes per split
    return out


@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gz"])
def test_fashion_mnist_fixture_exact(tmp_path: Path, gz: bool) -> None:
    want = _fashion_fixture(tmp_path, gz)
    for split, (x, y) in want.items():
        gx, gy = D.load("fashion_mnist", split, tmp_path)
        assert gx.shape == (len(x), 1, 28, 28) and gx.dtype == np.uint8 and gy.dtype == np.int64
        np.testing.assert_array_equal(gx[:, 0], x)
        np.testing.assert_array_equal(gy, y)


def test_fashion_mnist_env_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    x, _ = _fashion_fixture(tmp_path, gz=False, n=3)["test"]
    monkeypatch.setenv("CSDFORMER_FASHION_MNIST", str(tmp_path))
    np.testing.assert_array_equal(D.load("fashion_mnist", "test")[0][:, 0], x)


@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gz"])
def test_fashion_mnist_bad_magic_names_file(tmp_path: Path, gz: bool) -> None:
    _fashion_fixture(tmp_path, gz)
    labels = np.zeros(5, dtype=np.uint8)
    bad = _write(tmp_path / "train-images-idx3-ubyte", _idx(D.IDX_LABELS_MAGIC, labels), gz)
    with pytest.raises(D.DatasetError, match=r"fashion_mnist: .*bad idx magic number 2049") as e:
        D.load("fashion_mnist", "train", tmp_path)
    assert str(bad) in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("cut", [3, 10, 100], ids=["magic", "header", "data"])
def test_fashion_mnist_truncated_names_file(tmp_path: Path, cut: int) -> None:
    _fashion_fixture(tmp_path, gz=False)
    path = tmp_path / "t10k-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:cut])
    with pytest.raises(D.DatasetError, match="truncated") as e:
        D.load("fashion_mnist", "test", tmp_path)
    assert str(path) in str(e.value)


def test_fashion_mnist_truncated_gzip_stream_names_file(tmp_path: Path) -> None:
    _fashion_fixture(tmp_path, gz=True)
    path = tmp_path / "t10k-labels-idx1-ubyte.gz"
    path.write_bytes(path.read_bytes()[:-12])
    with pytest.raises(D.DatasetError, match="unreadable") as e:
        D.load("fashion_mnist", "test", tmp_path)
    assert str(path) in str(e.value)


def test_fashion_mnist_missing_file_and_folder(tmp_path: Path) -> None:
    _fashion_fixture(tmp_path, gz=True)
    (tmp_path / "train-labels-idx1-ubyte.gz").unlink()
    want = f"fashion_mnist: missing file {tmp_path / 'train-labels-idx1-ubyte'}(.gz)"
    with pytest.raises(D.DatasetError) as e:
        D.load("fashion_mnist", "train", tmp_path)
    assert str(e.value) == want
    with pytest.raises(D.DatasetError, match=re.escape(f"fashion_mnist: data folder {tmp_path / 'nope'} not found")):
        D.load("fashion_mnist", "train", tmp_path / "nope")


def test_fashion_mnist_wrong_image_size(tmp_path: Path) -> None:
    _fashion_fixture(tmp_path, gz=False)
    _write(tmp_path / "t10k-images-idx3-ubyte", _idx(D.IDX_IMAGES_MAGIC, np.zeros((6, 8, 8))), gz=False)
    with pytest.raises(D.DatasetError, match=r"fashion_mnist: .*images are uint8 \(6, 1, 8, 8\)"):
        D.load("fashion_mnist", "test", tmp_path)


@pytest.mark.skipif(not FASHION_REAL.is_dir(), reason=f"{FASHION_REAL} not installed (dataset-fashion-mnist)")
def test_fashion_mnist_real_test_split() -> None:
    x, y = D.load("fashion_mnist", "test")
    assert x.shape == (10000, 1, 28, 28) and x.dtype == np.uint8
    assert y.shape == (10000,) and set(np.unique(y)) == set(range(10))


# --- CIFAR --------------------------------------------------------------------------------------

CIFAR = {  # name: (folder, label key, {split: batch files}, classes)
    "cifar10": ("cifar-10-batches-py", b"labels",
                {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}, 10),
    "cifar100": ("cifar-100-python", b"fine_labels", {"train": ["train"], "test": ["test"]}, 100),
}


def _cifar_fixture(parent: Path, name: str, per_file: int = 3) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Write tiny batches in the real format; return the expected (N, 3, 32, 32) images and labels."""
    folder, key, files, classes = CIFAR[name]
    (parent / folder).mkdir(parents=True)
    rng = np.random.default_rng(1)
    out = {}
    for split, names in files.items():
        xs, ys = [], []
        for f in names:
            rows = rng.integers(0, 256, size=(per_file, 3072), dtype=np.uint8)
            labels = [int(v) for v in rng.integers(0, classes, size=per_file)]
            batch = {b"batch_label": f.encode(), b"data": rows, key: labels, b"filenames": [b"x.png"] * per_file}
            if name == "cifar100":
                batch[b"coarse_labels"] = [v % 20 for v in labels]
            with open(parent / folder / f, "wb") as fh:
                pickle.dump(batch, fh, protocol=2)
            # The documented layout: 1024 red values, then green, then blue, each row-major 32x32.
            img = np.stack([rows[:, c * 1024:(c + 1) * 1024].reshape(-1, 32, 32) for c in range(3)], axis=1)
            xs.append(img)
            ys.append(labels)
        out[split] = (np.concatenate(xs), np.concatenate(ys))
    return out


@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
@pytest.mark.parametrize("as_parent", [False, True], ids=["folder", "parent"])
def test_cifar_fixture_layout(tmp_path: Path, name: str, as_parent: bool) -> None:
    want = _cifar_fixture(tmp_path, name)
    root = tmp_path if as_parent else tmp_path / CIFAR[name][0]
    for split, (x, y) in want.items():
        gx, gy = D.load(name, split, root)
        assert gx.shape == (len(y), 3, 32, 32) and gx.dtype == np.uint8 and gy.dtype == np.int64
        np.testing.assert_array_equal(gx, x)
        np.testing.assert_array_equal(gy, y)
    assert len(want["train"][1]) == 3 * len(CIFAR[name][2]["train"])


def test_cifar_pixel_order_channel_first(tmp_path: Path) -> None:
    _cifar_fixture(tmp_path, "cifar10", per_file=1)
    rows = np.zeros((1, 3072), dtype=np.uint8)
    rows[0, 0], rows[0, 1], rows[0, 32], rows[0, 1024], rows[0, 2048 + 1023] = 1, 2, 3, 4, 5
    with open(tmp_path / "cifar-10-batches-py" / "test_batch", "wb") as fh:
        pickle.dump({b"data": rows, b"labels": [7]}, fh)
    x, y = D.load("cifar10", "test", tmp_path)
    assert (x[0, 0, 0, 0], x[0, 0, 0, 1], x[0, 0, 1, 0], x[0, 1, 0, 0], x[0, 2, 31, 31]) == (1, 2, 3, 4, 5)
    assert x.sum() == 15 and y.tolist() == [7]


@pytest.mark.parametrize("name,env", [("cifar10", "CSDFORMER_CIFAR10"), ("cifar100", "CSDFORMER_CIFAR100")])
def test_cifar_root_required_and_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, env: str) -> None:
    with pytest.raises(D.DatasetError, match=f"{name}: no data folder given .*{env}"):
        D.load(name, "test")
    with pytest.raises(D.DatasetError, match=f"{name}: data folder .*nope not found"):
        D.load(name, "test", tmp_path / "nope")
    want = _cifar_fixture(tmp_path, name)
    monkeypatch.setenv(env, str(tmp_path))
    np.testing.assert_array_equal(D.load(name, "test")[1], want["test"][1])


def test_cifar_missing_file_and_bad_batch(tmp_path: Path) -> None:
    _cifar_fixture(tmp_path, "cifar10")
    folder = tmp_path / "cifar-10-batches-py"
    (folder / "data_batch_3").unlink()
    with pytest.raises(D.DatasetError, match=re.escape(f"cifar10: missing file {folder / 'data_batch_3'}") + "$"):
        D.load("cifar10", "train", tmp_path)
    (folder / "test_batch").write_bytes(pickle.dumps({b"data": np.zeros((2, 3072), np.uint8)}))
    with pytest.raises(D.DatasetError, match=r"cifar10: .*test_batch: missing key b?'labels'"):
        D.load("cifar10", "test", tmp_path)
    (folder / "test_batch").write_bytes(b"not a pickle")
    with pytest.raises(D.DatasetError, match="test_batch: not a readable CIFAR batch"):
        D.load("cifar10", "test", tmp_path)


def test_cifar100_label_range_checked(tmp_path: Path) -> None:
    _cifar_fixture(tmp_path, "cifar100")
    path = tmp_path / "cifar-100-python" / "test"
    path.write_bytes(pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"fine_labels": [3, 100]}))
    with pytest.raises(D.DatasetError, match=r"cifar100: .*labels must lie in 0\.\.99, got 3\.\.100"):
        D.load("cifar100", "test", tmp_path)
