"""Shared infrastructure of the hardware generators: errors, parameter checks, widths, Verilog.

Every unit module in :mod:`csdformer.hw` uses these helpers, so that a bad parameter always raises
the same :class:`HwParamError` with a message naming the parameter, and so that widths are always
derived from value bounds (:func:`width_for`) instead of guessed.

Components expose derived facts (``latency``, widths) as read-only properties.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
from amaranth.back import verilog
from amaranth.hdl import Module, Signal, Value
from amaranth.lib import wiring
from amaranth.lib.wiring import In

from .. import CsdformerError
from ..artifact.schema import signed_bits

__all__ = [
    "HwParamError",
    "FitError",
    "validated",
    "check_int",
    "check_width",
    "unsigned_bits",
    "to_verilog",
    "verilog_text",
    "FlipOutputBit",
    "signed_bits",
    "one_hot_in_synthesis",
    "replacing_folder",
]


@contextlib.contextmanager
def replacing_folder(final):
    """A temporary sibling of folder ``final`` to fill; renamed over ``final`` when the block ends
    without an error, removed otherwise: a folder is never seen half written."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
    try:
        yield tmp
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def one_hot_in_synthesis(fsm) -> None:
    """Have Yosys encode an Amaranth FSM one-hot. It does not re-encode a state register that has
    an initial value by itself, and a binary state decoded in every state's logic costs LUT levels
    (iCE40). The initial value is then ignored (Yosys warns): the boards' clock generators hold
    reset until the PLL locks, so the state still starts in its first one."""
    fsm.state.attrs["fsm_encoding"] = "one-hot"


class HwParamError(CsdformerError, ValueError):
    """A hardware generator parameter is out of range (raised at construction, before elaboration)."""


class FitError(HwParamError):
    """The model does not fit the target: its on-chip memories, or a weight block no output tiling
    fits into the weight buffer (a board build reports it before synthesis)."""


def validated(init):
    """Decorator for a unit's ``__init__``: a unit refused with :class:`HwParamError` is silenced.

    Amaranth warns (``UnusedElaboratable``) about every component that is created and never
    elaborated, including one whose constructor raised; with ``PYTHONWARNINGS=error`` that warning
    becomes an error at garbage collection. A refused unit was never meant to be used.
    """

    @functools.wraps(init)
    def wrapper(self, *args, **kwargs):
        try:
            return init(self, *args, **kwargs)
        except HwParamError:
            self._MustUse__silence = True
            raise

    return wrapper


def _is_int(v) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def check_int(name: str, value, *, lo: int | None = None, hi: int | None = None) -> int:
    """Return ``int(value)`` if it is an integer in ``lo..hi`` (either bound optional), else raise."""
    if not _is_int(value):
        raise HwParamError(f"{name}: must be an integer, got {value!r}")
    v = int(value)
    if lo is not None and v < lo:
        raise HwParamError(f"{name}: must be >= {lo}, got {v}")
    if hi is not None and v > hi:
        raise HwParamError(f"{name}: must be <= {hi}, got {v}")
    return v


def unsigned_bits(hi: int) -> int:
    """Unsigned bits holding ``0..hi`` (at least 1)."""
    return max(1, int(hi).bit_length())


def check_width(name: str, width, lo: int, hi: int, *, what: str = "values") -> int:
    """Return the signed width to use for ``lo..hi``: ``width`` if given and large enough.

    ``width=None`` derives it. A width too small for the stated bounds raises
    :class:`HwParamError`: the hardware never wraps silently.
    """
    need = signed_bits(int(lo), int(hi))
    if width is None:
        return need
    w = check_int(name, width, lo=1)
    if w < need:
        raise HwParamError(f"{name}: {what} span {int(lo)}..{int(hi)} and need {need} signed bits, got {w}")
    return w


def verilog_text(component: wiring.Component, name: str) -> str:
    """Verilog of ``component`` as top module ``name`` (ports named ``<path>__<member>``)."""
    return verilog.convert(component, name=name, emit_src=False)


def to_verilog(component: wiring.Component, name: str, out_dir: os.PathLike | str) -> Path:
    """Write ``<out_dir>/<name>-<hash>.v`` and return its path; one file per parameter set.

    The file name carries a hash of the Verilog text, so two parameter sets never overwrite each
    other and an unchanged design reuses its file (and the simulator build keyed on it).
    """
    text = verilog_text(component, name)
    digest = hashlib.sha1(text.encode()).hexdigest()[:12]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}-{digest}.v"
    if not path.exists() or path.read_text() != text:
        tmp = path.with_suffix(f".v.{os.getpid()}.tmp")
        tmp.write_text(text)
        os.replace(tmp, path)
    return path


class FlipOutputBit(wiring.Component):
    """A deliberately corrupted unit: ``inner`` with one payload bit of one output beat inverted.

    The wrapper has exactly the ports of ``inner`` (same signature, same Verilog port names), so a
    bench drives it unchanged. On the ``beat``-th handshake (counting from 0) of the output stream
    ``stream`` it XORs bit ``bit`` of that stream's payload. A correct bench must then fail: this is
    how ``tests/test_hw_*_cocotb.py`` prove their benches can see a one-bit error.

    Parameters
    ----------
    inner : wiring.Component
        The unit to corrupt.
    stream : str
        Name of an output stream member of ``inner`` (default ``"o_stream"``).
    bit : int
        Payload bit to invert.
    beat : int
        Output beat (0-based handshake index) on which the bit is inverted.
    """

    @validated
    def __init__(self, inner: wiring.Component, *, stream: str = "o_stream", bit: int = 0, beat: int = 0):
        if stream not in inner.signature.members:
            raise HwParamError(f"stream: {inner.__class__.__name__} has no member {stream!r}")
        width = Value.cast(getattr(inner, stream).payload).shape().width
        self._inner = inner
        self._stream = stream
        self._bit = check_int("bit", bit, lo=0, hi=width - 1)
        self._beat = check_int("beat", beat, lo=0)
        super().__init__(inner.signature)

    def elaborate(self, platform):
        m = Module()
        m.submodules.inner = inner = self._inner
        outer_ports = dict((p, v) for p, _, v in self.signature.flatten(self))
        target = (self._stream, "payload")
        count = Signal(range(self._beat + 2))
        ostream = getattr(self, self._stream)
        with m.If(ostream.valid & ostream.ready & (count <= self._beat)):
            m.d.sync += count.eq(count + 1)
        for path, member, inner_value in inner.signature.flatten(inner):
            outer_value = outer_ports[path]
            if member.flow == In:
                m.d.comb += Value.cast(inner_value).eq(Value.cast(outer_value))
            elif path == target:
                mask = Signal.like(Value.cast(inner_value))
                m.d.comb += mask.eq(Value.cast(count == self._beat) << self._bit)
                m.d.comb += Value.cast(outer_value).eq(Value.cast(inner_value) ^ mask)
            else:
                m.d.comb += Value.cast(outer_value).eq(Value.cast(inner_value))
        return m
