"""Run the README the way a newcomer would: a fresh clone, a fresh venv, the set-up, then every
command the README shows, in order.

    python bench/readme_check.py            # everything (the full test suite and the ULX3S builds too)
    python bench/readme_check.py --quick    # skip the long ones (test suite, ULX3S builds, nextpnr Fmax)

It clones the committed HEAD of this repository (``git clone``, so uncommitted edits are not
seen) into a temporary folder, makes a venv there with ``python3 -m venv``, and runs each command of
the README's ```sh blocks with ``bash -c`` in the clone, the venv first on PATH. For each it
records the exit status, the wall time and whether the output shows what the README says it
shows (:data:`EXPECT`: regular expressions on stdout+stderr and files the command must write).
It prints a table and exits 1 if any command that ran failed (non-zero exit or output check).

Commands that cannot run here are listed as skipped with the reason (:data:`SKIP`): hardware
(``csdformer run --port /dev/ttyUSB0``), and with ``--quick`` the long ones (:data:`LONG`).
Placeholders get a documented substitution (:data:`SUBSTITUTE`): ``my.yaml`` is a copy of the
shipped ``csdformer/configs/digits.yaml`` written into the clone before the command runs.
A README command not in :data:`EXPECT` is run and judged on its exit status alone (marked so).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Command:
    section: str  # the README heading above the block
    line: str  # the command as the README shows it, comment removed
    comment: str = ""  # the README's trailing comment: what the output should show


def parse_readme(text: str) -> list[Command]:
    """The commands of the README's ```sh blocks, in order, each with its section heading and
    its trailing ``# comment``; blank lines and whole-line comments are dropped."""
    out: list[Command] = []
    section = ""
    in_sh = False
    for raw in text.splitlines():
        if not in_sh and raw.startswith("#") and not raw.startswith("#!"):
            section = raw.lstrip("#").strip()
            continue
        stripped = raw.strip()
        if stripped.startswith("```"):
            if in_sh:
                in_sh = False
            elif stripped[3:].strip() in ("sh", "bash", "shell", "console"):
                in_sh = True
            continue
        if not in_sh or not stripped or stripped.startswith("#"):
            continue
        tokens = shlex.split(stripped, comments=True)
        m = re.search(r"\s#\s?(.*)$", stripped)
        out.append(Command(section, shlex.join(tokens), m.group(1).strip() if m else ""))
    return out


@dataclass
class Expect:
    patterns: list[str] = field(default_factory=list)  # regexes on stdout + stderr
    files: list[str] = field(default_factory=list)  # globs (relative to the clone) that must match
    check: str | None = None  # a named extra check, see _extra_check


# What each README command's output must show: the README's own words, as regexes and files.
EXPECT: dict[str, Expect] = {
    'python3 -m pip install -e \'.[all]\'': Expect([r"Successfully installed .*csdformer"]),
    "PYTHONWARNINGS=error python3 -m pytest -q -n auto --dist loadfile": Expect([r"\d+ passed"]),
    "csdformer flow": Expect(
        [r"(?i)icebreaker"],
        ["runs/flow-digits/report.md", "runs/flow-digits/report.json", "runs/flow-digits/*.png"]),
    "csdformer flow --no-train --board none -o out/": Expect(
        [], ["out/report.md", "out/report.json", "out/*.png"]),
    "csdformer flow my.yaml --images 10 --board ulx3s-85f": Expect([r"(?i)ulx3s"]),
    "csdformer eval digits": Expect([r"\(SNN D=\d+\): accuracy \d+\.\d\d % over \d+ images"], check="remember_acc"),
    "csdformer eval digits --delay 0": Expect([r"\(SNN D=0\): accuracy \d+\.\d\d %"], check="collapse"),
    "csdformer eval digits --mode qann": Expect([r"\(integer QANN\): accuracy \d+\.\d\d %"]),
    "csdformer eval digits --json": Expect([], check="json_keys"),
    "csdformer train digits --out runs/digits": Expect([r"trained digits: test accuracy \(QANN\) \d+\.\d\d %"],
                                                       ["runs/digits/*"]),
    "csdformer convert runs/digits my-digits": Expect(
        [r"float \d+\.\d\d %\s+qann \d+\.\d\d %\s+int-qann \d+\.\d\d %", r"snn\s+D=0: \d+\.\d\d %"],
        ["my-digits/*"]),
    "csdformer eval my-digits": Expect([r"accuracy \d+\.\d\d % over \d+ images"]),
    "csdformer rtl digits -o out/rtl-8 --lanes 8": Expect(
        [r"8 lanes", r"typically [\d,]+ .*worst case [\d,]+"], ["out/rtl-8/*.v", "out/rtl-8/accelerator.json"]),
    "csdformer verify digits --images 20 --delay 0": Expect([r"20 test images", r"\b20 passed, 0 failed"]),
    "csdformer build digits --board ulx3s-85f": Expect([r"(?i)openFPGALoader|fujprog"]),
    "python bench/accel_perf.py --lanes 8,16": Expect([r"cycles/img", r"SOPs/img", r"util %", r"img/s@100MHz", r"20 passed, 0 failed"]),
    "python bench/accel_fmax.py --lanes 8": Expect([r"(?i)MHz", r"(?i)critical"]),
}

# Never run here, with the reason.
SKIP: dict[str, str] = {
    "csdformer run digits --port /dev/ttyUSB0 --check": "needs a ULX3S/iCEBreaker/OrangeCrab board on /dev/ttyUSB0",
}
# Run by default, skipped with --quick (minutes each on 2 cores).
LONG: dict[str, str] = {
    "PYTHONWARNINGS=error python3 -m pytest -q -n auto --dist loadfile": "the full test suite (CI runs it: .ci/run)",
    "csdformer flow my.yaml --images 10 --board ulx3s-85f": "training + the ULX3S build (383 s measured)",
    "csdformer build digits --board ulx3s-85f": "the ULX3S build (176 s measured)",
    "python bench/accel_fmax.py --lanes 8": "yosys + nextpnr of the accelerator alone (57 s measured)",
}
# Placeholders: (what the README writes, what the check does before running the command).
SUBSTITUTE: dict[str, str] = {
    "my.yaml": "the shipped csdformer/configs/digits.yaml named 'my' (a config of one's own has its own name; "
               "as 'digits' it would write into the runs/flow-digits of the first flow)",
}


@dataclass
class Result:
    cmd: Command
    status: str  # ok / FAILED / skipped
    rc: int | None = None
    seconds: float | None = None
    note: str = ""


def _extra_check(name: str | None, out: str, state: dict) -> str | None:
    """None when fine, else the reason."""
    if name is None:
        return None
    if name == "remember_acc":
        m = re.search(r"accuracy (\d+\.\d\d) %", out)
        state["acc"] = float(m.group(1)) if m else None
        return None
    if name == "collapse":
        m = re.search(r"accuracy (\d+\.\d\d) %", out)
        if not m or state.get("acc") is None:
            return "no accuracy to compare with `eval digits`"
        d0, full = float(m.group(1)), state["acc"]
        return None if d0 < full - 10 else f"D=0 {d0:.2f} % does not collapse against D=T-1 {full:.2f} %"
    if name == "json_keys":
        lines = [ln for ln in out.splitlines() if ln.startswith("{")]  # progress lines share the log
        try:
            obj = json.loads(lines[-1])
        except (ValueError, IndexError):
            return "no JSON object in the output"
        missing = [k for k in ("accuracy", "n", "delay", "mode", "predictions", "labels") if k not in obj]
        return f"JSON lacks {missing}" if missing else None
    raise ValueError(name)


def run_one(cmd: Command, clone: Path, env: dict, timeout: float, state: dict, logdir: Path, i: int) -> Result:
    line = cmd.line
    if "my.yaml" in line.split():
        text = (clone / "csdformer/configs/digits.yaml").read_text()
        (clone / "my.yaml").write_text(re.sub(r"(?m)^name: digits$", "name: my", text, count=1))
    t0 = time.monotonic()
    try:
        p = subprocess.run(["bash", "-c", line], cwd=clone, env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, errors="replace", timeout=timeout)
        rc, out = p.returncode, p.stdout
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
        rc, out = 124, out + f"\n[readme_check: timed out after {timeout:.0f} s]"
    dt = time.monotonic() - t0
    (logdir / f"{i:02d}.log").write_text(f"$ {line}\n{out}")
    exp = EXPECT.get(line)
    problems = []
    if rc != 0:
        problems.append(f"exit {rc}: " + (out.strip().splitlines() or [""])[-1][:120])
    if exp is None:
        note = "no expectation recorded: exit status only"
    else:
        for pat in exp.patterns:
            if not re.search(pat, out):
                problems.append(f"output lacks /{pat}/")
        for g in exp.files:
            if not list(clone.glob(g)):
                problems.append(f"no {g}")
        if rc == 0:
            extra = _extra_check(exp.check, out, state)
            if extra:
                problems.append(extra)
        note = "output as described" if not problems else ""
    if "my.yaml" in line.split():
        note = (note + "; " if note else "") + "my.yaml := digits.yaml named 'my'"
    return Result(cmd, "ok" if not problems else "FAILED", rc, dt, "; ".join(problems) or note)


def table(results: list[Result]) -> str:
    rows = [("#", "command", "status", "exit", "seconds", "output / reason")]
    for i, r in enumerate(results, 1):
        rows.append((str(i), r.cmd.line, r.status, "" if r.rc is None else str(r.rc),
                     "" if r.seconds is None else f"{r.seconds:.0f}", r.note))
    w = [max(len(r[k]) for r in rows) for k in range(5)]
    lines = []
    for j, r in enumerate(rows):
        lines.append("  ".join(c.ljust(w[k]) if k < 5 else c for k, c in enumerate(r)).rstrip())
        if j == 0:
            lines.append("  ".join("-" * x for x in w) + "  " + "-" * 15)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="skip the long commands: " + "; ".join(LONG.values()))
    ap.add_argument("--repo", default=str(ROOT), help="the repository to clone (its committed HEAD)")
    ap.add_argument("--workdir", help="where to clone and make the venv (default: a new temporary folder)")
    ap.add_argument("--python", default="python3", help="the interpreter that makes the venv")
    ap.add_argument("--timeout", type=float, default=3600, help="seconds per command (default 3600)")
    ap.add_argument("--list", action="store_true", help="only list the README's commands and what is checked")
    ap.add_argument("--only", metavar="REGEX", help="run only the commands that match (the others: 'not selected'); "
                    "with a --workdir of an earlier run, its clone (brought to HEAD) and venv are reused")
    args = ap.parse_args(argv)

    commands = parse_readme((Path(args.repo) / "README.md").read_text())
    if args.list:
        for c in commands:
            how = SKIP.get(c.line) or (LONG.get(c.line) and f"long ({LONG[c.line]})") or \
                ("checked" if c.line in EXPECT else "exit status only")
            print(f"[{c.section}] {c.line}    -- {how}")
        return 0

    work = Path(args.workdir or tempfile.mkdtemp(prefix="readme-check-"))
    work.mkdir(parents=True, exist_ok=True)
    clone, venv, logdir = work / "clone", work / "venv", work / "logs"
    logdir.mkdir(exist_ok=True)
    if args.only and (clone / ".git").is_dir() and (venv / "bin").is_dir():  # finish an earlier run
        subprocess.run(["git", "-C", str(clone), "pull", "-q", "--ff-only"], check=True)
    else:
        subprocess.run(["git", "clone", "-q", args.repo, str(clone)], check=True)
    head = subprocess.run(["git", "-C", str(clone), "log", "--oneline", "-1"], capture_output=True, text=True).stdout
    commands = parse_readme((clone / "README.md").read_text())  # the clone's README: what a newcomer reads
    t0 = time.monotonic()
    if not (venv / "bin").is_dir():
        subprocess.run([args.python, "-m", "venv", str(venv)], check=True)
    print(f"clone of {head.strip()} in {clone}; venv {venv} ({time.monotonic() - t0:.0f} s); logs in {logdir}",
          flush=True)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env.update(VIRTUAL_ENV=str(venv), PATH=f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}")

    results: list[Result] = []
    state: dict = {}
    for i, c in enumerate(commands, 1):
        if args.only and not re.search(args.only, c.line):
            results.append(Result(c, "not selected"))
        elif c.line in SKIP:
            results.append(Result(c, "skipped", note=SKIP[c.line]))
        elif args.quick and c.line in LONG:
            results.append(Result(c, "skipped", note=f"--quick: {LONG[c.line]}"))
        else:
            print(f"[{i}/{len(commands)}] $ {c.line}", flush=True)
            results.append(run_one(c, clone, env, args.timeout, state, logdir, i))
            r = results[-1]
            print(f"    {r.status} (exit {r.rc}, {r.seconds:.0f} s) {r.note}", flush=True)
        if c.line.startswith("python3 -m pip install") and results[-1].status == "ok":
            size = subprocess.run(["du", "-sh", str(venv)], capture_output=True, text=True).stdout.split()[0]
            results[-1].note += f"; venv {size}"
    print()
    print(table(results))
    failed = [r for r in results if r.status == "FAILED"]
    ran = [r for r in results if r.status in ("ok", "FAILED")]
    print(f"\n{len(ran)} ran ({sum(r.seconds for r in ran):.0f} s), {len(failed)} failed, "
          f"{sum(r.status == 'skipped' for r in results)} skipped")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
