"""The SGD step's kernel setting: one rule for the config, the optimizer and the device resource.

``auto`` runs one compiled kernel per step when it is installed (Numba on the
CPU, Triton on CUDA); ``eager`` runs the same update as plain PyTorch
operations.  Both give the same updates (the agreement tests check it).
"""

KERNELS = ("auto", "eager")


def check_kernel(name: str, *, hint: str = "") -> str:
    """``name`` when it is a known kernel setting, else a ``ValueError`` (``hint`` says where it was set)."""
    if name not in KERNELS:
        raise ValueError(f"kernel must be {' or '.join(repr(k) for k in KERNELS)}, got {name!r}{hint}")
    return name
