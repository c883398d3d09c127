"""The report of ``csdformer flow``: ``report.md``, ``report.json`` and PNG plots.

:func:`write_report` takes the stage results (:class:`Stage`) of one flow run and writes, into the
report folder, a Markdown summary (one table row per stage: status, seconds, key figures, and
every failure's reason), a JSON file with every figure, and the plots whose data the run produced:

- ``accuracy.png``: SNN accuracy per delay D, with the QANN and integer-QANN as lines;
- ``raster.png``: the spikes of one test image through the spike layers (up to 64 neurons each);
- ``cycles.png``: cycles per accelerator op (mean over the verified images);
- ``resources.png``: used against available per resource type, for each board that was built.

It reads only what the stages recorded; a plot whose stage did not run is left out (and the
Markdown says so). Torch-free.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["Stage", "STATUSES", "write_report", "to_markdown", "to_json"]

STATUSES = ("ok", "FAILED", "skipped", "pending")


@dataclass
class Stage:
    """One stage of the flow: its outcome, time, one-line key figures and all its figures."""

    name: str
    status: str = "pending"  # ok | FAILED | skipped | pending
    seconds: float = 0.0
    summary: str = ""  # key figures, one line
    reason: str = ""  # why it FAILED or was skipped
    figures: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _pct(v) -> str:
    return "?" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{100 * v:.2f} %"


def to_markdown(stages: list[Stage], meta: dict[str, Any], plots: dict[str, str]) -> str:
    failed = [s for s in stages if s.status == "FAILED"]
    title = f"# csdformer flow: {meta.get('config', '?')}"
    verdict = ("**All stages passed.**" if not failed else
               "**FAILED: " + "; ".join(f"{s.name}: {s.reason or 'failed'}" for s in failed) + "**")
    lines = [title, "", verdict, ""]
    for key, label in (("command", "Command"), ("artifact", "Artifact"), ("started", "Started (UTC)"),
                       ("total_seconds", "Total time")):
        if key in meta:
            v = meta[key]
            if key == "total_seconds":
                v = f"{v:.1f} s"
            elif key == "command":
                v = f"`{v}`"
            lines.append(f"- {label}: {v}")
    lines += ["", "| # | stage | status | seconds | key figures |", "|---:|---|---|---:|---|"]
    for i, s in enumerate(stages, 1):
        status = s.status if s.status != "FAILED" else "**FAILED**"
        figs = s.summary
        if s.reason and s.status != "ok":
            figs = (figs + "; " if figs else "") + s.reason
        lines.append(f"| {i} | {s.name} | {status} | {s.seconds:.1f} | {_cell(figs)} |")

    ev = next((s for s in stages if s.name == "evaluate"), None)
    acc = (ev.figures.get("accuracy") if ev else None) or {}
    if acc:
        lines += ["", "## Accuracy (test split)", ""]
        src = acc.get("qann_source")
        lines.append(f"- images: {acc.get('n', '?')}")
        if "float" in acc:
            lines.append(f"- float: {_pct(acc.get('float'))}")
        lines.append(f"- QANN: {_pct(acc.get('qann'))}" + (f" ({src})" if src else ""))
        lines.append(f"- integer QANN: {_pct(acc.get('int_qann'))}")
        if "snn_equals_int_qann" in acc:
            lines.append(f"- SNN (D=T-1) predictions equal to the integer QANN's: {_pct(acc['snn_equals_int_qann'])}")
        snn = acc.get("snn", {})
        if snn:
            lines += ["", "| D | SNN accuracy |", "|---:|---:|"]
            lines += [f"| {d} | {_pct(v)} |" for d, v in snn.items()]

    ver = next((s for s in stages if s.name == "verify"), None)
    if ver and ver.figures.get("images"):
        lines += ["", "## RTL verification (cocotb)", "",
                  "| image | ok | cycles | model cycles | SOPs | spikes | first difference |",
                  "|---:|---|---:|---:|---:|---:|---|"]
        for c in ver.figures["images"]:
            lines.append(f"| {c['index']} | {'yes' if c['ok'] else '**NO**'} | {c['cycles']} | {c['model_cycles']} "
                         f"| {c['sops']} | {c['spikes']} | {_cell(c.get('first_layer') or '')} |")

    brd = [s for s in stages if s.name == "board" and s.figures.get("builds")]
    for s in brd:
        for b in s.figures["builds"]:
            lines += ["", f"## Board build: {b.get('board')} ({b.get('device', '?')})", "",
                      f"**{b.get('verdict', '?')}**", ""]
            if b.get("resources"):
                lines += ["| resource | used | available | % |", "|---|---:|---:|---:|"]
                for r in b["resources"]:
                    used = "?" if r.get("used") is None else r["used"]
                    avail = "?" if r.get("available") is None else r["available"]
                    pct = "" if r.get("percent") is None else f"{r['percent']:.1f}"
                    over = (" **over**" if r.get("used") is not None and r.get("available") is not None
                            and r["used"] > r["available"] else "")
                    lines.append(f"| {r['name']} | {used}{over} | {avail} | {pct} |")
            if b.get("report_dir"):
                lines += ["", f"Full build report: `{b['report_dir']}/report.md`"]

    lines += ["", "## Plots", ""]
    names = {"accuracy": "Accuracy against delay", "raster": "Spike raster", "cycles": "Cycles per op",
             "resources": "Resource use"}
    for key, label in names.items():
        if key in plots:
            lines.append(f"### {label}\n\n![{label}]({plots[key]})\n")
        else:
            lines.append(f"- {label}: not drawn (its stage did not produce the data)")
    return "\n".join(lines).rstrip() + "\n"


def to_json(stages: list[Stage], meta: dict[str, Any], plots: dict[str, str]) -> dict[str, Any]:
    return {"meta": meta, "ok": not any(s.status == "FAILED" for s in stages),
            "stages": {s.name: asdict(s) for s in stages}, "order": [s.name for s in stages], "plots": plots}


def _figure(w: float, h: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(w, h))
    FigureCanvasAgg(fig)
    return fig


def plot_accuracy(acc: dict, path: Path) -> Path:
    snn = acc.get("snn", {})
    ds = [int(d) for d in snn]
    fig = _figure(6, 4)
    ax = fig.add_subplot()
    ax.plot(ds, [100 * snn[str(d)] for d in ds], "o-", color="tab:blue", label="SNN (per delay D)")
    for key, label, style in (("qann", "QANN", "--"), ("int_qann", "integer QANN", ":")):
        if acc.get(key) is not None:
            ax.axhline(100 * acc[key], linestyle=style, color="tab:orange" if key == "qann" else "tab:green",
                       label=f"{label} {100 * acc[key]:.2f} %")
    ax.set_xticks(ds)
    ax.set_xlabel("DIF delay D")
    ax.set_ylabel("test accuracy (%)")
    ax.set_ylim(0, 102)
    ax.set_title(f"Accuracy against delay (n={acc.get('n', '?')})")
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return path


def plot_raster(raster: dict, path: Path) -> Path:
    """``raster``: ``{"T", "image_index", "delay", "layers": [{"name", "neurons", "frames", "spikes"}]}``,
    ``frames`` an ``(n, T)`` 0/1 list per layer (its chosen neurons). One panel per layer, stacked:
    the chosen neurons across, the T frames down, a black cell per spike."""
    layers = raster["layers"]
    T = int(raster["T"])
    fig = _figure(8, 0.75 + (0.18 * T + 0.42) * len(layers))
    axes = fig.subplots(len(layers), 1, squeeze=False)[:, 0]
    for ax, ly in zip(axes, layers):
        m = np.asarray(ly["frames"], dtype=float).reshape(-1, T).T  # (T, n)
        ax.imshow(m, aspect="auto", cmap="Greys", vmin=0, vmax=1, interpolation="nearest",
                  extent=(-0.5, m.shape[1] - 0.5, T + 0.5, 0.5))
        ax.set_yticks(range(1, T + 1))
        ax.tick_params(labelsize=6)
        ax.set_xticks([])
        ax.set_ylabel("t", fontsize=6, rotation=0, labelpad=6)
        ax.set_title(f"{ly['name']}: {ly.get('spikes', '?')} spikes, {ly.get('active_neurons', '?')} of "
                     f"{ly.get('neurons_total', '?')} neurons active ({m.shape[1]} shown)", fontsize=7, loc="left")
    axes[-1].set_xlabel(f"neuron (evenly spaced sample of up to {raster.get('max_neurons', 64)} per layer)",
                        fontsize=7)
    fig.suptitle(f"Spike raster of test image {raster.get('image_index')} (SNN, D={raster.get('delay')}, "
                 f"class {raster.get('prediction', '?')})", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return path


def plot_cycles(per_op: dict[str, float], path: Path, title: str = "") -> Path:
    names = list(per_op)
    fig = _figure(7, 0.3 * len(names) + 1.5)
    ax = fig.add_subplot()
    ax.barh(names, [per_op[n] for n in names], color="tab:purple")
    for i, n in enumerate(names):
        ax.text(per_op[n], i, f" {per_op[n]:.0f}", va="center", fontsize=7)
    ax.invert_yaxis()
    ax.tick_params(axis="y", labelsize=7)
    ax.set_xlabel("cycles (mean over images)")
    ax.set_title(title or "Cycles per op", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return path


def plot_resources(builds: list[dict], path: Path) -> Path:
    """Per board: each resource's use in % of what the device has (the dashed line, 100 %),
    labelled ``used/available``; red where it does not fit."""
    fig = _figure(7, 0.4 * sum(len(b.get("resources", [])) for b in builds) + 1.3 * len(builds))
    for k, b in enumerate(builds):
        ax = fig.add_subplot(len(builds), 1, k + 1)
        rows = [r for r in b.get("resources", []) if r.get("available")]
        pct = [100.0 * (r["used"] or 0) / r["available"] for r in rows]
        ax.barh([r["name"] for r in rows], pct, color=["tab:red" if p > 100 else "tab:blue" for p in pct])
        ax.axvline(100, color="0.3", linestyle="--", linewidth=1)
        top = max([100.0, *pct]) * 1.18
        for i, (r, p) in enumerate(zip(rows, pct)):
            used = "?" if r["used"] is None else r["used"]
            ax.text(p + top * 0.01, i, f"{used}/{r['available']}", va="center", fontsize=7)
        ax.set_xlim(0, top)
        ax.invert_yaxis()
        ax.set_xlabel("used, % of available (dashed: 100 %)", fontsize=8)
        ax.set_title(f"{b.get('board')} ({b.get('device', '?')}): {'OK' if b.get('ok') else 'FAILED'}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return path


def write_report(out_dir, stages: list[Stage], meta: dict[str, Any]) -> dict[str, Path]:
    """Write ``report.md``, ``report.json`` and the plots into ``out_dir``; return their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    by = {s.name: s for s in stages}
    plots: dict[str, str] = {}
    errors: list[str] = []

    def draw(key, fn, *args):
        try:
            fn(*args, out / f"{key}.png")
            plots[key] = f"{key}.png"
        except Exception as e:  # a plot must not lose the report
            errors.append(f"{key}.png: {type(e).__name__}: {e}")

    acc = by["evaluate"].figures.get("accuracy") if "evaluate" in by else None
    if acc and acc.get("snn"):
        draw("accuracy", plot_accuracy, acc)
    raster = by["evaluate"].figures.get("raster") if "evaluate" in by else None
    if raster and raster.get("layers"):
        draw("raster", plot_raster, raster)
    per_op = by["verify"].figures.get("per_op_cycles_mean") if "verify" in by else None
    if per_op:
        draw("cycles", lambda d, p: plot_cycles(d, p, by["verify"].figures.get("cycles_title", "")), per_op)
    builds = [b for b in (by["board"].figures.get("builds", []) if "board" in by else []) if b.get("resources")]
    if builds:
        draw("resources", plot_resources, builds)
    meta = dict(meta)
    if errors:
        meta["plot_errors"] = errors
    paths = {"md": out / "report.md", "json": out / "report.json"}
    paths["md"].write_text(to_markdown(stages, meta, plots))
    paths["json"].write_text(json.dumps(to_json(stages, meta, plots), indent=1, default=_jsonable) + "\n")
    paths.update({k: out / v for k, v in plots.items()})
    return paths


def _jsonable(o):
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON-serializable: {type(o).__name__}")
