"""The throughput and energy figures of a program on the cycle model: one implementation, used by
the build report (:class:`~csdformer.boards.report.BuildReport`) and ``bench/paper_size.py``.

Two steps. :func:`work` reduces the cycle model's per-image results (``hw.netmodel.image_model``)
to per-image means: cycles, SOPs (synaptic operations: accumulates) and the encoding op's own
SOPs, beside the network's multiply-accumulates run once as an ANN (:func:`layer_macs`: every conv,
linear, attention Q·Kᵀ and A·V and head multiply-accumulate once) and the encoding layer's (the
first conv's). :func:`figures` turns those into the figures at a clock and a LUT count:

- images/s = clock / cycles an image;
- GSOP/s = SOPs an image × images/s / 10⁹ (every SOP, the encoding op's bit-serial pixels too);
- GSOP/s per 1,000 LUTs = GSOP/s / (LUTs / 1,000) (``None`` without a LUT count);
- the SOP-based energy an image of the 45 nm figures used by Spikformer and its successors,
  E_SNN = E_MAC · encoding MACs + E_AC · (SOPs − the encoding op's SOPs): the encoding layer is
  counted as MACs, its own bit-serial SOPs left out; E_ANN = E_MAC · all MACs; E_MAC 4.6 pJ, E_AC
  0.9 pJ (Horowitz 2014: 32-bit float multiply-accumulate and accumulate).

A model estimate (golden frames + cycle model), not a measurement.
"""

from __future__ import annotations

import numpy as np

__all__ = ["E_MAC_PJ", "E_AC_PJ", "layer_macs", "energy_pj", "work", "figures"]

E_MAC_PJ = 4.6  # 32-bit float multiply-accumulate, 45 nm (Horowitz 2014, as used by Spikformer)
E_AC_PJ = 0.9  # 32-bit float accumulate, 45 nm


def layer_macs(artifact, shapes: dict[str, tuple[int, ...]] | None = None) -> dict[str, int]:
    """Multiply-accumulates of one image through each synaptic (conv, linear, head) and attention
    (``tdec_matmul``) layer, the network run once as an ANN. ``shapes``: every layer's output
    shape without the batch axis (default: the artifact's layer shapes, which are the count-domain
    QANN's tensors' shapes)."""
    if shapes is None:
        shapes = {layer.name: tuple(layer.shape) for layer in artifact.layers}
    out: dict[str, int] = {}
    for layer in artifact.layers:
        k = layer.kind
        if k in ("encode_conv", "conv"):
            w = layer.arrays["weight"]  # (Cout, Cin, kh, kw): each output element takes Cin·kh·kw
            out[layer.name] = int(np.prod(shapes[layer.name])) * int(np.prod(w.shape[1:]))
        elif k in ("linear", "head"):
            w = layer.arrays["weight"]  # (out, in)
            out[layer.name] = int(np.prod(shapes[layer.name])) * int(w.shape[1])
        elif k == "tdec_matmul":
            a_shape = shapes[layer.inputs[0]]
            heads = int(layer.attrs["heads"])
            if layer.attrs["operands"] == "q_kT":  # (N, C) · (N, C)ᵀ per head: contracts C / heads
                contract = a_shape[-1] // heads
            else:  # attn_v: (heads, N, N) · (N, C): contracts N
                contract = a_shape[-1]
            out[layer.name] = int(np.prod(shapes[layer.name])) * int(contract)
    return out


def energy_pj(encoding_macs: float, sops: float, e_mac: float = E_MAC_PJ, e_ac: float = E_AC_PJ) -> float:
    """E = E_MAC · encoding MACs + E_AC · SOPs, in pJ (``sops`` without the encoding op's)."""
    return e_mac * encoding_macs + e_ac * sops


def work(program, models) -> dict:
    """The per-image work of ``program`` (a compiled :class:`~csdformer.hw.program.Program`) from
    its cycle model's results ``models`` (:class:`~csdformer.hw.netmodel.ImageModel`, one an
    image): ``{"images", "cycles", "sops", "encoding_sops", "encoding_macs", "ann_macs"}``; the
    first three are means over the images, the MACs the ANN's (:func:`layer_macs`). The encoding
    op is the program's op(s) reading the image (bit-serial pixels; all its tiles); the encoding
    layer, the artifact's ``encode_conv``."""
    from ..hw.program import Src

    models = list(models)
    if not models:
        raise ValueError("work: no images")
    n = len(models)
    enc_ops = [op.label for op in program.ops if op.src is Src.IMG]
    macs = layer_macs(program.artifact)
    enc_layers = [layer.name for layer in program.artifact.layers if layer.kind == "encode_conv"]
    return {"images": n,
            "cycles": sum(m.cycles for m in models) / n,
            "sops": sum(m.sops for m in models) / n,
            "encoding_sops": sum(m.sops_per_op[k] for m in models for k in enc_ops) / n,
            "encoding_macs": sum(macs[k] for k in enc_layers),
            "ann_macs": sum(macs.values())}


def figures(w: dict, mhz: float | None = None, luts: int | None = None) -> dict:
    """The figures of ``w`` (:func:`work`'s dict) at ``mhz`` with ``luts`` LUTs (either ``None``
    when unknown, and the figures that need it ``None``):

    ``images_per_s``, ``gsop_per_s``, ``gsop_per_s_per_klut``; ``energy_snn_uj`` and
    ``energy_ann_uj`` per image (µJ), ``ann_over_snn`` (their ratio); the inputs ``mhz``, ``luts``,
    ``e_mac_pj``, ``e_ac_pj`` and ``w``'s counts per image (``cycles``, ``sops``,
    ``encoding_sops``, ``encoding_macs``, ``ann_macs``, over ``images`` images)."""
    cycles, sops = w["cycles"], w["sops"]
    ips = mhz * 1e6 / cycles if mhz and cycles else None
    gsops = sops * ips / 1e9 if ips is not None else None
    per_klut = gsops / (luts / 1000) if gsops is not None and luts else None
    e_snn = energy_pj(w["encoding_macs"], sops - w["encoding_sops"])
    e_ann = E_MAC_PJ * w["ann_macs"]
    return {**w, "mhz": mhz, "luts": luts, "images_per_s": ips, "gsop_per_s": gsops,
            "gsop_per_s_per_klut": per_klut, "e_mac_pj": E_MAC_PJ, "e_ac_pj": E_AC_PJ,
            "energy_snn_uj": e_snn / 1e6, "energy_ann_uj": e_ann / 1e6,
            "ann_over_snn": e_ann / e_snn if e_snn else None}
