"""Settings of the test process, as the entry points make them (``configure_process``), before
torch is first imported: OpenMP's and OpenBLAS's threads wait passively (the suite runs beside
server threads and subprocesses; busy-waiting threads would steal their cores). Under
pytest-xdist (``-n 2``, the README's test command) each worker and the processes it starts use
one thread (``OMP_NUM_THREADS=1`` unless set): two workers then share two cores without
oversubscription, and a test's in-process and subprocess results see the same thread count."""

import os

import pytest

from igrog_gadget.environment import configure_process

if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.setdefault("OMP_NUM_THREADS", "1")
configure_process()


@pytest.fixture(autouse=True)
def native_threads_as_found():
    """A test that runs the command in this process (``cli.main``) fixes the process's native
    thread counts from ``gridding.cpu_threads`` (0: every processor): they are put back after it,
    so that the tests after it in this worker run with the worker's count (one under xdist, see
    above), not with the two threads a CLI test left behind."""
    import torch

    before = torch.get_num_threads()
    yield
    if torch.get_num_threads() != before:
        from igrog_gadget.environment import set_thread_counts

        set_thread_counts(before)


#: Modules that take longest on 2 cores (sleep-bound or training-heavy), scheduled first so that
#: no long module starts last on one worker while the other has nothing left (``--dist
#: loadscope`` hands out modules in collection order, see ``pytest_configure``). Only the order
#: changes.
LONGEST_MODULES = (  # seconds on the 2-core host at a load average of 2-4 (about twice idle), 2026-12-07
    "tests/app/test_scale.py",  # 40
    "tests/app/test_pipe.py",  # 30
    "tests/variants/test_volume_variants.py",  # 27
    "tests/gadget/test_gadget_active.py",  # 26
    "tests/app/test_batch.py",  # 23
    "tests/gadget/test_gadget_volume.py",  # 23
    "tests/gadget/test_gadget_robustness.py",  # 22
    "tests/variants/test_fieldcorr.py",  # 15
    "tests/app/test_early_training.py",  # 14
    "tests/gadget/test_gadget_streams.py",  # 14
    "tests/gadget/test_gadget_hostile.py",  # 13
    "tests/gadget/test_isolation.py",  # 13
    "tests/app/test_volume.py",  # 13
    "tests/app/test_replay_output.py",  # 10
    "tests/app/test_closed_form.py",  # 9
    "tests/hostile/test_hostile_files.py",  # 8
    "tests/test_architecture.py",  # 8
)


def pytest_configure(config):
    """xdist's ``loadscope`` otherwise reorders the modules by their number of tests, which says
    nothing of their duration: the order of ``LONGEST_MODULES`` is kept instead."""
    if hasattr(config.option, "loadscopereorder"):
        config.option.loadscopereorder = False


def pytest_collection_modifyitems(config, items):
    rank = {name: index for index, name in enumerate(LONGEST_MODULES)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::", 1)[0], len(rank)))
