"""Images per second a board build should deliver: the cycle model at the build's clock.

The accelerator's cycles per image depend on the image (the scatter is event-driven), so they
are averaged over test images of the artifact's data set, through the golden model and the exact
cycle model (:mod:`csdformer.hw.netmodel`) of the same program the board builds.
"""

from __future__ import annotations

__all__ = ["model_cycles", "estimate", "cycle_estimate", "worst_case_cycles", "N_IMAGES"]

N_IMAGES = 20


def model_cycles(program, n: int = N_IMAGES, seed: int = 0, timing=None) -> tuple[float, int]:
    """Mean modelled cycles per image of ``program`` (a compiled :class:`~csdformer.hw.program.Program`)
    over ``n`` test images of its artifact's data set at the artifact's delay D, and ``n``;
    ``timing``: the memory backend's (the flash reader's), so that waits for weights count.

    Raises :class:`~csdformer.CsdformerError` when the data set cannot be loaded."""
    from ..sim.verify import golden_reference, select_images

    artifact = program.artifact
    _, x = select_images(artifact, n, seed)
    models = golden_reference(program, x, artifact.delay, timing=timing)["models"]
    return sum(m.cycles for m in models) / len(models), len(models)


def estimate(program, timing, clock_hz: float | None, n: int = N_IMAGES, seed: int = 0):
    """``(mean cycles an image, n, memory, work)`` of ``program`` with its memory backend's
    ``timing`` (:class:`~csdformer.hw.weightstream.StreamTiming`; ``None``: no memory in the
    model), over ``n`` test images at the artifact's delay. ``memory`` (``None`` without
    ``timing``): the backend's figures, the mean cycles an image spends loading records and waiting
    for them, and the bound that holds (``"memory"`` when loading takes longer than computing, on
    average); with resident weights also the cycles to read every record once after reset
(``resident_cycles``). ``work``: the same images' SOPs and the ANN's MACs
    (:func:`csdformer.boards.figures.work`), what the report's throughput and energy figures come
    from."""
    from ..sim.verify import golden_reference, select_images
    from .figures import work

    artifact = program.artifact
    _, x = select_images(artifact, n, seed)
    models = golden_reference(program, x, artifact.delay, timing=timing)["models"]
    mean = sum(m.cycles for m in models) / len(models)
    memory = None
    if timing is not None:
        wait = sum(m.wait_cycles for m in models) / len(models)
        load = sum(m.load_cycles for m in models) / len(models)
        memory = {"backend": timing.name, "latency": timing.latency, "byte_cycles": timing.byte_cycles,
                  "mbytes_per_s": (clock_hz or 0) / timing.byte_cycles / 1e6, "wait_cycles": wait,
                  "load_cycles": load, "bound": "memory" if load > mean - wait else "compute",
                  "resident": program.resident}
        if program.resident:  # every record read once, after reset: the time before the first image
            from ..hw.loader import record_cycles

            memory["resident_cycles"] = sum(record_cycles(program, op, timing) for op in program.ops)
    return mean, len(models), memory, work(program, models)


def worst_case_cycles(program, delay: int) -> int:
    """The cycle model's bound for any image: every pixel bit set and every neuron of every spike
    layer firing at every time step (the scatter's events and live words at their maximum)."""
    import numpy as np

    from ..hw.netmodel import image_model, trace_layers

    frames = {name: np.ones((program.T, *program.tensors[name].shape), dtype=np.int64)
              for name in trace_layers(program)}
    image = np.full(program.input_shape, (1 << program.pixel_bits) - 1, dtype=np.int64)
    return int(image_model(program, frames, image, delay).cycles)


def cycle_estimate(program, delay: int | None = None, n: int = N_IMAGES, seed: int = 0) -> dict:
    """The cycle model on ``n`` test images of the artifact's data set at ``delay`` (default the
    artifact's): ``{"n", "mean", "min", "max", "worst_case", "delay"}`` in cycles an image.

    ``worst_case`` is :func:`worst_case_cycles` (no image can take longer); ``mean``/``min``/``max``
    are what real images take. Raises :class:`~csdformer.CsdformerError` when the data set cannot
    be loaded."""
    from ..sim.verify import golden_reference, select_images

    artifact = program.artifact
    delay = artifact.delay if delay is None else delay
    _, x = select_images(artifact, n, seed)
    cyc = [m.cycles for m in golden_reference(program, x, delay)["models"]]
    return {"n": len(cyc), "mean": sum(cyc) / len(cyc), "min": min(cyc), "max": max(cyc),
            "worst_case": worst_case_cycles(program, delay), "delay": delay}
