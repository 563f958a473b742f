"""``sgg.devices.check_device``: the one device check (``sgg detect --device``; the pipeline's config)."""

from __future__ import annotations

import pytest
import torch

from sgg.devices import check_device
from sgg.errors import SggInputError


def test_cpu_is_returned_as_a_torch_device():
    assert check_device("cpu") == torch.device("cpu")


@pytest.mark.parametrize("name,message", [
    ("gpu7", "--device gpu7: not a torch device; use cpu, cuda, cuda:N or mps"),
    ("", "--device : not a torch device"),
    ("meta", "--device meta: unsupported device type; use cpu, cuda or mps"),
])
def test_bad_names_are_refused_naming_the_option(name, message):
    with pytest.raises(SggInputError) as err:
        check_device(name)
    assert str(err.value).startswith(message)


def test_missing_accelerators(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(SggInputError, match=r"^device cuda:0: CUDA is not available .*; use device cpu$"):
        check_device("cuda:0", option="device")  # a config key rather than a flag
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert check_device("cuda:1") == torch.device("cuda", 1)
    with pytest.raises(SggInputError, match=r"^--device cuda:2: this machine has 2 CUDA device\(s\)$"):
        check_device("cuda:2")
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    with pytest.raises(SggInputError, match="^--device mps: Apple MPS is not available on this machine; use --device cpu$"):
        check_device("mps")
