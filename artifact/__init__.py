"""The spiking model artifact: the one contract between software and hardware (torch-free).

``quantize`` writes it; ``sim`` and ``hw`` read it. See ``docs/artifact.md``.
"""

from .identity import model_id
from .io import from_manifest, load, resolve_artifact, save, shipped_models, to_manifest
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
    "resolve_artifact", "shipped_models", "model_id",
]
