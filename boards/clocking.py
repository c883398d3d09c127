"""Board clock generation: a PLL that makes the ``sync`` domain at a requested frequency.

Boards have one fixed oscillator (iCEBreaker 12 MHz, ULX3S 25 MHz, OrangeCrab 48 MHz); the
accelerator wants a faster clock, chosen per build. The divider search runs in Python, before
elaboration, so an unreachable frequency fails early with :class:`HwParamError` and the achieved
frequency is known when the UART divisor is computed:

- :func:`ice40_pll` picks ``DIVR/DIVF/DIVQ/FILTER_RANGE`` for ``SB_PLL40_{PAD,CORE}`` in
  simple-feedback mode, the same search and tie-breaking as ``icepll``.
- :func:`ecp5_pll` picks ``CLKI_DIV/CLKFB_DIV/CLKOP_DIV/CLKOP_CPHASE`` for ``EHXPLLL`` with
  CLKOP feedback, the same search and tie-breaking as ``ecppll`` (VCO nearest 600 MHz).

:class:`Ice40ClockGen` and :class:`Ecp5ClockGen` instantiate the PLL, drive the clock of the
``sync`` domain (which the parent declares) with it, add a clock constraint on it, and hold
``sync`` in reset (a :class:`~amaranth.lib.cdc.ResetSynchronizer`: asserted at once, released on
a clock edge) until the PLL locks and while the board's reset button, if any, is pressed. On ECP5
the synchronized reset then goes through a ``DCCA`` onto a global network: it reaches most of
the design's flip-flops, and as a fabric net it kept nextpnr's router from converging on the
16-lane ULX3S design (iCE40: nextpnr promotes such a reset to a global buffer by itself).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

from amaranth.hdl import ClockSignal, Instance, Module, ResetSignal, Signal
from amaranth.lib import io, wiring
from amaranth.lib.cdc import AsyncFFSynchronizer, ResetSynchronizer
from amaranth.lib.wiring import Out

from ..hw.common import HwParamError, validated

__all__ = ["Ice40PllSetting", "Ecp5PllSetting", "ice40_pll", "ecp5_pll", "Ice40ClockGen",
           "Ecp5ClockGen", "DEFAULT_TOLERANCE"]

DEFAULT_TOLERANCE = 0.01
"""Largest accepted relative error between requested and achieved frequency (1 %)."""


def _check_freq(name: str, f, lo: float, hi: float, what: str) -> Fraction:
    try:
        f = Fraction(f).limit_denominator(10**9)
    except (TypeError, ValueError):
        raise HwParamError(f"{name}: must be a frequency in MHz, got {f!r}") from None
    if not lo <= f <= hi:
        raise HwParamError(f"{name}: {float(f):g} MHz is outside the {what} range {lo:g}..{hi:g} MHz")
    return f


def _check_tolerance(tolerance) -> Fraction:
    t = Fraction(tolerance).limit_denominator(10**9)
    if not 0 <= t < 1:
        raise HwParamError(f"tolerance: must be in 0..1 (relative), got {tolerance!r}")
    return t


def _unreachable(family, f_in, f_out, best, tol) -> HwParamError:
    near = f"; the nearest is {float(best):.4f} MHz" if best is not None else ""
    return HwParamError(f"{family} PLL: no divider setting makes {float(f_out):g} MHz from "
                        f"{float(f_in):g} MHz within {float(tol) * 100:g} %{near}")


# --- iCE40 --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Ice40PllSetting:
    """``SB_PLL40_*`` simple-feedback parameters: f_out = f_in * (DIVF+1) / (DIVR+1) / 2**DIVQ."""

    f_in_mhz: float
    divr: int
    divf: int
    divq: int
    filter_range: int

    @property
    def f_pfd_mhz(self) -> float:
        return self.f_in_mhz / (self.divr + 1)

    @property
    def f_vco_mhz(self) -> float:
        return self.f_pfd_mhz * (self.divf + 1)

    @property
    def f_out_mhz(self) -> float:
        return self.f_vco_mhz / 2**self.divq

    def describe(self) -> str:
        return (f"SB_PLL40 {self.f_in_mhz:g} MHz -> {self.f_out_mhz:.4f} MHz (DIVR={self.divr} "
                f"DIVF={self.divf} DIVQ={self.divq} FILTER_RANGE={self.filter_range}, VCO {self.f_vco_mhz:.2f} MHz)")


def _ice40_filter_range(f_pfd: Fraction) -> int:
    for bound, rng in ((17, 1), (26, 2), (44, 3), (66, 4), (101, 5)):
        if f_pfd < bound:
            return rng
    return 6


def ice40_pll(f_in_mhz, f_out_mhz, *, tolerance=DEFAULT_TOLERANCE) -> Ice40PllSetting:
    """Search iCE40 PLL dividers like ``icepll`` (PFD 10..133 MHz, VCO 533..1066 MHz).

    Raises :class:`HwParamError` if the best setting misses ``f_out_mhz`` by more than
    ``tolerance`` (relative) or either frequency is outside the PLL's range.
    """
    f_in = _check_freq("f_in_mhz", f_in_mhz, 10, 133, "iCE40 PLL input")
    f_out = _check_freq("f_out_mhz", f_out_mhz, 16, 275, "iCE40 PLL output")
    tol = _check_tolerance(tolerance)
    best = None  # (error, divr, divf, divq, fout)
    for divr in range(16):
        f_pfd = f_in / (divr + 1)
        if not 10 <= f_pfd <= 133:
            continue
        for divf in range(128):
            f_vco = f_pfd * (divf + 1)
            if not 533 <= f_vco <= 1066:
                continue
            for divq in range(1, 7):
                fout = f_vco / 2**divq
                err = abs(fout - f_out)
                if best is None or err < best[0]:
                    best = (err, divr, divf, divq, fout)
    if best is None or best[0] > tol * f_out:
        raise _unreachable("iCE40", f_in, f_out, best and best[4], tol)
    _, divr, divf, divq, _ = best
    return Ice40PllSetting(float(f_in), divr, divf, divq, _ice40_filter_range(f_in / (divr + 1)))


# --- ECP5 ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Ecp5PllSetting:
    """``EHXPLLL`` CLKOP-feedback parameters: f_out = f_in * CLKFB_DIV / CLKI_DIV."""

    f_in_mhz: float
    clki_div: int
    clkfb_div: int
    clkop_div: int

    @property
    def clkop_cphase(self) -> int:
        """Coarse phase of CLKOP for a 0° shift (``CLKOP_DIV - 1``, as ``ecppll`` writes it)."""
        return self.clkop_div - 1

    @property
    def f_pfd_mhz(self) -> float:
        return self.f_in_mhz / self.clki_div

    @property
    def f_out_mhz(self) -> float:
        return self.f_pfd_mhz * self.clkfb_div

    @property
    def f_vco_mhz(self) -> float:
        return self.f_out_mhz * self.clkop_div

    def describe(self) -> str:
        return (f"EHXPLLL {self.f_in_mhz:g} MHz -> {self.f_out_mhz:.4f} MHz (CLKI_DIV={self.clki_div} "
                f"CLKFB_DIV={self.clkfb_div} CLKOP_DIV={self.clkop_div} CLKOP_CPHASE={self.clkop_cphase}, "
                f"VCO {self.f_vco_mhz:.2f} MHz)")


def ecp5_pll(f_in_mhz, f_out_mhz, *, tolerance=DEFAULT_TOLERANCE) -> Ecp5PllSetting:
    """Search ECP5 PLL dividers like ``ecppll`` (PFD 3.125..400 MHz, VCO 400..800 MHz).

    Among equally close settings, the one whose VCO is nearest 600 MHz wins (then the first
    found, smallest dividers first). Raises :class:`HwParamError` when out of ``tolerance``.
    """
    f_in = _check_freq("f_in_mhz", f_in_mhz, 8, 400, "ECP5 PLL input")
    f_out = _check_freq("f_out_mhz", f_out_mhz, 10, 400, "ECP5 PLL output")
    tol = _check_tolerance(tolerance)
    best = None  # (error, vco distance from 600, clki, clkfb, clkop, fout)
    for clki in range(1, 129):
        f_pfd = f_in / clki
        if not Fraction(3125, 1000) <= f_pfd <= 400:
            continue
        for clkfb in range(1, 81):
            fout = f_pfd * clkfb
            # CLKOP_DIV only places the VCO (= fout * CLKOP_DIV) in 400..800 MHz; prefer ~600.
            lo, hi = max(1, math.ceil(400 / fout)), min(128, math.floor(800 / fout))
            if lo > hi:
                continue
            mid = math.floor(600 / fout)
            op = min((d for d in (mid, mid + 1) if lo <= d <= hi), default=None,
                     key=lambda d: (abs(fout * d - 600), d))
            op = op if op is not None else (lo if fout * lo > 600 else hi)
            cand = (abs(fout - f_out), abs(fout * op - 600), clki, clkfb, op, fout)
            if best is None or cand[0] < best[0] or (cand[0] == best[0] and cand[1] < best[1]):
                best = cand
    if best is None or best[0] > tol * f_out:
        raise _unreachable("ECP5", f_in, f_out, best and best[5], tol)
    return Ecp5PllSetting(float(f_in), best[2], best[3], best[4])


# --- clock generators ---------------------------------------------------------------------------

class _ClockGen(wiring.Component):
    """Common part: board clock in, PLL, clock and reset of a domain, reset held until lock / on button.

    The parent declares the domain (``m.domains.sync = ClockDomain()``, as Amaranth 0.6 will
    require); this component drives its clock and its reset.

    Parameters
    ----------
    setting : Ice40PllSetting or Ecp5PllSetting
        The PLL setting (from :func:`ice40_pll` / :func:`ecp5_pll`).
    clk_resource : str
        Name of the board's oscillator resource (``platform.default_clk``).
    rst_resource : (str, int) or None
        Board reset button resource, pressed = 1 after the platform's inversion.
    domain : str
        The clock domain driven (default ``"sync"``).

    Members
    -------
    locked : Out(1)
        The PLL's lock output (asynchronous), for a status LED.
    """

    @validated
    def __init__(self, setting, clk_resource: str, rst_resource=None, *, domain: str = "sync"):
        if not isinstance(setting, self._SETTING):
            raise HwParamError(f"setting: expected {self._SETTING.__name__}, got {type(setting).__name__}")
        self.setting = setting
        self.clk_resource = clk_resource
        self.rst_resource = rst_resource
        self.domain = domain
        super().__init__({"locked": Out(1)})

    @property
    def f_sync_hz(self) -> float:
        """Achieved ``sync`` frequency in Hz."""
        return self.setting.f_out_mhz * 1e6

    def elaborate(self, platform):
        if platform is None:
            raise HwParamError(f"{type(self).__name__}: needs a board platform (PLLs do not simulate)")
        m = Module()
        # A kept net of this module alone: a constraint on the domain's clock signal itself would be
        # written under the name of whichever submodule uses it last, which Yosys has merged away.
        clk_pll = Signal(attrs={"keep": 1})
        self._pll(m, platform, clk_pll)
        m.d.comb += ClockSignal(self.domain).eq(clk_pll)
        platform.add_clock_constraint(clk_pll, self.f_sync_hz)
        arst = ~self.locked
        if self.rst_resource is not None:
            btn = platform.request(*self.rst_resource, dir="-")
            m.submodules.rst_buf = rst_buf = io.Buffer("i", btn)
            arst = arst | rst_buf.i
        self._reset(m, arst)
        return m

    def _reset(self, m, arst):
        m.submodules.rst_sync = ResetSynchronizer(arst, domain=self.domain)


class Ice40ClockGen(_ClockGen):
    """``SB_PLL40_PAD`` (board clock on the PLL's own pad) or ``SB_PLL40_CORE`` in simple feedback.

    ``pad=True`` suits boards whose oscillator is on the PLL pad: the iCEBreaker (pin 35), where
    ``SB_PLL40_CORE`` cannot be placed at all (nextpnr: the PLL's BEL conflicts with the input on
    pin 35). With ``pad=False`` the clock enters through an ordinary input buffer.
    """

    _SETTING = Ice40PllSetting

    @validated
    def __init__(self, setting, clk_resource: str, rst_resource=None, *, domain: str = "sync", pad: bool = True):
        self.pad = bool(pad)
        super().__init__(setting, clk_resource, rst_resource, domain=domain)

    def _pll(self, m, platform, clk_out):
        s = self.setting
        params = dict(p_FEEDBACK_PATH="SIMPLE", p_DIVR=s.divr, p_DIVF=s.divf, p_DIVQ=s.divq,
                      p_FILTER_RANGE=s.filter_range, i_RESETB=1, i_BYPASS=0,
                      o_PLLOUTGLOBAL=clk_out, o_LOCK=self.locked)
        port = platform.request(self.clk_resource, dir="-")
        if self.pad:
            m.submodules.pll = Instance("SB_PLL40_PAD", i_PACKAGEPIN=port.io, **params)
        else:
            m.submodules.clk_buf = clk_buf = io.Buffer("i", port)
            m.submodules.pll = Instance("SB_PLL40_CORE", i_REFERENCECLK=clk_buf.i, **params)


class Ecp5ClockGen(_ClockGen):
    """``EHXPLLL`` with CLKOP fed back, attributes as ``ecppll`` writes them."""

    _SETTING = Ecp5PllSetting

    def _reset(self, m, arst):
        # The synchronous reset reaches most of the design's flip-flops: on the general fabric that
        # is one net of thousands of loads across the whole design, routed beside the data. A DCCA
        # puts it on a global network, which reaches every slice's LSR.
        rst = Signal()
        m.submodules.rst_sync = AsyncFFSynchronizer(arst, rst, o_domain=self.domain)
        m.submodules.rst_buf_g = Instance("DCCA", i_CLKI=rst, i_CE=1, o_CLKO=ResetSignal(self.domain))

    def _pll(self, m, platform, clk_out):
        s = self.setting
        port = platform.request(self.clk_resource, dir="-")
        m.submodules.clk_buf = clk_buf = io.Buffer("i", port)
        m.submodules.pll = Instance(
            "EHXPLLL",
            a_FREQUENCY_PIN_CLKI=f"{s.f_in_mhz:g}", a_FREQUENCY_PIN_CLKOP=f"{s.f_out_mhz:.6f}",
            a_ICP_CURRENT="12", a_LPF_RESISTOR="8", a_MFG_ENABLE_FILTEROPAMP="1", a_MFG_GMCREF_SEL="2",
            p_PLLRST_ENA="DISABLED", p_INTFB_WAKE="DISABLED", p_STDBY_ENABLE="DISABLED",
            p_DPHASE_SOURCE="DISABLED", p_OUTDIVIDER_MUXA="DIVA", p_OUTDIVIDER_MUXB="DIVB",
            p_OUTDIVIDER_MUXC="DIVC", p_OUTDIVIDER_MUXD="DIVD",
            p_CLKI_DIV=s.clki_div, p_CLKFB_DIV=s.clkfb_div, p_CLKOP_ENABLE="ENABLED",
            p_CLKOP_DIV=s.clkop_div, p_CLKOP_CPHASE=s.clkop_cphase, p_CLKOP_FPHASE=0,
            p_FEEDBK_PATH="CLKOP",
            i_CLKI=clk_buf.i, i_CLKFB=clk_out, i_RST=0, i_STDBY=0, i_PHASESEL0=0, i_PHASESEL1=0,
            i_PHASEDIR=1, i_PHASESTEP=1, i_PHASELOADREG=1, i_PLLWAKESYNC=0, i_ENCLKOP=0,
            o_CLKOP=clk_out, o_LOCK=self.locked,
        )
