import pytest
import torch


@pytest.fixture
def one_thread():
    """Tiny models: a second thread only adds waiting, and on a busy machine a lot of it."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
