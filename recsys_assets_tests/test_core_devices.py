import pytest
import torch

from recsys_assets.core.devices import DeviceError, available_devices, resolve_device


def test_auto_and_cpu():
    assert resolve_device("cpu") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else ("mps" if "mps" in available_devices() else "cpu")
    assert resolve_device("auto").type == expected
    assert resolve_device(" CPU ").type == "cpu"


@pytest.mark.parametrize("spec", ["gpu", "cuda:x", "tpu", "cpu0", "cuda:-1"])
def test_bad_device_strings(spec):
    with pytest.raises(DeviceError, match="invalid device .*expected auto, cpu, cuda, cuda:N or mps"):
        resolve_device(spec)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
@pytest.mark.parametrize("spec", ["cuda", "cuda:3"])
def test_unavailable_device_names_what_exists(spec):
    with pytest.raises(DeviceError, match=rf"device '{spec}' was requested but is not available.*available: cpu"):
        resolve_device(spec)
