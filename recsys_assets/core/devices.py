"""Choosing the torch device from a string such as ``auto``, ``cpu``, ``cuda:1`` or ``mps``."""

import re

import torch

_DEVICE_RE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


class DeviceError(ValueError):
    """The device string is invalid or names a device this machine does not have."""


def available_devices() -> list[str]:
    found = ["cpu"]
    if torch.cuda.is_available():
        found += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        found.append("mps")
    return found


def resolve_device(spec: str) -> torch.device:
    """``auto`` picks cuda, then mps, then cpu; an explicit device must exist here."""
    text = (spec or "auto").strip().lower()
    if not _DEVICE_RE.match(text):
        raise DeviceError(f"invalid device {spec!r}: expected auto, cpu, cuda, cuda:N or mps")
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
