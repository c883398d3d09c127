"""The critical path of a build, from nextpnr's ``--report`` JSON, in the terms a designer aims a
timing fix with: where it starts and ends, how much of it is logic and how much routing, how many
logic levels, and the lines of our source that the path's nets come from (Amaranth records them
on every wire; nextpnr reports them per routing step).

The build report (:mod:`csdformer.boards.report`) shows the slowest path of each clock;
``bench/accel_fmax.py`` prints the same for the accelerator alone.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field

__all__ = ["CriticalPath", "critical_paths"]

_PACKAGE = "csdformer/"  # a source line of ours, named from the package root (hw/scatter.py:231)
# Where the synthesis tools' suffixes begin in a cell or net name: ``core.core.scatter.FA`` of
# ``core.core.scatter.FA_TRELLIS_FF_Q_7_DI_LUT4_Z_D…[1]``.
_TOOL_SUFFIX = re.compile(r"_(TRELLIS|LUT4|CCU2C|PFUMX|L6MUX|DP16KD|SB_|DFF|MULT)|\[")


@dataclass(frozen=True)
class CriticalPath:
    """One clock's slowest register-to-register path."""

    clock: str
    delay_ns: float
    logic_ns: float  # clock-to-out, cell delays and setup
    routing_ns: float
    logic_levels: int
    start: str  # the launching cell's signal
    end: str  # the capturing cell's signal
    sources: list[str] = field(default_factory=list)  # our source lines on the path, in path order
    nets: list[str] = field(default_factory=list)  # the signals it routes through, in path order

    @property
    def mhz(self) -> float:
        """The clock this path alone allows."""
        return 1000.0 / self.delay_ns

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "CriticalPath":
        return cls(**{k: d[k] for k in cls.__dataclass_fields__})

    def markdown(self) -> list[str]:
        src = ", ".join(f"`{s}`" for s in self.sources) or "none of ours (tool cells only)"
        return [f"- `{self.clock}`: {self.delay_ns:.2f} ns ({self.mhz:.1f} MHz): {self.logic_ns:.2f} ns logic and "
                f"{self.routing_ns:.2f} ns routing, {self.logic_levels} logic level{'s' * (self.logic_levels != 1)}",
                f"  - from `{self.start}`", f"  - to `{self.end}`",
                f"  - through {', '.join(f'`{n}`' for n in self.nets) or '(none)'}",
                f"  - source lines on the path: {src}"]


def _source(path: str) -> str | None:
    """``…/csdformer/hw/scatter.py:231`` → ``hw/scatter.py:231``; another file's (the tools'
    cell libraries, Amaranth's own) → None."""
    if _PACKAGE not in path or "/site-packages/amaranth/" in path:
        return None
    return path.rsplit(_PACKAGE, 1)[1]


def _signal(name: str) -> str:
    """A cell's or net's design signal: the name before the tools' suffixes."""
    m = _TOOL_SUFFIX.search(name)
    return (name[:m.start()] if m and m.start() else name) or name


def critical_paths(report: dict) -> list[CriticalPath]:
    """The clock-to-same-clock critical paths of a nextpnr ``--report`` dict, one a clock (paths
    from or to an I/O, ``<async>``, are left out: the design's registers are what it controls)."""
    out = []
    for cp in report.get("critical_paths", []):
        src, dst, steps = cp.get("from", ""), cp.get("to", ""), cp.get("path", [])
        if src != dst or "<async>" in src or not steps:
            continue
        delay = sum(float(s.get("delay", 0.0)) for s in steps)
        routing = sum(float(s.get("delay", 0.0)) for s in steps if s.get("type") == "routing")
        sources: list[str] = []
        nets = list(dict.fromkeys(_signal(s["net"]) for s in steps if s.get("net")))
        for s in steps:
            for p in s.get("sources") or ():
                name = _source(p)
                if name and name not in sources:
                    sources.append(name)
        clock = src.split(" ", 1)[-1].removeprefix("$glbnet$")
        out.append(CriticalPath(clock, round(delay, 3), round(delay - routing, 3), round(routing, 3),
                                sum(s.get("type") == "logic" for s in steps), _signal(steps[0]["from"]["cell"]),
                                _signal(steps[-1]["to"]["cell"]), sources, nets))
    return out
