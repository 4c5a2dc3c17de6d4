import os

import pytest
import torch

# The notebooks' kernels inherit this: nbval runs them on one thread, as `python -m numogpt rerun`
# stored them (floating-point sums can depend on the thread count, and on two cores the threads
# mostly wait for each other).
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture
def one_thread():
    """Tiny models: a second thread only adds waiting, and on a busy machine a lot of it."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def pytest_collection_modifyitems(items):
    # nbval waits 5 s for each output message of a finished cell; a cell that wrote many (a
    # progress bar) on a busy machine can need longer, which is no failure of the lesson
    for item in items:
        if hasattr(item, "output_timeout"):
            item.output_timeout = 60
