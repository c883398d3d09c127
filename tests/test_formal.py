"""Formal proofs of the phase units with arithmetic state (issue 16; sim/formal/): LaneAccumulate
(ACC's read-modify-write pipeline) and SinkArray (DIF membrane update) equal their reference step
functions in exact integers, so no accumulator or membrane wraps for operands within the
artifact's bounds; each proof FAILS on the unit built with one ACC / MEM bit fewer. Run with
yowasp-sby and Yices (skipped, with the reason, when they are missing)."""

from __future__ import annotations

from pathlib import Path

import pytest

from csdformer.sim.formal import proofs, ranges
from csdformer.sim.formal.runner import missing_tools

MISSING = missing_tools()


@pytest.mark.parametrize("lanes", [1, 2])
def test_proof_ranges_are_the_width_derivation(lanes):
    """The ranges the proofs assume are those program.py derives ACC's and MEM's widths from."""
    ranges.check(proofs.program(lanes))


@pytest.mark.skipif(MISSING is not None, reason=MISSING or "")
@pytest.mark.parametrize("case", proofs.CASES, ids=[c.name for c in proofs.CASES])
def test_proof(case, tmp_path):
    r = proofs.run_case(case, tmp_path, timeout=900)
    assert r.status == case.expect, r.line()
    if case.expect == "FAIL":  # the one bit fewer shows as a wrong written value, not as a broken harness
        path, line = r.where.rsplit(":", 1)
        assert path == f"sim/formal/{case.unit}.py", r.line()
        source = (Path(__file__).resolve().parents[1] / path).read_text().splitlines()[int(line) - 1]
        assert "Assert(got[ln] ==" in source, f"{r.line()}: {source.strip()}"
