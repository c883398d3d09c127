"""Shared by the hostile-input suites: run CLI commands in a worker subprocess under a 2 GB
address-space limit, each command with a 30 s alarm, and report exit status, stdout and stderr.

One worker runs a whole group of cases (one interpreter start-up for all of them); each case
still runs under the memory limit and its own time limit. :func:`run_alone` runs one command in a
fresh ``python -m csdformer`` process instead (for the cases that would blow memory or time up).
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from pathlib import Path

MEMORY_LIMIT = 2 << 30
TIME_LIMIT = 30

_WORKER = r"""
import io, json, signal, sys, time, traceback
from contextlib import redirect_stderr, redirect_stdout

class _Timeout(BaseException):
    pass

def _alarm(signum, frame):
    raise _Timeout()

signal.signal(signal.SIGALRM, _alarm)
from csdformer.cli import main

cases = json.load(sys.stdin)
results = {}
for case in cases:
    out, err = io.StringIO(), io.StringIO()
    t0 = time.time()
    signal.alarm(int(sys.argv[1]))
    try:
        with redirect_stdout(out), redirect_stderr(err):
            rc = main(case["argv"])
    except _Timeout:
        rc = "timeout"
    except BaseException:
        rc = "exception"
        err.write(traceback.format_exc())
    finally:
        signal.alarm(0)
    results[case["id"]] = {"rc": rc, "out": out.getvalue(), "err": err.getvalue(), "s": time.time() - t0}
json.dump(results, sys.__stdout__)
"""


def _limit() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("PYTHONWARNINGS", "error")
    env["OMP_NUM_THREADS"] = "1"
    env["OPENBLAS_NUM_THREADS"] = "1"
    return env


def run_group(cases: dict[str, list[str]], cwd: Path) -> dict[str, dict]:
    """Run ``{id: argv}`` through ``csdformer.cli.main`` in one limited worker process."""
    payload = json.dumps([{"id": k, "argv": v} for k, v in cases.items()])
    p = subprocess.run([sys.executable, "-c", _WORKER, str(TIME_LIMIT)], input=payload, capture_output=True,
                       text=True, cwd=cwd, env=_env(), preexec_fn=_limit, timeout=TIME_LIMIT * len(cases) + 60)
    if p.returncode != 0:
        raise AssertionError(f"worker died (status {p.returncode}): {p.stderr[-3000:]}")
    return json.loads(p.stdout)


def run_watched(cases: dict[str, list[str]], root: Path) -> tuple[dict[str, dict], dict, dict]:
    """:func:`run_group` with a :func:`snapshot` of ``root`` before and after."""
    before = snapshot(root)
    return run_group(cases, root), before, snapshot(root)


def run_alone(argv: list[str], cwd: Path) -> dict:
    """Run one command as ``python -m csdformer ARGV`` under the limits."""
    try:
        p = subprocess.run([sys.executable, "-m", "csdformer", *argv], capture_output=True, text=True, cwd=cwd,
                           env=_env(), preexec_fn=_limit, timeout=TIME_LIMIT)
    except subprocess.TimeoutExpired:
        return {"rc": "timeout", "out": "", "err": ""}
    return {"rc": p.returncode, "out": p.stdout, "err": p.stderr}


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Every file and folder under ``root``: size and modification time (to prove nothing was written)."""
    snap = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            st = p.lstat()
            snap[str(p.relative_to(root))] = (st.st_size, st.st_mtime_ns)
    return snap


def check_one_line_error(res: dict, expect: str) -> None:
    """Exit status 2, nothing on stdout, exactly one stderr line ``csdformer: error: ...`` holding ``expect``."""
    assert res["rc"] == 2, f"status {res['rc']}, stderr: {res['err'][-2000:]!r}"
    assert res.get("s", 0) < TIME_LIMIT
    assert res["out"] == "", f"stdout: {res['out'][:500]!r}"
    lines = res["err"].splitlines()
    assert len(lines) == 1 and res["err"].endswith("\n"), f"stderr is not one line: {res['err'][-2000:]!r}"
    assert lines[0].startswith("csdformer: error: "), lines[0]
    assert expect in lines[0], f"{expect!r} not in {lines[0]!r}"
