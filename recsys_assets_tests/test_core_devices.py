import pytest
import torch

from recsys_assets.core.devices import DeviceError, available_devices, is_explicit, parse_device, resolve_device


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


@pytest.mark.parametrize(
    ("spec", "parsed", "explicit"),
    [
        ("auto", "auto", False),
        (" AUTO ", "auto", False),
        ("", "auto", False),
        ("CPU", "cpu", True),
        ("cuda:1", "cuda:1", True),
    ],
)
def test_one_parser_for_the_device_setting(spec, parsed, explicit):
    """The resource's resolution and the ranking step's explicit-or-auto question read the same parse."""
    from recsys_assets.defs.resources import DeviceResource

    assert parse_device(spec) == parsed
    assert is_explicit(spec) is explicit and DeviceResource(device=spec).explicit is explicit
    if parsed in ("auto", "cpu"):
        assert resolve_device(spec).type == (resolve_device("auto").type if parsed == "auto" else "cpu")
    with pytest.raises(DeviceError, match="invalid device"):
        DeviceResource(device="gpu").explicit  # noqa: B018 - the property parses
