"""The subject of the whole-network test modules (Verilator C++ bus bench, cocotb bus bench, cocotb
verify): the shipped digits model compiled at 8 lanes, its first test images (seed 0), and where an
op's weights start in its flash image (for corruption tests)."""

from csdformer import artifact as A
from csdformer.artifact import resolve_artifact
from csdformer.hw.flash_image import op_bytes, record_bytes, records_offset
from csdformer.hw.program import compile_program
from csdformer.sim.verify import select_images


def digits_program(lanes: int = 8, *, resident: bool = False):
    return compile_program(A.load(resolve_artifact("digits")), lanes, resident=resident)


def digits_images(prog, n: int):
    return select_images(prog.artifact, n, seed=0)


def weight_byte(prog, op_index: int) -> int:
    """The image offset of op ``op_index``'s first weight byte."""
    return records_offset(prog) + sum(record_bytes(prog, op) for op in prog.ops[:op_index]) + 3 + op_bytes(prog)
