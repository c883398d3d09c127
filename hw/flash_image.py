"""The flash image: a compiled model as the bytes the accelerator reads from external memory.

Layout (all integers little-endian; a *word* of ``P`` lanes of ``w`` bits takes
``ceil(P·w / 8)`` bytes, lane 0 in the low bits):

==========  ===================================================================================
offset      contents
==========  ===================================================================================
0           header, :data:`HEADER_BYTES` bytes: magic ``CSDF``, format version (u16), ops (u16),
            fabric id (u32), model id (u32), image length in bytes (u32), 8 reserved bytes,
            header CRC-32 of the 28 bytes before it (u32)
32          tables, read once at reset, as deep as the fabric's memories (zero-padded): biases
            (``depths["bias"]`` words of ``P·widths["bias"]`` bits), thresholds and ``v0``
            (``depths["param"]`` words each)
records     one record an op, in program order: the op's weight words ``n`` (u24), its op word
            (:attr:`Program.layout`, :func:`op_bytes` bytes), then its ``n`` weight words
==========  ===================================================================================

The accelerator (:mod:`csdformer.hw.loader`) checks the magic, the version and the fabric id,
loads the tables, then streams the records, one op ahead, into the two buffer slots. The model id
is the artifact's (:func:`csdformer.artifact.model_id`: its name, window and arrays, whatever the
fabric): ``csdformer run`` compares the id the device reports with the artifact's.
:func:`parse_header` refuses a bad header with a one-line error, before anything is written or run.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

import numpy as np

from .. import CsdformerError
from ..artifact.identity import model_id as artifact_model_id

__all__ = ["MAGIC", "VERSION", "HEADER_BYTES", "OPS_AT", "FABRIC_AT", "MODEL_AT", "LENGTH_AT", "COUNT_BYTES", "FlashImageError", "Header", "word_bytes",
           "op_bytes", "table_specs", "records_offset", "build_image", "parse_header", "record_bytes"]

MAGIC = b"CSDF"
VERSION = 1
HEADER_BYTES = 32
COUNT_BYTES = 3  # a record's weight-word count
_HEADER = struct.Struct("<4sHHIII8s")  # 28 bytes, then the CRC
# Where the header's fields start (little-endian), from its layout: what the hardware reads.
OPS_AT = struct.calcsize("<4sH")  # ops (u16), after the magic and the format version
FABRIC_AT = struct.calcsize("<4sHH")  # fabric id (u32)
MODEL_AT = struct.calcsize("<4sHHI")  # model id (u32)
LENGTH_AT = struct.calcsize("<4sHHII")  # the image's length (u32)


class FlashImageError(CsdformerError):
    """A flash image that is not what the accelerator or this artifact expects."""


@dataclass(frozen=True)
class Header:
    n_ops: int
    fabric_id: int
    model_id: int
    length: int


def word_bytes(lanes: int, width: int) -> int:
    return -(-lanes * width // 8)


def op_bytes(program) -> int:
    return -(-program.layout.size // 8)


def table_specs(program) -> list[tuple[str, int, int]]:
    """``(memory, words, bits a word)`` of each table, in image order."""
    P, W, D = program.lanes, program.widths, program.depths
    return [("bias", D["bias"], P * W["bias"]), ("threshold", D["param"], P * W["threshold"]),
            ("v0", D["param"], P * W["v0"])]


def records_offset(program) -> int:
    return HEADER_BYTES + sum(n * -(-bits // 8) for _, n, bits in table_specs(program))


def record_bytes(program, op) -> int:
    """Bytes of ``op``'s record (count, op word, weights)."""
    n = 0 if op.weights is None else len(op.weights)
    return COUNT_BYTES + op_bytes(program) + n * word_bytes(program.lanes, program.widths["weight"])


def _words(rows: np.ndarray, width: int, depth: int, nbytes: int) -> bytes:
    mask = (1 << width) - 1
    out = bytearray()
    for i in range(depth):
        w = sum((int(v) & mask) << (j * width) for j, v in enumerate(rows[i])) if i < len(rows) else 0
        out += w.to_bytes(nbytes, "little")
    return bytes(out)


def build_image(program) -> bytes:
    """The flash image of ``program`` (compiled into its fabric: see :mod:`csdformer.hw.fabric`)."""
    from .fabric import Fabric

    fab = program.fabric or Fabric.of(program)
    P, W = program.lanes, program.widths
    body = bytearray()
    for (name, depth, bits), rows in zip(table_specs(program), (program.biases, program.thresholds, program.v0)):
        body += _words(rows, W[name], depth, -(-bits // 8))
    ob, wb = op_bytes(program), word_bytes(P, W["weight"])
    for op in program.ops:
        n = 0 if op.weights is None else len(op.weights)
        body += n.to_bytes(COUNT_BYTES, "little")
        body += program.encode(op).to_bytes(ob, "little")
        if n:
            body += _words(op.weights, W["weight"], n, wb)
    model_id = artifact_model_id(program.artifact)
    length = HEADER_BYTES + len(body)
    head = _HEADER.pack(MAGIC, VERSION, len(program.ops), fab.fabric_id, model_id, length, bytes(8))
    return head + zlib.crc32(head).to_bytes(4, "little") + bytes(body)


def parse_header(image: bytes, *, fabric=None, model_id: int | None = None, flash_bytes: int | None = None,
                 offset: int = 0) -> Header:
    """Check ``image``'s header (and, given them, that it is for ``fabric``, carries ``model_id``
    and fits ``flash_bytes`` from ``offset``): the :class:`Header`, or a one-line
    :class:`FlashImageError`."""
    if len(image) < HEADER_BYTES:
        raise FlashImageError(f"flash image: {len(image)} bytes, shorter than its {HEADER_BYTES}-byte header")
    magic, version, n_ops, fab_id, mid, length, _ = _HEADER.unpack_from(image)
    if magic != MAGIC:
        raise FlashImageError(f"flash image: magic {magic!r}, expected {MAGIC!r} (not a csdformer flash image)")
    crc = int.from_bytes(image[28:32], "little")
    if zlib.crc32(image[:28]) != crc:
        raise FlashImageError(f"flash image: header checksum {crc:08x} does not match its contents "
                              f"({zlib.crc32(image[:28]):08x}): the header is corrupt")
    if version != VERSION:
        raise FlashImageError(f"flash image: format version {version}, this csdformer reads {VERSION}")
    if length != len(image):
        raise FlashImageError(f"flash image: header says {length} bytes, the file has {len(image)}")
    if fabric is not None and fab_id != fabric.fabric_id:
        raise FlashImageError(f"flash image: built for fabric {fab_id:08x}, the bitstream's is "
                              f"{fabric.fabric_id:08x}")
    if model_id is not None and mid != model_id:
        raise FlashImageError(f"flash image: model id {mid:08x}, expected {model_id:08x} (another model)")
    if flash_bytes is not None and offset + length > flash_bytes:
        raise FlashImageError(f"flash image: {length} bytes at offset 0x{offset:x} do not fit the "
                              f"{flash_bytes // (1 << 20)} MiB flash")
    return Header(n_ops, fab_id, mid, length)
