"""cocotb bench of :class:`csdformer.hw.tdec_matmul.TdecMatmul` (launcher:
tests/test_hw_tdec_matmul_cocotb.py). The shared frame-stream bench with two input streams
(``a_stream``, ``b_stream``): see :func:`csdformer.sim.benches.accumulate.frames_bench`.
"""

import cocotb

from csdformer.sim.benches.accumulate import frames_bench


@cocotb.test()
async def tdec_matmul(dut):
    await frames_bench(dut)
