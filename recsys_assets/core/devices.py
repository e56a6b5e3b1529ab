"""The device setting (``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps``), parsed in one place.

:func:`parse_device` is the one reading of the text (spaces and case ignored, empty = ``auto``): the
device resource resolves it with :func:`resolve_device`, and the ranking step asks :func:`is_explicit`
whether a missing CUDA path is an error (asked for) or a fallback (chosen by ``auto``). Parsing needs no
PyTorch; resolving imports it.
"""

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

_DEVICE_RE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


class DeviceError(ValueError):
    """The device string is invalid or names a device this machine does not have."""


def parse_device(spec: str | None) -> str:
    """The device setting in its one spelling (``" CUDA:1 "`` -> ``"cuda:1"``, empty -> ``"auto"``)."""
    text = (spec or "auto").strip().lower()
    if not _DEVICE_RE.match(text):
        raise DeviceError(f"invalid device {spec!r}: expected auto, cpu, cuda, cuda:N or mps")
    return text


def is_explicit(spec: str | None) -> bool:
    """Whether the setting names a device (rather than leaving the choice to ``auto``)."""
    return parse_device(spec) != "auto"


def available_devices() -> list[str]:
    import torch

    found = ["cpu"]
    if torch.cuda.is_available():
        found += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        found.append("mps")
    return found


def resolve_device(spec: str | None) -> "torch.device":
    """``auto`` picks cuda, then mps, then cpu; an explicit device must exist here."""
    import torch

    text = parse_device(spec)
    available = available_devices()
    if text == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps" if "mps" in available else "cpu")
    if text == "cuda" and torch.cuda.is_available():
        return torch.device("cuda")
    if text in available:
        return torch.device(text)
    raise DeviceError(
        f"device {spec!r} was requested but is not available on this machine (available: {', '.join(available)})"
    )
