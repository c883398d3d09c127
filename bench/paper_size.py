"""The paper-size model on the accelerator's cycle model, beside the same network as an ANN.

For an artifact at ``--lanes`` lanes: the on-chip memory the program asks for (weights and the
rest), then ``--images`` test images through the golden model (SNN at the artifact's delay, every
spike tensor traced) and the cycle model (``csdformer.hw.netmodel.image_model``, read-only), and
prints per image: cycles (and the per-op breakdown's top entries), images/s at ``--mhz``, SOPs
(synaptic operations: accumulates), the ANN's multiply-accumulates (every synaptic and attention
layer, from the artifact's layer shapes: the integer QANN's tensors) with the encoding layer's (the
first conv) apart, and the SOP-based energy estimate of the 45 nm figures used by Spikformer and
its successors (the arithmetic is ``csdformer.boards.figures``, the build report's too):

    E_SNN = E_MAC · encoding MACs + E_AC · SOPs (the encoding op's own SOPs left out: that layer
            is counted as MACs), E_ANN = E_MAC · all MACs; E_MAC 4.6 pJ, E_AC 0.9 pJ.

A model estimate (golden frames + cycle model), not a measurement; nothing is built. Usage:
``python bench/paper_size.py [--artifact fashion_mnist-4-384] [--lanes 16] [--images 8]
[--seed 0] [--delay D] [--mhz 100] [--top 8] [--json FILE]``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np

from csdformer.boards.figures import E_AC_PJ, E_MAC_PJ, energy_pj, figures, layer_macs, work

ECP5_KBIT = {"ECP5-25F": 56 * 18, "ECP5-45F": 108 * 18, "ECP5-85F": 208 * 18}  # EBR count × 18 kbit

# layer_macs, energy_pj, E_MAC_PJ, E_AC_PJ: csdformer.boards.figures's (the build report's), re-exported
__all__ = ["layer_macs", "energy_pj", "memory_split", "E_MAC_PJ", "E_AC_PJ", "ECP5_KBIT"]


def memory_split(bits: dict[str, int]) -> dict[str, float]:
    """A program's ``memory_bits()`` in kbit (1,024 bits): total, weights, the rest."""
    total = sum(bits.values()) / 1024
    weights = bits.get("weight", 0) / 1024
    return {"total": total, "weights": weights, "rest": total - weights}


def main(argv=None) -> int:
    from csdformer import artifact as A
    from csdformer.artifact import resolve_artifact
    from csdformer.hw.netmodel import image_model, trace_layers
    from csdformer.hw.program import Src, compile_program
    from csdformer.sim import runner
    from csdformer.sim.verify import select_images

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--artifact", default="fashion_mnist-4-384")
    ap.add_argument("--lanes", type=int, default=16)
    ap.add_argument("--images", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--delay", type=int)
    ap.add_argument("--mhz", type=float, default=100.0)
    ap.add_argument("--top", type=int, default=8, help="per-op breakdown: how many ops to print")
    ap.add_argument("--root", help="the data set's folder (default: the artifact's data set's default)")
    ap.add_argument("--json", help="write the figures as JSON")
    args = ap.parse_args(argv)

    art = A.load(resolve_artifact(args.artifact))
    delay = art.delay if args.delay is None else args.delay
    t0 = time.time()
    # keep_spikes=False: spike tensors share SPK words by liveness, as the board build compiles it
    # (boards/cli_build.py); target "unlimited": the memory check never refuses
    prog = compile_program(art, args.lanes, keep_spikes=False)
    t_compile = time.time() - t0
    mem = memory_split(prog.memory_bits())
    print(f"{art.name}: T={art.T}, D={delay}, {args.lanes} lanes, {len(prog.ops)} ops "
          f"(program compiled in {t_compile:.1f} s)")
    print("on-chip memory (kbit): " + ", ".join(f"{k} {v / 1024:,.0f}" for k, v in prog.memory_bits().items()))
    print(f"  total {mem['total']:,.0f} kbit = weights {mem['weights']:,.0f} + the rest {mem['rest']:,.0f}; "
          + "; ".join(f"{n} {kb:,} kbit: total {mem['total'] / kb:.1f}×, without weights {mem['rest'] / kb:.2f}×"
                      for n, kb in ECP5_KBIT.items()))

    idx, x = select_images(art, args.images, args.seed, args.root)
    t0 = time.time()
    res = runner.run(art, x, mode="snn", delay=delay, trace=trace_layers(prog))
    models = [image_model(prog, {k: v[:, i] for k, v in res.frames.items()}, x[i], delay) for i in range(len(x))]
    t_golden = time.time() - t0
    fig = figures(work(prog, models), args.mhz)  # csdformer.boards.figures: the build report's arithmetic
    macs = layer_macs(art)  # from the artifact's layer shapes (the integer QANN's tensor shapes)
    enc_op = next(op for op in prog.ops if op.src is Src.IMG)  # the encoding conv (bit-serial pixels) + its DIF
    enc = enc_op.layers[0]
    enc_macs, ann_macs = fig["encoding_macs"], fig["ann_macs"]

    cycles = np.array([m.cycles for m in models], dtype=float)
    sops = np.array([m.sops for m in models], dtype=float)
    sops_body = fig["sops"] - fig["encoding_sops"]
    per_op = {k: float(np.mean([m.per_op[k] for m in models])) for k in models[0].per_op}
    ips = fig["images_per_s"]
    e_snn, e_ann = fig["energy_snn_uj"], fig["energy_ann_uj"]
    print(f"{len(x)} test images (seed {args.seed}, indices {', '.join(map(str, idx))}); golden + cycle model "
          f"{t_golden:.1f} s ({t_golden / len(x):.2f} s an image)")
    print(f"cycles/image {cycles.mean():,.0f} (min {cycles.min():,.0f}, max {cycles.max():,.0f}); "
          f"{ips:.1f} images/s at {args.mhz:g} MHz ({cycles.mean() / args.mhz / 1e3:.2f} ms an image)")
    print(f"top ops by modeled cycles (mean per image, of {cycles.mean():,.0f}):")
    for name, c in sorted(per_op.items(), key=lambda kv: -kv[1])[: args.top]:
        print(f"  {name:<32} {c:>11,.0f}  {100 * c / cycles.mean():5.1f} %")
    print(f"SOPs/image {sops.mean():,.0f} (encoding op {enc_op.name}, bit-serial pixels, {fig['encoding_sops']:,.0f}, "
          f"the rest {sops_body:,.0f}); lane utilization {sops.mean() / args.lanes / cycles.mean() * 100:.1f} %")
    print(f"ANN MACs/image {ann_macs:,} (encoding layer {enc}: {enc_macs:,})")
    print(f"energy/image (45 nm: E_MAC {E_MAC_PJ} pJ, E_AC {E_AC_PJ} pJ): SNN {e_snn:.3f} µJ "
          f"= {E_MAC_PJ}·{enc_macs:,} + {E_AC_PJ}·{sops_body:,.0f}; ANN {e_ann:.3f} µJ "
          f"= {E_MAC_PJ}·{ann_macs:,}; ANN/SNN {fig['ann_over_snn']:.2f}×")
    if args.json:
        out = {"artifact": art.name, "lanes": args.lanes, "T": art.T, "delay": delay, "images": [int(i) for i in idx],
               "memory_kbit": {k: v / 1024 for k, v in prog.memory_bits().items()}, "memory_split_kbit": mem,
               "cycles_mean": cycles.mean(), "cycles": cycles.tolist(), "images_per_s": ips, "mhz": args.mhz,
               "per_op_cycles": per_op, "sops_mean": fig["sops"], "sops_encoding_mean": fig["encoding_sops"],
               "ann_macs": ann_macs, "encoding_macs": enc_macs, "macs_per_layer": macs,
               "energy_snn_uj": e_snn, "energy_ann_uj": e_ann, "gsop_per_s": fig["gsop_per_s"], "figures": fig,
               "seconds": {"compile": t_compile, "golden_and_model": t_golden}}
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
