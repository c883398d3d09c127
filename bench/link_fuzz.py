"""Fuzz the host link's two parsers with Hypothesis (issue 16, done-when 2): 10⁴ streams each.

    python3 bench/link_fuzz.py [--streams N] [--seed S]

The host's answer decoder (``protocol.host_decoder``) and the device's request parser RTL
(``hw/link_rx.py`` ``FrameReceiver`` in the Amaranth simulator, against the device model) each get
``N`` random streams of frames (intact, bit-flipped, cut), garbage and pauses; the properties are
those of :mod:`csdformer.sim.benches.link_fuzz`: no exception, no corrupted frame accepted, the next
valid frame always decoded (the RTL: every intact frame the parser meets while hunting, or right
behind a frame cut just before its last byte), and the RTL equal to the device model verdict for
verdict. A quarter of the frames end in a byte ``0xA5``, a fifth are cut just before their last
byte. Prints the counts and times; exit status 1 on a failure (with Hypothesis' minimal failing
stream). ``tests/test_link_fuzz.py`` runs 1000 of each.
"""

import argparse
import sys
import time

from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from csdformer.sim.benches import link_fuzz as F


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--streams", type=int, default=10_000, help="streams per parser (default 10000)")
    ap.add_argument("--seed", type=int, default=16, help="Hypothesis seed (default 16)")
    args = ap.parse_args(argv)
    cfg = settings(max_examples=args.streams, deadline=None, database=None,
                   suppress_health_check=list(HealthCheck))

    @seed(args.seed)
    @cfg
    @given(events=F.answer_streams(), cuts=st.lists(st.integers(1, 40), max_size=8))
    def host(events, cuts):
        F.check_host_decoder(events, cuts)

    rx = F.ReceiverFuzz()

    @seed(args.seed)
    @cfg
    @given(events=F.request_streams(rx.n_pixels, rx.T))
    def rtl(events):
        rx.check(events)

    rc = 0
    for name, fn in (("host decoder", host), ("device RTL (FrameReceiver)", rtl)):
        before = F.stats()
        t0 = time.monotonic()
        try:
            fn()
            verdict = "passed"
        except AssertionError as e:
            verdict, rc = f"FAILED: {str(e).splitlines()[0]}", 1
        after = F.stats()
        d = {k: after[k] - before[k] for k in after}
        n = d["streams_host"] + d["streams_rtl"]
        print(f"{name}: {verdict}: {n} streams (Hypothesis examples run, shrinking included), {d['frames']} "
              f"frames of which {d['corrupted']} corrupted, " + (
                  f"{d['host_crc_rejects']} candidate frames rejected by their CRC" if name.startswith("host")
                  else f"{d['rtl_verdicts']} verdicts equal to the device model's, {d['rtl_cycles']} cycles")
              + f", {time.monotonic() - t0:.1f} s", flush=True)
    return rc


if __name__ == "__main__":
    sys.exit(main())
