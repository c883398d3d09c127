"""The build report: what a board build used, how fast it runs, and whether it is usable.

Parsed from nextpnr's ``--report`` JSON (``utilization``: used/available per cell type;
``fmax``: achieved vs constrained MHz per clock), from nextpnr's log when it stopped before
writing that report (a design that does not fit), and from the synthesized netlist (LUT4 and
flip-flop counts on iCE40, where nextpnr only counts packed logic cells, and multiplier cells).

:class:`BuildReport` renders ``report.md``, ``report.json`` and ``resources.png``; ``ok`` is
false, and the Markdown says why in its first lines, when the design does not fit, misses
timing, or a tool failed. Its throughput and energy figures (images/s, GSOP/s, GSOP/s per 1,000
LUTs, the SOP-based energy an image beside the same network's as an ANN) are
:func:`csdformer.boards.figures.figures` of the cycle model's work (:attr:`BuildReport.work`).
"""

from __future__ import annotations

import collections
import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .critical_path import CriticalPath
from .figures import figures as _figures
from .programming import instructions, markdown as programming_markdown

__all__ = ["ResourceUse", "ClockTiming", "BuildReport", "parse_utilization", "parse_log_utilization",
           "netlist_cells", "resource_rows", "clock_rows", "MULTIPLIER_CELLS"]

SEED_MARGIN_PCT = 10.0
"""A clock missed by less than this (percent) is within reach of another placement: the 16-lane
ULX3S digits design gives 104.4 MHz at nextpnr's default seed and 94.6 MHz with ``--seed 7``
(docs/results.md, session 11); the report then says so and names ``--seed``."""

# Where the timing work on the accelerator is written down, step by step, with each step's Fmax.
TIMING_HISTORY = "docs/results.md (the Fmax tables and the critical paths of each session's builds)"

MULTIPLIER_CELLS = {"ice40": ("SB_MAC16",), "ecp5": ("MULT18X18D", "ALU54B")}

# Report row -> nextpnr utilization key, per family; None = counted from the netlist instead.
_ROWS = {
    "ice40": [("LUT", None), ("FF", None), ("BRAM", "ICESTORM_RAM"), ("SPRAM", "ICESTORM_SPRAM"),
              ("DSP", "ICESTORM_DSP"), ("LC", "ICESTORM_LC"), ("IO", "SB_IO"), ("PLL", "ICESTORM_PLL")],
    "ecp5": [("LUT", "TRELLIS_COMB"), ("FF", "TRELLIS_FF"), ("BRAM", "DP16KD"), ("DSP", "MULT18X18D"),
             ("ALU54", "ALU54B"), ("LUTRAM", "TRELLIS_RAMW"), ("IO", "TRELLIS_IO"), ("PLL", "EHXPLLL")],
}
_ICE40_FF = re.compile(r"^SB_DFF\w*$")


@dataclass
class ResourceUse:
    """One resource row: ``used`` of ``available`` (``None`` when unknown)."""

    name: str
    used: int | None
    available: int | None

    @property
    def fits(self) -> bool:
        return self.used is None or self.available is None or self.used <= self.available

    @property
    def percent(self) -> float | None:
        if self.used is None or not self.available:
            return None
        return 100.0 * self.used / self.available


@dataclass
class ClockTiming:
    """One clock: nextpnr's achieved Fmax against its constraint, in MHz."""

    name: str
    target_mhz: float
    achieved_mhz: float

    @property
    def met(self) -> bool:
        return self.achieved_mhz >= self.target_mhz


def parse_utilization(report: dict) -> dict[str, tuple[int, int]]:
    """``{cell type: (used, available)}`` from a nextpnr ``--report`` dict."""
    return {k: (int(v["used"]), int(v["available"])) for k, v in report.get("utilization", {}).items()}


_LOG_UTIL = re.compile(r"^Info:\s+(\w+):\s+(\d+)/\s*(\d+)\s+\d+%", re.MULTILINE)


def parse_log_utilization(text: str) -> dict[str, tuple[int, int]]:
    """``{cell type: (used, available)}`` from the last "Device utilisation" block of a nextpnr log."""
    blocks = text.split("Device utilisation:")
    if len(blocks) < 2:
        return {}
    return {k: (int(u), int(a)) for k, u, a in _LOG_UTIL.findall(blocks[-1].split("\n\n")[0])}


def netlist_cells(netlist: dict, top: str = "top") -> collections.Counter:
    """Cell type counts of module ``top`` in a Yosys ``write_json`` netlist."""
    cells = netlist.get("modules", {}).get(top, {}).get("cells", {})
    return collections.Counter(c["type"] for c in cells.values())


def resource_rows(family: str, util: dict, cells: collections.Counter) -> list[ResourceUse]:
    """The report's resource rows for ``family`` from utilization and netlist cell counts."""
    rows = []
    for name, key in _ROWS[family]:
        if key is not None:
            used, avail = util.get(key, (None, None))
        else:  # iCE40 LUT4 / FF: from the netlist, against the logic-cell count
            avail = util.get("ICESTORM_LC", (None, None))[1]
            if not cells:
                used = None
            elif name == "LUT":
                used = cells["SB_LUT4"]
            else:
                used = sum(n for t, n in cells.items() if _ICE40_FF.match(t))
        rows.append(ResourceUse(name, used, avail))
    return rows


def clock_rows(report: dict) -> list[ClockTiming]:
    """Per-clock timing from a nextpnr ``--report`` dict."""
    return [ClockTiming(name.removeprefix("$glbnet$"), float(v["constraint"]), float(v["achieved"]))
            for name, v in sorted(report.get("fmax", {}).items())]


@dataclass
class BuildReport:
    """Result of one board build (see :func:`csdformer.boards.build.build`)."""

    board: str
    device: str
    family: str
    target_mhz: float | None = None
    sync_mhz: float | None = None
    goal_mhz: float | None = None
    pll: str = ""
    resources: list[ResourceUse] = field(default_factory=list)
    multipliers: dict[str, int] = field(default_factory=dict)
    clocks: list[ClockTiming] = field(default_factory=list)
    fit: bool | None = None
    seconds: float = 0.0
    stages: dict[str, float] = field(default_factory=dict)
    bitstream: str | None = None
    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    cycles_per_image: float | None = None  # the cycle model's mean over model_images test images
    model_images: int = 0
    # The model's flash image: {"name", "image" (path), "bytes", "offset", "flash_bytes", "model_id",
    # "fabric_id"} (hex ids); None for a build without one.
    model: dict | None = None
    # The memory backend in the cycle model: {"backend", "latency", "byte_cycles", "mbytes_per_s",
    # "wait_cycles", "load_cycles", "bound", "resident"} (per image, means; resident weights also
    # "resident_cycles", the reading of every record once after reset); None when not modelled.
    memory: dict | None = None
    reused: str | None = None  # the cached build whose bitstream this one reuses (no synthesis)
    # The cycle model's work an image, what the throughput and energy figures come from
    # (csdformer.boards.figures.work: {"images", "cycles", "sops", "encoding_sops", "encoding_macs",
    # "ann_macs"}, optionally "note"); None when the cycle model did not run.
    work: dict | None = None
    # Each clock's slowest register-to-register path (nextpnr's report): where a timing fix aims.
    critical_paths: list[CriticalPath] = field(default_factory=list)
    # Each nextpnr placement tried (csdformer.boards.build._place), in order: {"seed" (None:
    # nextpnr's own), "clocks": {clock: [target MHz, achieved MHz]}, "met"}; the best one is built.
    placements: list[dict] = field(default_factory=list)

    def images_per_s(self, mhz: float | None) -> float | None:
        """Images per second at ``mhz`` from the cycle model (``None`` when either is unknown)."""
        if not self.cycles_per_image or not mhz:
            return None
        return mhz * 1e6 / self.cycles_per_image

    @property
    def luts(self) -> int | None:
        """The build's LUT count (the ``LUT`` resource row); ``None`` when it has none."""
        return next((r.used for r in self.resources if r.name == "LUT"), None)

    @property
    def figures_mhz(self) -> float | None:
        """The clock of the throughput figures: the build's sync clock (the PLL's), else the one
        requested (a design refused before the PLL was chosen)."""
        return self.sync_mhz or self.target_mhz

    def figures(self) -> dict | None:
        """Throughput and energy figures (:func:`csdformer.boards.figures.figures`) of :attr:`work`
        at :attr:`figures_mhz` with :attr:`luts`: images/s, GSOP/s, GSOP/s per 1,000 LUTs, the
        SOP-based energy an image and the same network's as an ANN; ``None`` without ``work``."""
        if not self.work:
            return None
        return _figures(self.work, self.figures_mhz, self.luts)

    @property
    def timing_met(self) -> bool | None:
        """All clocks meet their constraints; ``None`` when there is no timing result."""
        return all(c.met for c in self.clocks) if self.clocks else None

    @property
    def fmax_mhz(self) -> float | None:
        """The lowest achieved Fmax over the clocks."""
        return min((c.achieved_mhz for c in self.clocks), default=None)

    @property
    def ok(self) -> bool:
        """The one verdict: fits, meets the clock it was built for, has a bitstream (the goal clock
        is not part of it)."""
        return bool(self.fit and self.timing_met and self.bitstream and not self.errors)

    @property
    def goal_met(self) -> bool | None:
        """Whether Fmax reaches :attr:`goal_mhz` (a clock aimed for, not required); ``None`` when unknown."""
        if not self.goal_mhz or self.fmax_mhz is None:
            return None
        return self.fmax_mhz >= self.goal_mhz

    def goal_text(self) -> str:
        """The goal clock, said as a goal: ``goal 50 MHz (aimed for, not required): not reached``."""
        if not self.goal_mhz:
            return ""
        met = self.goal_met
        state = "unknown (no Fmax)" if met is None else "reached" if met else "not reached"
        return f"goal {self.goal_mhz:g} MHz (aimed for, not required): {state}"

    def programming(self) -> dict | None:
        """How to put the bitstream on the board (:func:`csdformer.boards.programming.instructions`)."""
        model = {"image": self.model["image"], "offset": self.model["offset"]} if self.model else None
        return instructions(self.board, self.bitstream, self.notes, model)

    def verdict(self) -> str:
        """One plain line: usable, or the reasons it is not; the goal clock as a goal."""
        if self.ok:
            clock = self.sync_mhz or self.target_mhz or min(c.target_mhz for c in self.clocks)
            goal = f"; {self.goal_text()}" if self.goal_mhz else ""
            return f"OK: fits and meets its {clock:g} MHz clock (Fmax {self.fmax_mhz:.1f} MHz){goal}"
        why = []
        if self.fit is False:
            over = [f"{r.name} {r.used}/{r.available}" for r in self.resources if not r.fits]
            why.append("does NOT fit the device (" + (", ".join(over) or "see the errors") + ")")
        why += self.errors
        if self.timing_met is False:
            why += [f"misses timing on {c.name}: {c.achieved_mhz:.2f} MHz < {c.target_mhz:.2f} MHz"
                    for c in self.clocks if not c.met]
        if not why and not self.bitstream:
            why.append("no bitstream was written")
        if not why:
            why.append("no timing result")
        return "FAILED: " + "; ".join(why)

    def placements_text(self) -> str:
        """The placements tried, one phrase each: ``Placements (nextpnr seeds): its own 93.7 MHz,
        2: 100.7 MHz (met, kept)``."""
        best = max(range(len(self.placements)), key=lambda i: min(
            (a / t for t, a in self.placements[i]["clocks"].values()), default=0.0))
        parts = []
        for i, p in enumerate(self.placements):
            mhz = ", ".join(f"{a:.1f} MHz" for _, a in p["clocks"].values()) or "no timing result"
            tags = ["met"] * p["met"] + ["kept"] * (i == best)
            seed = "its own" if p["seed"] is None else p["seed"]
            parts.append(f"{seed}: {mhz}" + (f" ({', '.join(tags)})" if tags else ""))
        return f"Placements (nextpnr seeds, tried in turn while the clock was missed by less than " \
               f"{SEED_MARGIN_PCT:g} %): " + "; ".join(parts)

    def to_dict(self) -> dict:
        d = asdict(self)
        d.update(ok=self.ok, timing_met=self.timing_met, fmax_mhz=self.fmax_mhz, verdict=self.verdict(),
                 goal_met=self.goal_met, programming=self.programming(),
                 images_per_s=self.images_per_s(self.sync_mhz), images_per_s_at_fmax=self.images_per_s(self.fmax_mhz),
                 figures=self.figures())
        for r, rd in zip(self.resources, d["resources"]):
            rd["percent"] = r.percent
        for c, cd in zip(self.clocks, d["clocks"]):
            cd["met"] = c.met
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "BuildReport":
        keep = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        keep["resources"] = [ResourceUse(r["name"], r["used"], r["available"]) for r in d.get("resources", [])]
        keep["clocks"] = [ClockTiming(c["name"], c["target_mhz"], c["achieved_mhz"]) for c in d.get("clocks", [])]
        keep["critical_paths"] = [CriticalPath.from_dict(c) for c in d.get("critical_paths", [])]
        return cls(**keep)

    def to_markdown(self) -> str:
        def n(v):
            return "?" if v is None else str(v)

        lines = [f"# Build report: {self.board} ({self.device})", "", f"**{self.verdict()}**", ""]
        if self.pll:
            lines += [f"- Clock: requested {self.target_mhz:g} MHz (required), PLL gives {self.sync_mhz:.4f} MHz "
                      f"({self.pll})"]
        if self.goal_mhz and not self.ok:  # an OK verdict already says it
            lines.append(f"- Clock {self.goal_text()}" + (f" (Fmax {self.fmax_mhz:.1f} MHz)" if self.fmax_mhz else ""))
        stages = ", ".join(f"{k} {v:.1f} s" for k, v in self.stages.items())
        lines += [f"- Build time: {self.seconds:.1f} s ({stages})", f"- Bitstream: {self.bitstream or 'none'}"]
        if self.reused:
            lines.append(f"- Bitstream reused from the build cache ({self.reused}): the model fits its fabric, "
                         "so no synthesis ran; only the model image is new")
        if self.model:
            md = self.model
            lines.append(f"- Model: {md['name']} (model id {md['model_id']}, fabric {md['fabric_id']}), flash image "
                         f"{md['image']}: {md['bytes']:,} bytes at 0x{md['offset']:x} of the "
                         f"{md['flash_bytes'] // (1 << 20)} MiB flash")
        if self.cycles_per_image:
            rate = f"{self.images_per_s(self.sync_mhz):.1f} images/s at {self.sync_mhz:.1f} MHz" if self.sync_mhz else ""
            if self.fmax_mhz:
                rate += f"{'; ' if rate else ''}{self.images_per_s(self.fmax_mhz):.1f} at Fmax"
            lines.append(f"- Expected speed (cycle model, mean of {self.model_images} test images: "
                         f"{self.cycles_per_image:,.0f} cycles/image): {rate or 'no clock known'}")
        if self.memory and self.memory.get("resident"):
            mm = self.memory
            lines.append(f"- Memory: {mm['backend']}, {mm['mbytes_per_s']:.1f} MB/s; weights resident: every record "
                         f"read once after reset ({mm['resident_cycles']:,} cycles), none for an image: "
                         f"**{mm['bound']}-bound**")
        elif self.memory:
            mm = self.memory
            lines.append(f"- Memory: {mm['backend']}, {mm['mbytes_per_s']:.1f} MB/s ({mm['byte_cycles']} cycles a "
                         f"byte, {mm['latency']} cycles to the first); per image {mm['load_cycles']:,.0f} cycles "
                         f"loading weights, {mm['wait_cycles']:,.0f} waiting for them: **{mm['bound']}-bound**")
        lines.append("")
        lines += ["| resource | used | available | % |", "|---|---:|---:|---:|"]
        for r in self.resources:
            pct = "" if r.percent is None else f"{r.percent:.1f}"
            flag = " **over**" if not r.fits else ""
            lines.append(f"| {r.name} | {n(r.used)}{flag} | {n(r.available)} | {pct} |")
        lines += ["", "| clock | target MHz | Fmax MHz | met |", "|---|---:|---:|---|"]
        for c in self.clocks:
            lines.append(f"| {c.name} | {c.target_mhz:.2f} | {c.achieved_mhz:.1f} | {'yes' if c.met else '**NO**'} |")
        if len(self.placements) > 1:
            lines += ["", self.placements_text()]
        if self.critical_paths:
            lines += ["", "Critical path" + ("s" if len(self.critical_paths) > 1 else "") + " (nextpnr):", ""]
            for cp in self.critical_paths:
                lines += cp.markdown()
            if self.timing_met is False or self.goal_met is False:
                lines.append(f"- {'The clock' if self.timing_met is False else 'The goal clock'} is missed: what has been "
                             f"tried on this design's timing, and what each step won, is in {TIMING_HISTORY}")
            missed = [c for c in self.clocks if not c.met]
            if missed:
                worst = min(missed, key=lambda c: c.achieved_mhz / c.target_mhz)
                short = 100 * (1 - worst.achieved_mhz / worst.target_mhz)
                if short < SEED_MARGIN_PCT and len(self.placements) <= 1:
                    lines.append(f"- `{worst.name}` is {short:.1f} % short of {worst.target_mhz:g} MHz: placement alone "
                                 f"moves Fmax by about ±5 % on these designs; `csdformer build ... --seed N` "
                                 f"places it again with another seed, `--seeds N` tries N in turn")
        mult = ", ".join(f"{k} {v}" for k, v in self.multipliers.items()) or "none"
        lines += ["", f"Multiplier cells: {mult}"]
        lines += [f"- note: {x}" for x in self.notes]
        lines += [""] + self.figures_markdown()
        lines += programming_markdown(self.programming())
        return "\n".join(lines) + "\n"

    def figures_markdown(self) -> list[str]:
        """The report's "Throughput and energy" section (Markdown lines)."""
        head = ["## Throughput and energy", ""]
        f = self.figures()
        if f is None:
            return head + ["Not computed: the cycle model did not run (see the notes)."]
        mhz = f["mhz"]
        clock = ("no clock known" if not mhz else f"{mhz:.1f} MHz, the build's clock" if self.sync_mhz
                 else f"{mhz:g} MHz, the clock requested (no PLL chosen)")
        lines = head + [f"Cycle model, mean of {f['images']} test images at {f['cycles']:,.0f} cycles/image; "
                        f"{clock}. A model estimate, not a measurement."]
        if f.get("note"):
            lines.append(f"Figures {f['note']}.")

        def g(v, unit=""):
            return "n/a" if v is None else f"{v:.4g}{unit}"

        body = f["sops"] - f["encoding_sops"]
        luts = "no LUT count" if not f["luts"] else f"{f['luts']:,} LUTs"
        lines += ["", "| figure | value |", "|---|---:|",
                  f"| images/s | {g(f['images_per_s'])} |",
                  f"| GSOP/s ({f['sops']:,.0f} SOPs/image × images/s) | {g(f['gsop_per_s'])} |",
                  f"| GSOP/s per 1,000 LUTs ({luts}) | {g(f['gsop_per_s_per_klut'])} |",
                  f"| SOPs/image (of which the encoding op's bit-serial pixels {f['encoding_sops']:,.0f}) | "
                  f"{f['sops']:,.0f} |",
                  f"| SOP-based energy/image (45 nm: {f['e_mac_pj']} pJ · {f['encoding_macs']:,} encoding MACs + "
                  f"{f['e_ac_pj']} pJ · {body:,.0f} SOPs) | {g(f['energy_snn_uj'], ' µJ')} |",
                  f"| same network as an ANN ({f['e_mac_pj']} pJ · {f['ann_macs']:,} MACs) | "
                  f"{g(f['energy_ann_uj'], ' µJ')} ({g(f['ann_over_snn'])}× the SNN) |"]
        return lines

    def plot(self, path) -> Path:
        """A bar chart of resource use in percent of the device (matplotlib, Agg)."""
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        rows = [r for r in self.resources if r.percent is not None]
        fig = Figure(figsize=(6, 0.45 * len(rows) + 1.2))
        FigureCanvasAgg(fig)
        ax = fig.add_subplot()
        ax.barh([r.name for r in rows], [r.percent for r in rows],
                color=["tab:red" if not r.fits else "tab:blue" for r in rows])
        for i, r in enumerate(rows):
            ax.text(min(r.percent, 100) + 1, i, f"{r.used}/{r.available}", va="center", fontsize=8)
        ax.set_xlim(0, 115)
        ax.invert_yaxis()
        ax.set_xlabel("% of device")
        ax.set_title(f"{self.board} ({self.device}): {'OK' if self.ok else 'FAILED'}")
        fig.tight_layout()
        fig.savefig(path, dpi=100)
        return Path(path)

    def write(self, out_dir) -> dict[str, Path]:
        """Write ``report.md``, ``report.json`` and ``resources.png`` into ``out_dir``."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        paths = {"md": out / "report.md", "json": out / "report.json", "png": out / "resources.png"}
        paths["md"].write_text(self.to_markdown())
        paths["json"].write_text(json.dumps(self.to_dict(), indent=1) + "\n")
        self.plot(paths["png"])
        return paths
