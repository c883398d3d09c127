"""The paper-size model in RTL simulation: the bare accelerator in Verilator, its 9.4 MB model
streamed over the ``bus`` ports by the bench's weight-stream model (RomStream's timing).

Runs ``--images`` test images through :func:`csdformer.sim.verify_bus.verify_bus` (cocotb +
Verilator; the judging of :mod:`csdformer.sim.verify`) and prints, per image, every spike layer's
verdict (neuron counts and frame bits against the golden model), the logits and class, the
hardware's cycle counter against the cycle model (``RomStream`` timing), SOPs and spikes; then the
Verilog size, the Verilator build time (0 when the build was cached), the golden model's time,
the simulation's wall time, cycles simulated and cycles/s, the weight-stream model's stepped
cycles, and the simulator's peak resident memory.

Usage: ``python bench/paper_rtl.py [--artifact fashion_mnist-4-384] [--lanes 16] [--images 1]
[--seed 0] [--delay D] [--mode records|exact] [--json FILE]``. One 4-384 image simulates about
25 M cycles.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time

import numpy as np


def layer_verdicts(program, golden: dict, hw: dict, i: int) -> list[tuple[str, int, int, int]]:
    """``(layer, neurons, neuron counts that differ, frame bits that differ)`` of every spike
    layer of image ``i``, in the artifact's order."""
    from csdformer.sim.verify import hw_frames

    frames = hw_frames(program, hw["spk"])
    out = []
    for layer in program.artifact.layers:
        if layer.name not in frames:
            continue
        hf, gf = frames[layer.name][:, i], golden["frames"][layer.name][:, i]
        hc, gc = hf.sum(axis=0), golden["counts"][layer.name][i]
        out.append((layer.name, int(gc.size), int(np.count_nonzero(hc != gc)), int(np.count_nonzero(hf != gf))))
    return out


def main(argv=None) -> int:
    from csdformer import artifact as A
    from csdformer.artifact import resolve_artifact
    from csdformer.hw.flash_image import build_image
    from csdformer.hw.program import compile_program
    from csdformer.sim.verify import select_images
    from csdformer.sim.verify_bus import MODES, verify_bus

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--artifact", default="fashion_mnist-4-384")
    ap.add_argument("--lanes", type=int, default=16)
    ap.add_argument("--images", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--delay", type=int)
    ap.add_argument("--mode", choices=MODES, default="records")
    ap.add_argument("--json", help="write the figures as JSON")
    args = ap.parse_args(argv)

    t0 = time.time()
    art = A.load(resolve_artifact(args.artifact))
    delay = art.delay if args.delay is None else args.delay
    prog = compile_program(art, args.lanes)  # keep_spikes=True: every spike layer read back
    image = build_image(prog)
    t_compile = time.time() - t0
    idx, x = select_images(art, args.images, args.seed)
    print(f"{art.name}: T={art.T}, D={delay}, {args.lanes} lanes, {len(prog.ops)} ops, flash image "
          f"{len(image):,} bytes; {len(idx)} test image(s) (seed {args.seed}: {', '.join(map(str, idx))}); "
          f"weight stream: RomStream timing, bench model mode {args.mode!r}", flush=True)
    t0 = time.time()
    rep = verify_bus(prog, idx, x, delay=delay, mode=args.mode, progress=True)
    wall = time.time() - t0

    for i, c in enumerate(rep.checks):
        print(f"\nimage {c.index}: {'PASSED' if c.ok else 'FAILED: first difference in ' + repr(c.first_layer)}")
        for name, n, bad_counts, bad_bits in layer_verdicts(prog, rep.golden, rep.hw, i):
            verdict = "passed" if not (bad_counts or bad_bits) else f"FAILED ({bad_counts} counts, {bad_bits} frame bits)"
            print(f"  {name:<36} {n:>7} neurons  {verdict}")
        logits_ok = np.array_equal(rep.hw["logits"][i], rep.golden["logits"][i])
        print(f"  logits {rep.hw['logits'][i].tolist()} {'= golden' if logits_ok else '!= golden ' + str(rep.golden['logits'][i].tolist())}; "
              f"class {int(rep.hw['prediction'][i])} (golden {int(rep.golden['prediction'][i])})")
        m = rep.golden["models"][i]
        print(f"  cycles: hardware {c.cycles:,}, model {c.model_cycles:,} (difference {c.cycles - c.model_cycles:+,}; "
              f"of which waiting for records {m.wait_cycles:,}); SOPs {c.sops:,} (model {m.sops:,}); "
              f"spikes {c.spikes:,} (model {m.spikes:,})")
        if c.details:
            print("  " + "; ".join(c.details))
    s = rep.stream
    rss_self = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\n{rep.summary()}")
    print(f"Verilator build {rep.build_s:.0f} s (0 = cached); program + image {t_compile:.1f} s; golden + cycle model "
          f"{rep.golden_s:.1f} s; simulation {rep.sim_s:.0f} s wall (bench {rep.bench_s:.0f} s): {rep.sim_cycles:,} "
          f"cycles, {rep.cycles_per_s:,.0f} cycles/s; whole run {wall:.0f} s")
    print(f"weight-stream model: {s.get('windows', 0)} reads, {s.get('bytes', 0):,} bytes delivered, stepped "
          f"{s.get('stepped_cycles', 0):,} of {rep.sim_cycles:,} cycles ({s.get('unknown_windows', 0)} open-ended)")
    hwm = f"{rep.vm_hwm_mb:,.0f} MB" if rep.vm_hwm_mb is not None else "not known"
    print(f"peak resident memory: simulator {hwm}; this process {rss_self:,.0f} MB")
    if args.json:
        out = {"artifact": art.name, "lanes": args.lanes, "delay": delay, "images": [int(i) for i in idx],
               "mode": args.mode, "image_bytes": len(image), "summary": rep.summary(),
               "checks": [{"index": c.index, "ok": c.ok, "first_layer": c.first_layer, "cycles": c.cycles,
                           "model_cycles": c.model_cycles, "sops": c.sops, "spikes": c.spikes,
                           "layers": layer_verdicts(prog, rep.golden, rep.hw, i)} for i, c in enumerate(rep.checks)],
               "build_s": rep.build_s, "golden_s": rep.golden_s, "sim_s": rep.sim_s, "bench_s": rep.bench_s,
               "sim_cycles": rep.sim_cycles, "cycles_per_s": rep.cycles_per_s, "stream": s,
               "sim_vm_hwm_mb": rep.vm_hwm_mb, "self_maxrss_mb": rss_self}
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)
        print(f"wrote {args.json}")
    return 0 if rep.failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
