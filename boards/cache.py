"""The bitstream cache: one place-and-route per design, not per model.

A bitstream depends on the design only (the board top around the accelerator of a fabric:
:mod:`csdformer.hw.fabric`), never on the model's weights, which are data in the flash. So a build
is stored under the digest of its rendered design (Amaranth's build plan: RTLIL, constraints and
tool scripts), and ``csdformer build`` of another artifact that fits a stored fabric renders the
same design, finds its digest here and reuses the bitstream: no synthesis, no place and route.

An entry is a folder ``<board>-<digest>`` holding the bitstream, ``report.json`` and
``fabric.json``. The cache lives in ``$CSDFORMER_CACHE/bitstreams`` (default
``~/.cache/csdformer/bitstreams``). Entries are written to a temporary sibling and renamed into
place, so a half-written entry is never found.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from ..hw.common import replacing_folder
from ..hw.fabric import Fabric

__all__ = ["BitstreamCache", "CacheEntry", "cache_root"]


def cache_root() -> Path:
    base = os.environ.get("CSDFORMER_CACHE") or Path.home() / ".cache" / "csdformer"
    return Path(base) / "bitstreams"


@dataclass(frozen=True)
class CacheEntry:
    path: Path
    board: str
    digest: str

    @property
    def report(self) -> dict:
        return json.loads((self.path / "report.json").read_text())

    @property
    def fabric(self) -> Fabric:
        return Fabric.from_json(json.loads((self.path / "fabric.json").read_text()))

    @property
    def bitstream(self) -> Path:
        return next(p for p in self.path.iterdir() if p.suffix in (".bin", ".bit"))


class BitstreamCache:
    """Stored builds under ``root`` (default :func:`cache_root`)."""

    def __init__(self, root=None):
        self.root = Path(root) if root is not None else cache_root()

    def entries(self, board: str) -> list[CacheEntry]:
        """Every complete entry for ``board``, newest first."""
        if not self.root.is_dir():
            return []
        out = []
        for p in self.root.glob(f"{board}-*"):
            if (p / "report.json").is_file() and (p / "fabric.json").is_file() and \
                    any(q.suffix in (".bin", ".bit") for q in p.iterdir()):
                out.append(CacheEntry(p, board, p.name[len(board) + 1:]))
        return sorted(out, key=lambda e: e.path.stat().st_mtime, reverse=True)

    def fabrics(self, board: str) -> list[Fabric]:
        """The distinct fabrics of ``board``'s entries (newest first)."""
        seen, out = set(), []
        for e in self.entries(board):
            try:
                f = e.fabric
            except (OSError, ValueError, KeyError, TypeError):
                continue  # an entry of another csdformer version: not reusable
            if f.fabric_id not in seen:
                seen.add(f.fabric_id)
                out.append(f)
        return out

    def find(self, board: str, digest: str) -> CacheEntry | None:
        p = self.root / f"{board}-{digest}"
        return next((e for e in self.entries(board) if e.path == p), None)

    def store(self, board: str, digest: str, bitstream: Path, report: dict, fabric: Fabric) -> CacheEntry:
        """Keep ``bitstream`` with its ``report`` and ``fabric`` under ``digest``."""
        final = self.root / f"{board}-{digest}"
        with replacing_folder(final) as tmp:
            shutil.copy2(bitstream, tmp / Path(bitstream).name)
            (tmp / "report.json").write_text(json.dumps(report, indent=1) + "\n")
            (tmp / "fabric.json").write_text(json.dumps(fabric.to_json(), indent=1) + "\n")
        return CacheEntry(final, board, digest)
