"""csdformer: spiking vision transformers from PyTorch training to bit-exact FPGA hardware.

Subpackages (each a top-level folder of the repository):

- ``csdformer.artifact``: the spiking model artifact (schema, load, save, validation); torch-free.
- ``csdformer.datasets``: numpy loaders for digits, Fashion-MNIST, CIFAR-10/100; torch-free.
- ``csdformer.quantize``: PyTorch model, LSQ, training and conversion to an artifact.
- ``csdformer.sim``: the integer golden model (time-stepped SNN and count-domain QANN).
- ``csdformer.hw``, ``csdformer.boards``, ``csdformer.firmware``: hardware, boards, host runtime.
"""

__version__ = "0.1.0"


class CsdformerError(Exception):
    """A user-facing error: the CLI prints its one-line message and exits non-zero."""
