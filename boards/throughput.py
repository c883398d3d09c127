"""Images per second a board build should deliver: the cycle model at the build's clock.

The accelerator's cycles per image depend on the image (the scatter is event-driven), so they
are averaged over test images of the artifact's data set, through the golden model and the exact
cycle model (:mod:`csdformer.hw.netmodel`) of the same program the board builds.
"""

from __future__ import annotations

__all__ = ["model_cycles", "N_IMAGES"]

N_IMAGES = 20


def model_cycles(program, n: int = N_IMAGES, seed: int = 0) -> tuple[float, int]:
    """Mean modelled cycles per image of ``program`` (a compiled :class:`~csdformer.hw.program.Program`)
    over ``n`` test images of its artifact's data set at the artifact's delay D, and ``n``.

    Raises :class:`~csdformer.CsdformerError` when the data set cannot be loaded."""
    from ..sim.verify import golden_reference, select_images

    artifact = program.artifact
    _, x = select_images(artifact, n, seed)
    models = golden_reference(program, x, artifact.delay)["models"]
    return sum(m.cycles for m in models) / len(models), len(models)
