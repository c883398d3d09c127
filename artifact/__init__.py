"""The spiking model artifact: the one contract between software and hardware (torch-free).

``quantize`` writes it; ``sim`` and ``hw`` read it. See ``docs/artifact.md``.
"""

from .io import load, save, to_manifest, from_manifest
from .schema import (
    FORMAT,
    SCHEMA_VERSION,
    Artifact,
    ArtifactError,
    InputSpec,
    Layer,
    bounds,
    signed_bits,
    validate,
)

__all__ = [
    "FORMAT", "SCHEMA_VERSION", "Artifact", "ArtifactError", "InputSpec", "Layer",
    "bounds", "signed_bits", "validate", "load", "save", "to_manifest", "from_manifest",
]
