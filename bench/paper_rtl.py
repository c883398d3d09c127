"""The paper-size model in RTL simulation: the bare accelerator in Verilator, its 9.4 MB model
streamed over the ``bus`` ports from the flash image with RomStream's timing (or, with
``--board``, in a board's configuration with its flash reader's timing).

Engines: ``verilator`` (default): the C++ bench of :mod:`csdformer.sim.verilator_bus` (no cocotb:
the Verilog without its 499 k zero memory initialisers, no ``--public-flat-rw``); ``cocotb``:
:func:`csdformer.sim.verify_bus.verify_bus` (cocotb + Verilator; its 4-384 build did not finish
in 24 minutes). Both are judged by :mod:`csdformer.sim.verify`. Runs ``--images`` test images and
prints, per image, every spike layer's verdict (neuron counts and frame bits against the golden
model), the logits and class, the hardware's cycle counter against the cycle model (the weight
stream's timing, waits for weights included), SOPs and spikes; then the Verilog size, the build time (0 when cached), the golden
model's time, the simulation's wall time, cycles simulated and cycles/s, and the simulator's peak
resident memory.

Usage: ``python bench/paper_rtl.py [--artifact fashion_mnist-4-384] [--lanes 16] [--images 1]
[--seed 0] [--delay D] [--board NAME [--rom]] [--engine verilator|cocotb] [--jobs 2] [--opt -O1]
[--mode records|exact] [--json FILE]``. One 4-384 image simulates about 25 M cycles.

``--board NAME`` (Verilator engine): the board's configuration, as ``csdformer build`` compiles
it: its lanes (unless ``--lanes``), its weight buffer and ACC/MEM depths (``weight_depth``,
``acc_depth``: blocks that do not fit run as output tiles) and single-port memories; and the weight
stream with its QSPI flash reader's timing (:class:`~csdformer.hw.qspi.QspiFlashReader` at the
board's clock, its data lines, SCK = clock / 2: the ULX3S 85F's is single-line at 100 MHz, a byte
every 16 cycles), which the cycle model takes too; ``--rom``: RomStream's timing instead;
``--sdram``: the SDRAM stream's (:class:`~csdformer.hw.sdram.SdramStream`: the model copied into
the ULX3S's SDRAM after reset, then a byte a cycle). E.g.
``python bench/paper_rtl.py --artifact fashion_mnist --board ulx3s-85f --images 20`` (about 11 M
cycles an image).

On another machine (g++ and make, no Python packages): ``--prepare DIR`` writes the design, the
bench, the inputs, Verilator's ``include/`` and the verilated C++ (``DIR/obj``) there; on that
machine ``sh DIR/run.sh make && sh DIR/run.sh run``; back here, with DIR holding the results
(``hw.txt``, ``spk.bin``, ``result.json``), ``--judge DIR`` (same artifact, images and delay)
prints the verdicts.
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
    from csdformer.sim import verilator_bus as VB
    from csdformer.sim.verify_bus import MODES, verify_bus

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--artifact", default="fashion_mnist-4-384")
    ap.add_argument("--lanes", type=int, help="default 16, or the board's")
    ap.add_argument("--board", help="a board's configuration and its flash reader's timing (verilator engine)")
    ap.add_argument("--rom", action="store_true", help="with --board: RomStream's timing, not the flash reader's")
    ap.add_argument("--sdram", action="store_true", help="with --board: the SDRAM stream's timing (hw/sdram.py: "
                    "the model copied from flash into the ULX3S's SDRAM after reset), not the flash reader's")
    ap.add_argument("--images", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--delay", type=int)
    ap.add_argument("--mode", choices=MODES, default="records", help="cocotb engine's weight-stream model")
    ap.add_argument("--engine", choices=("verilator", "cocotb"), default="verilator")
    ap.add_argument("--jobs", type=int, default=2, help="make -j of the C++ build")
    ap.add_argument("--opt", default=VB.OPT, help="g++ level of the design's C++")
    ap.add_argument("--prepare", metavar="DIR", help="write DIR for a build and run elsewhere; no simulation")
    ap.add_argument("--judge", metavar="DIR", help="judge the results of a run in DIR (see --prepare)")
    ap.add_argument("--json", help="write the figures as JSON")
    args = ap.parse_args(argv)

    t0 = time.time()
    art = A.load(resolve_artifact(args.artifact))
    delay = art.delay if args.delay is None else args.delay
    stream, where, outreg = None, "RomStream timing", False
    if args.board:
        from csdformer.boards.targets import get_board

        if args.engine != "verilator":
            ap.error("--board: the verilator engine only")
        board = get_board(args.board)
        args.lanes = args.lanes or board.lanes
        # keep_spikes=True: every spike layer read back
        prog = compile_program(art, args.lanes, single_port=board.single_port, weight_depth=board.weight_depth,
                               acc_depth=board.acc_depth)
        where = f"{board.name} (weight depth {board.weight_depth}, acc depth {board.acc_depth})"
        outreg = board.outreg  # the accelerator as the board builds it
        where += ", block-RAM output registers" if outreg else ""
        if args.sdram:
            stream = VB.sdram_stream(clock_hz=board.freq_mhz * 1e6)
            t = stream.timing
            where += (f"; weight stream: the SDRAM's timing ({t.name}: first byte {t.latency} cycles after the "
                      f"command, then one every {t.byte_cycles})")
        elif not args.rom:
            stream = VB.qspi_stream(clock_hz=board.freq_mhz * 1e6, lines=4 if board.flash_quad else 1)
            t = stream.timing
            where += (f"; weight stream: its flash reader's timing ({t.name}: first byte {t.latency} cycles after the "
                      f"command, then one every {t.byte_cycles}; cmd accepted {stream.init_cycles} cycles after reset)")
        else:
            where += "; weight stream: RomStream timing"
    else:
        args.lanes = args.lanes or 16
        prog = compile_program(art, args.lanes)  # keep_spikes=True: every spike layer read back
        where = "weight stream: RomStream timing"
    args.stream, args.outreg = stream, outreg
    image = build_image(prog)
    t_compile = time.time() - t0
    idx, x = select_images(art, args.images, args.seed)
    print(f"{art.name}: T={art.T}, D={delay}, {args.lanes} lanes, {len(prog.ops)} ops, flash image "
          f"{len(image):,} bytes; {len(idx)} test image(s) (seed {args.seed}: {', '.join(map(str, idx))}); "
          f"{where}; engine {args.engine}"
          + (f", bench model mode {args.mode!r}" if args.engine == "cocotb" else ""), flush=True)
    t0 = time.time()
    if args.prepare or args.judge:
        return _elsewhere(args, prog, idx, x, delay, VB)
    if args.engine == "cocotb":
        rep = verify_bus(prog, idx, x, delay=delay, mode=args.mode, progress=True)
    else:
        rep = VB.verify_cxx(prog, idx, x, delay=delay, jobs=args.jobs, opt=args.opt, progress=True, stream=stream,
                            outreg=outreg)
    wall = time.time() - t0
    return report(args, art, prog, idx, delay, rep, wall, t_compile)


def _elsewhere(args, prog, idx, x, delay, VB) -> int:
    """--prepare DIR (the folder for another machine, verilated here) or --judge DIR."""
    from csdformer.sim.verify import golden_reference

    t0 = time.time()
    golden = golden_reference(prog, x, delay, timing=(args.stream or VB.rom_stream()).timing)
    golden_s = time.time() - t0
    if args.prepare:
        key, fig = VB.prepare(prog, x, delay, golden, args.prepare, indices=idx, opt=args.opt, jobs=args.jobs,
                              ship_runtime=True, stream=args.stream, outreg=args.outreg)
        print(f"Verilog {fig['verilog_bytes']:,} bytes, {fig['zero_inits_dropped']:,} zero initialisers dropped: "
              f"{fig['verilog_stripped_bytes']:,} bytes ({fig['verilog_s']:.0f} s)", flush=True)
        times = VB.build(args.prepare, steps=("verilate",))
        print(f"verilated in {times['verilate_s']:.0f} s: {args.prepare}/obj; there: sh run.sh make && sh run.sh run")
        return 0
    import json as _json
    from pathlib import Path

    res = _json.loads((Path(args.judge) / "result.json").read_text())
    rep = VB.judge(prog, golden, args.judge, res, idx, delay, wall=float(res.get("bench_wall_s") or 0.0),
                   golden_s=golden_s)
    return report(args, prog.artifact, prog, idx, delay, rep, 0.0, 0.0)


def report(args, art, prog, idx, delay, rep, wall, t_compile) -> int:
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
    exact = sum(c.cycles == c.model_cycles for c in rep.checks)
    print(f"\n{rep.summary()}; cycles equal to the model in {exact} of {len(rep.checks)} "
          f"(weight stream {s.get('timing', 'rom')})")
    v = rep.stream
    if "verilog_bytes" in v:
        print(f"Verilog {v['verilog_bytes']:,} bytes; {v['zero_inits_dropped']:,} zero memory initialisers dropped: "
              f"{v['verilog_stripped_bytes']:,} bytes built ({v['verilog_s']:.0f} s to write); verilate "
              f"{v['verilate_s']:.0f} s, make {v['make_s']:.0f} s (-j {args.jobs}, {args.opt}; 0 = cached)")
    print(f"Verilator build {rep.build_s:.0f} s (0 = cached); program + image {t_compile:.1f} s; golden + cycle model "
          f"{rep.golden_s:.1f} s; simulation {rep.sim_s:.0f} s wall (bench {rep.bench_s:.0f} s): {rep.sim_cycles:,} "
          f"cycles, {rep.cycles_per_s:,.0f} cycles/s; whole run {wall:.0f} s")
    print(f"weight-stream model: {s.get('windows', 0)} reads, {s.get('bytes', 0):,} bytes delivered, stepped "
          f"{s.get('stepped_cycles', 0):,} of {rep.sim_cycles:,} cycles ({s.get('unknown_windows', 0)} open-ended)")
    hwm = f"{rep.vm_hwm_mb:,.0f} MB" if rep.vm_hwm_mb is not None else "not known"
    print(f"peak resident memory: simulator {hwm}; this process {rss_self:,.0f} MB")
    if args.json:
        out = {"artifact": art.name, "lanes": args.lanes, "delay": delay, "images": [int(i) for i in idx],
               "engine": args.engine, "mode": args.mode if args.engine == "cocotb" else "exact", "summary": rep.summary(),
               "board": getattr(args, "board", None), "timing": s.get("timing", "rom"), "cycles_exact": exact,
               "checks": [{"index": c.index, "ok": c.ok, "first_layer": c.first_layer, "cycles": c.cycles,
                           "model_cycles": c.model_cycles, "sops": c.sops, "spikes": c.spikes,
                           "layers": layer_verdicts(prog, rep.golden, rep.hw, i)} for i, c in enumerate(rep.checks)],
               "build_s": rep.build_s, "golden_s": rep.golden_s, "sim_s": rep.sim_s, "bench_s": rep.bench_s,
               "sim_cycles": rep.sim_cycles, "cycles_per_s": rep.cycles_per_s, "stream": s,
               "sim_vm_hwm_mb": rep.vm_hwm_mb, "self_maxrss_mb": rss_self}
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)
        print(f"wrote {args.json}")
    return 0 if rep.failed == 0 and exact == len(rep.checks) else 1


if __name__ == "__main__":
    sys.exit(main())
