"""The training queue: one worker thread with its own torch thread count, jobs in order, a bound
on the jobs waiting to start, and a close that releases whoever waits."""

from __future__ import annotations

import threading
import time

import torch

from igrog_gadget.planning.training_queue import TrainingQueue



def wait_until(condition, timeout_s: float = 10.0) -> None:
    """Poll ``condition`` until it holds (an AssertionError after ``timeout_s``)."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.005)

def test_the_worker_has_its_own_thread_count_and_the_process_keeps_its_own():
    before = torch.get_num_threads()
    worker_count = 1 if before > 1 else 2
    queue = TrainingQueue(background=True, cpu_threads=worker_count)
    try:
        assert queue.submit(torch.get_num_threads).result(timeout=30) == worker_count
        assert torch.get_num_threads() == before
        counts: list[int] = []
        fresh = threading.Thread(target=lambda: counts.append(torch.get_num_threads()))
        fresh.start()
        fresh.join()
        assert counts == [before]  # a thread that starts torch later takes the process's count
    finally:
        queue.close()


def test_jobs_run_one_at_a_time_in_submission_order():
    queue = TrainingQueue(background=True, max_waiting=8)
    order: list[int] = []
    try:
        futures = [queue.submit(lambda i=i: (time.sleep(0.01), order.append(i))) for i in range(5)]
        for future in futures:
            future.result(timeout=30)
        assert order == [0, 1, 2, 3, 4]
        assert queue.submitted == 5
    finally:
        queue.close()


def test_without_background_submit_returns_when_the_job_is_done():
    queue = TrainingQueue(background=False)
    try:
        future = queue.submit(lambda: time.sleep(0.05) or "done")
        assert future.done() and future.result() == "done"
        failing = queue.submit(lambda: 1 / 0)
        assert failing.done() and isinstance(failing.exception(), ZeroDivisionError)
    finally:
        queue.close()


def test_submit_waits_while_max_waiting_jobs_wait_to_start_and_close_releases_it():
    queue = TrainingQueue(background=True, max_waiting=1)
    release = threading.Event()
    running = queue.submit(release.wait)  # occupies the worker
    waiting = queue.submit(lambda: "second")  # waits to start: the bound is reached
    submitted: list = []
    third = threading.Thread(target=lambda: submitted.append(queue.submit(lambda: "third")))
    third.start()
    third.join(timeout=0.5)
    assert third.is_alive() and not submitted, "a third job must wait while one job waits to start"
    release.set()  # the first job ends, the second starts, the third may queue
    third.join(timeout=30)
    assert [f.result(timeout=30) for f in (running, waiting, submitted[0])] == [True, "second", "third"]

    block = threading.Event()
    queue.submit(block.wait)
    queue.submit(lambda: "queued")
    late: list = []
    blocked = threading.Thread(target=lambda: late.append(queue.submit(lambda: "never")))
    blocked.start()
    wait_until(lambda: queue.submits_blocked == 1)  # the submit waits for room
    queue.close()  # must release it: nothing else will (the running job stays blocked)
    blocked.join(timeout=10)
    assert not blocked.is_alive() and late[0].cancelled()
    block.set()
