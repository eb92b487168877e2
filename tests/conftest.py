import pytest
import torch


@pytest.fixture(autouse=True)
def default_dtype_is_left_alone():
    """A test that changes torch's global default dtype would silently change every later test."""
    yield
    assert torch.get_default_dtype() == torch.float32, "a test changed torch's default dtype"
