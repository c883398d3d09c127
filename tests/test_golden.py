"""Property tests of the golden ops (SPEC §5): DIF neuron, TDEC matmul / max-pool, exact int matmul.

Every expected value here is computed independently of ``csdformer.sim.golden`` (numpy formulas
written out, plain-Python loops, or SpikingJelly as a peer implementation).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from csdformer.sim import golden

SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow])

SIGNED = [np.int8, np.int16, np.int32, np.int64]


# --- strategies ------------------------------------------------------------------------------------


@st.composite
def dif_case(draw, max_T=8, signed=True):
    """(currents (T, *shape), threshold, v0 or None, T): thresholds ≥ 1 (θ = 1 often),
    scalar or per-neuron (full shape or broadcast over the last axis); currents of both signs."""
    T = draw(st.integers(1, max_T))
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4))
    theta_el = st.one_of(st.just(1), st.integers(1, 20))
    kind = draw(st.sampled_from(["scalar", "full", "lastaxis"]))
    if kind == "scalar":
        theta = draw(theta_el)
    else:
        tshape = shape if kind == "full" else shape[-1:]
        theta = draw(hnp.arrays(np.int64, tshape, elements=theta_el))
    dtype = draw(st.sampled_from(SIGNED)) if signed else np.int64
    currents = draw(hnp.arrays(dtype, (T,) + shape, elements=st.integers(-30, 30)))
    v0_kind = draw(st.sampled_from(["default", "scalar", "array"]))
    if v0_kind == "default":
        v0 = None
    elif v0_kind == "scalar":
        v0 = draw(st.integers(-20, 40))
    else:
        v0 = draw(hnp.arrays(np.int64, shape, elements=st.integers(-20, 40)))
    return currents, theta, v0, T


def _v0_eff(theta, v0):
    """The initial potential the neuron starts from: ``θ // 2`` by default (SPEC §5)."""
    theta = np.asarray(theta, dtype=np.int64)
    return theta // 2 if v0 is None else np.asarray(v0, dtype=np.int64)


# --- 1. D = T-1: spike counts are the integer QANN's --------------------------------------------


@settings(max_examples=150, **SETTINGS)
@given(dif_case())
def test_dif_full_delay_counts_equal_clip_floor_formula(case):
    currents, theta, v0, T = case
    total = currents.astype(np.int64).sum(axis=0)
    th = np.asarray(theta, dtype=np.int64)
    expected = np.clip(np.floor_divide(total + _v0_eff(theta, v0), th), 0, T)

    out = golden.dif(currents, theta, T - 1, v0)
    counts = out.astype(np.int64).sum(axis=0)
    np.testing.assert_array_equal(counts, expected)

    # and the count-domain twin agrees with the formula (and so with the time-stepped neuron)
    np.testing.assert_array_equal(golden.dif_counts(total, theta, T, v0), expected)


@settings(max_examples=100, **SETTINGS)
@given(total=hnp.arrays(np.int64, st.integers(1, 40), elements=st.integers(-100, 200)), T=st.integers(1, 16),
       theta=st.integers(1, 25))
def test_default_v0_rounds_half_up(total, T, theta):
    """v0 = θ//2 makes the neuron count ``round(ΣI/θ)`` with ties rounding up, exactly (SPEC §5,
    LSQ's floor(x + 1/2)): floor(ΣI/θ + 1/2) = floor((2ΣI + θ) / 2θ) for integer ΣI."""
    expected = np.clip(np.floor_divide(2 * total + theta, 2 * theta), 0, T)
    np.testing.assert_array_equal(golden.dif_counts(total, theta, T), expected)


# --- 2. output format; front-loading at D = T-1 ------------------------------------------------


@settings(max_examples=120, **SETTINGS)
@given(dif_case(), st.data())
def test_dif_output_binary_shape_and_front_loaded(case, data):
    currents, theta, v0, T = case
    D = data.draw(st.integers(0, T - 1), label="D")
    out = golden.dif(currents, theta, D, v0)
    assert out.dtype == np.uint8
    assert out.shape == currents.shape
    assert set(np.unique(out).tolist()) <= {0, 1}
    assert (out.astype(np.int64).sum(axis=0) <= T).all()

    full = golden.dif(currents, theta, T - 1, v0)
    counts = full.astype(np.int64).sum(axis=0)
    t = np.arange(T).reshape((T,) + (1,) * counts.ndim)
    # frames 1..count fire, the rest are silent
    np.testing.assert_array_equal(full, (t < counts).astype(np.uint8))


# --- 3. the semantics contract: SPEC §5 pseudocode, literally, one neuron at a time ------------


def _dif_spec_scalar(I: list[int], theta: int, D: int, v0: int) -> list[int]:
    """SPEC §5 DIF pseudocode for one neuron, transcribed literally (1-based time)."""
    T = len(I)
    out = [0] * T
    v = v0
    for t in range(1, T + D + 1):
        if t <= T:
            v += I[t - 1]  # integrate input frame t
        if t > D and v >= theta:
            out[t - D - 1] = 1  # out(t - D) = 1
            v -= theta  # reset by subtraction
    return out


@settings(max_examples=80, **SETTINGS)
@given(dif_case())
def test_dif_matches_spec_pseudocode_for_every_delay(case):
    currents, theta, v0, T = case
    shape = currents.shape[1:]
    th = np.broadcast_to(np.asarray(theta, dtype=np.int64), shape)
    v0b = np.broadcast_to(_v0_eff(theta, v0), shape)
    for D in range(T):
        out = golden.dif(currents, theta, D, v0)
        for idx in np.ndindex(*shape):
            I = [int(currents[(t,) + idx]) for t in range(T)]
            ref = _dif_spec_scalar(I, int(th[idx]), D, int(v0b[idx]))
            got = [int(out[(t,) + idx]) for t in range(T)]
            assert got == ref, (D, idx, I, int(th[idx]), int(v0b[idx]))


# --- 4. TDEC matmul -------------------------------------------------------------------------------


@st.composite
def spike_pair(draw):
    T = draw(st.integers(1, 6))
    batch = draw(hnp.array_shapes(min_dims=0, max_dims=2, min_side=1, max_side=3))
    N, K, M = (draw(st.integers(1, 5)) for _ in range(3))
    seed = draw(st.integers(0, 2**32 - 1))
    pa, pb = (draw(st.one_of(st.just(0.0), st.just(1.0), st.floats(0.0, 1.0))) for _ in range(2))
    dtype = draw(st.sampled_from([np.uint8, np.bool_, np.int64]))
    rng = np.random.default_rng(seed)
    a = (rng.random((T,) + batch + (N, K)) < pa).astype(dtype)
    b = (rng.random((T,) + batch + (K, M)) < pb).astype(dtype)
    return a, b


@settings(max_examples=150, **SETTINGS)
@given(spike_pair())
def test_tdec_matmul_sums_to_product_of_counts(ab):
    a, b = ab
    P = golden.tdec_matmul(a, b)
    ca = a.astype(np.int64).sum(axis=0)
    cb = b.astype(np.int64).sum(axis=0)
    expected = np.matmul(ca, cb)
    assert P.shape == (a.shape[0],) + expected.shape
    np.testing.assert_array_equal(P.sum(axis=0), expected)
    np.testing.assert_array_equal(golden.tdec_matmul_counts(ca, cb), expected)


@settings(max_examples=100, **SETTINGS)
@given(spike_pair())
def test_tdec_matmul_per_frame_definition(ab):
    """P(t) = a(t)·Bcum(t) + Acum(t−1)·b(t), cumulative sums built by a loop over t."""
    a, b = ab
    P = golden.tdec_matmul(a, b)
    T = a.shape[0]
    acum_prev = np.zeros(a.shape[1:], dtype=np.int64)  # Acum(t-1), Acum(0) = 0
    bcum = np.zeros(b.shape[1:], dtype=np.int64)
    for t in range(T):
        at = a[t].astype(np.int64)
        bt = b[t].astype(np.int64)
        bcum = bcum + bt  # Bcum(t)
        expected = np.matmul(at, bcum) + np.matmul(acum_prev, bt)
        np.testing.assert_array_equal(P[t], expected, err_msg=f"frame {t}")
        acum_prev = acum_prev + at
    assert P.dtype == np.int64


def test_tdec_matmul_frame_mismatch_rejected():
    with pytest.raises(ValueError, match="frames"):
        golden.tdec_matmul(np.zeros((2, 3, 4), np.uint8), np.zeros((3, 4, 5), np.uint8))


# --- 5. TDEC max-pool ------------------------------------------------------------------------------


def _maxpool_loops(c: np.ndarray, kernel: int, stride: int, padding: int) -> np.ndarray:
    """Max-pool over the last two axes with plain loops, padded cells skipped (PyTorch semantics;
    with padding ≤ kernel/2 every window holds an in-bounds cell, and counts are ≥ 0, so this
    equals zero-padding)."""
    H, W = c.shape[-2:]
    Ho = (H + 2 * padding - kernel) // stride + 1
    Wo = (W + 2 * padding - kernel) // stride + 1
    out = np.zeros(c.shape[:-2] + (Ho, Wo), dtype=np.int64)
    for lead in np.ndindex(*c.shape[:-2]):
        for i in range(Ho):
            for j in range(Wo):
                best = None
                for di in range(kernel):
                    for dj in range(kernel):
                        y, x = i * stride - padding + di, j * stride - padding + dj
                        if 0 <= y < H and 0 <= x < W:
                            v = int(c[lead + (y, x)])
                            best = v if best is None else max(best, v)
                assert best is not None
                out[lead + (i, j)] = best
    return out


@st.composite
def pool_case(draw):
    kernel = draw(st.sampled_from([2, 3]))
    stride = draw(st.sampled_from([1, 2, None]))
    padding = draw(st.sampled_from([0, 1]))
    T = draw(st.integers(1, 6))
    lead = draw(hnp.array_shapes(min_dims=0, max_dims=2, min_side=1, max_side=2))
    H = draw(st.integers(kernel, 7))
    W = draw(st.integers(kernel, 7))
    seed = draw(st.integers(0, 2**32 - 1))
    p = draw(st.one_of(st.just(0.0), st.just(1.0), st.floats(0.0, 1.0)))
    spikes = (np.random.default_rng(seed).random((T,) + lead + (H, W)) < p).astype(np.uint8)
    return spikes, kernel, stride, padding


@settings(max_examples=100, **SETTINGS)
@given(pool_case())
def test_tdec_maxpool_binary_and_sums_to_maxpool_of_counts(case):
    spikes, kernel, stride, padding = case
    s = kernel if stride is None else stride
    out = golden.tdec_maxpool(spikes, kernel, stride, padding)
    assert out.dtype == np.uint8
    assert set(np.unique(out).tolist()) <= {0, 1}

    counts = spikes.astype(np.int64).sum(axis=0)
    expected = _maxpool_loops(counts, kernel, s, padding)
    assert out.shape == (spikes.shape[0],) + expected.shape
    np.testing.assert_array_equal(out.astype(np.int64).sum(axis=0), expected)
    np.testing.assert_array_equal(golden.maxpool_counts(counts, kernel, stride, padding), expected)

    # stronger: the running output count is the max-pool of the running input count at every t
    cum_in = np.cumsum(spikes.astype(np.int64), axis=0)
    cum_out = np.cumsum(out.astype(np.int64), axis=0)
    for t in range(spikes.shape[0]):
        np.testing.assert_array_equal(cum_out[t], _maxpool_loops(cum_in[t], kernel, s, padding))


@settings(max_examples=40, **SETTINGS)
@given(pool_case())
def test_maxpool_counts_matches_torch(case):
    torch = pytest.importorskip("torch")
    spikes, kernel, stride, padding = case
    counts = spikes.astype(np.int64).sum(axis=0)
    lead, (H, W) = counts.shape[:-2], counts.shape[-2:]
    x = torch.from_numpy(counts.reshape((-1, 1, H, W)).astype(np.float64))
    ref = torch.nn.functional.max_pool2d(x, kernel, stride=stride, padding=padding).numpy()
    ref = ref.reshape(lead + ref.shape[-2:]).astype(np.int64)
    np.testing.assert_array_equal(golden.maxpool_counts(counts, kernel, stride, padding), ref)


# --- 6. exact integer matmul --------------------------------------------------------------------


def _exact(a, b):
    return np.matmul(a.astype(object), b.astype(object))


@st.composite
def mat_pair(draw, lo, hi):
    batch = draw(hnp.array_shapes(min_dims=0, max_dims=2, min_side=1, max_side=3))
    N, K, M = (draw(st.integers(1, 6)) for _ in range(3))
    mag = st.integers(lo, hi)
    el = st.builds(lambda m, neg: -m if neg else m, mag, st.booleans())
    a = draw(hnp.arrays(np.int64, batch + (N, K), elements=el))
    b = draw(hnp.arrays(np.int64, batch + (K, M), elements=el))
    return a, b


@settings(max_examples=60, **SETTINGS)
@given(mat_pair(0, 300))
def test_int_matmul_small_values(ab):
    a, b = ab
    got = golden.int_matmul(a, b)
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, np.matmul(a, b))


@settings(max_examples=60, **SETTINGS)
@given(mat_pair(2**27, 2**29))
def test_int_matmul_large_values_exact(ab):
    """|a|·|b|·K ≥ 2**54 > 2**53: float64 would round; the result must still be exact."""
    a, b = ab
    got = golden.int_matmul(a, b)
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, np.matmul(a, b))
    np.testing.assert_array_equal(got.astype(object), _exact(a, b))


def test_int_matmul_large_case_really_needs_int64_path():
    # the float64 product of this case is wrong, so an exact answer proves the non-BLAS path ran
    a = np.array([[2**29 + 1, 2**29 + 3, 1]], dtype=np.int64)
    b = np.array([[2**29 + 5], [2**29 + 7], [3]], dtype=np.int64)
    assert int(np.matmul(a.astype(np.float64), b.astype(np.float64))[0, 0]) != int(_exact(a, b)[0, 0])
    np.testing.assert_array_equal(golden.int_matmul(a, b).astype(object), _exact(a, b))


@pytest.mark.parametrize("dtype, bval", [(np.int16, 2**40 + 1), (np.int32, 2**22 + 1)])
def test_int_matmul_dtype_minimum_is_bounded_correctly(dtype, bval):
    """np.abs wraps at the dtype minimum (np.abs(int32(-2**31)) < 0); the exactness guard must
    still see |a| = 2**31 and take the int64 path, where float64 would round."""
    lo = int(np.iinfo(dtype).min)
    a = np.array([[lo, lo, 1]], dtype=dtype)
    b = np.full((3, 1), bval, dtype=np.int64 if bval > 2**31 else dtype)
    np.testing.assert_array_equal(golden.int_matmul(a, b).astype(object), _exact(a, b))


# --- 7. peer check: D = 0 is SpikingJelly's soft-reset IF neuron (the `compare` extra; restated below) --


def _spikingjelly_if():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        neuron = pytest.importorskip("spikingjelly.activation_based.neuron")
    return neuron.IFNode


@settings(max_examples=60, **SETTINGS)
@given(st.integers(1, 8), hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4),
       st.one_of(st.just(1), st.integers(1, 20)), st.data())
def test_dif_delay0_matches_spikingjelly_ifnode(T, shape, theta, data):
    torch = pytest.importorskip("torch")
    IFNode = _spikingjelly_if()
    currents = data.draw(hnp.arrays(np.int64, (T,) + shape, elements=st.integers(-30, 30)), label="currents")
    per_neuron = data.draw(st.booleans(), label="per_neuron_v0")
    if per_neuron:
        v0 = data.draw(hnp.arrays(np.int64, shape, elements=st.integers(-10, 30)), label="v0")
    else:
        v0 = data.draw(st.one_of(st.none(), st.integers(-10, 30)), label="v0")
    v0_full = np.broadcast_to(_v0_eff(theta, v0), shape)

    node = IFNode(v_threshold=float(theta), v_reset=None, step_mode="m")
    node.reset()
    node.v = torch.tensor(v0_full, dtype=torch.float64)
    with torch.no_grad():
        ref = node(torch.from_numpy(currents.astype(np.float64))).numpy()

    got = golden.dif(currents, theta, 0, v0)
    np.testing.assert_array_equal(got, ref.astype(np.uint8))
    assert set(np.unique(ref).tolist()) <= {0.0, 1.0}
    # and the membrane left behind is the same: v0 + ΣI − θ·(spike count)
    v_end = v0_full + currents.sum(axis=0) - theta * got.astype(np.int64).sum(axis=0)
    np.testing.assert_array_equal(node.v.numpy(), v_end.astype(np.float64))


def _if_soft_reset_multistep(currents: np.ndarray, theta: int, v0: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """SpikingJelly's ``IFNode(v_reset=None, step_mode="m")`` restated in numpy, step by step as its
    multi-step loop does it: charge ``v = v + x[t]``, fire ``s = heaviside(v - v_th)`` with
    heaviside(0) = 1, soft reset ``v = v - s * v_th``. Returns (spikes, membrane left behind)."""
    v = v0.astype(np.int64).copy()
    spikes = np.zeros(currents.shape, dtype=np.uint8)
    for t in range(currents.shape[0]):
        v = v + currents[t]
        s = (v - theta >= 0).astype(np.int64)
        v = v - s * theta
        spikes[t] = s
    return spikes, v


@settings(max_examples=60, **SETTINGS)
@given(st.integers(1, 8), hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4),
       st.one_of(st.just(1), st.integers(1, 20)), st.data())
def test_dif_delay0_matches_if_soft_reset_restatement(T, shape, theta, data):
    """The property of the SpikingJelly peer check, without SpikingJelly (an optional extra,
    ``compare``): DIF at D = 0 is the soft-reset IF neuron, spikes and residual membrane alike."""
    currents = data.draw(hnp.arrays(np.int64, (T,) + shape, elements=st.integers(-30, 30)), label="currents")
    if data.draw(st.booleans(), label="per_neuron_v0"):
        v0 = data.draw(hnp.arrays(np.int64, shape, elements=st.integers(-10, 30)), label="v0")
    else:
        v0 = data.draw(st.one_of(st.none(), st.integers(-10, 30)), label="v0")
    v0_full = np.broadcast_to(_v0_eff(theta, v0), shape)
    ref, v_left = _if_soft_reset_multistep(currents, theta, v0_full)
    got = golden.dif(currents, theta, 0, v0)
    np.testing.assert_array_equal(got, ref)
    v_end = v0_full + currents.sum(axis=0) - theta * got.astype(np.int64).sum(axis=0)
    np.testing.assert_array_equal(v_left, v_end)


# --- 8. errors ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("delay", [-1, 4, 5, 100])
def test_dif_rejects_delay_out_of_range(delay):
    with pytest.raises(ValueError, match="delay"):
        golden.dif(np.zeros((4, 3), np.int64), 2, delay)


@pytest.mark.parametrize("threshold", [0, -1, -7, np.array([1, 0, 2]), np.array([[3, 2, -1]])])
def test_dif_rejects_nonpositive_threshold(threshold):
    with pytest.raises(ValueError, match="threshold"):
        golden.dif(np.zeros((4, 3), np.int64), threshold, 0)


def test_dif_rejects_non_integer_currents():
    with pytest.raises(ValueError, match="currents"):
        golden.dif(np.zeros((4, 3), np.float64), 2, 0)
