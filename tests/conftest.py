"""Settings of the test process, as the entry points make them (``configure_process``), before
torch is first imported: OpenMP's threads wait passively (the suite runs beside server threads
and subprocesses; busy-waiting threads would steal their cores). Under pytest-xdist (``-n 2``,
the README's test command) each worker and the processes it starts use one thread
(``OMP_NUM_THREADS=1`` unless set): two workers then share two cores without oversubscription,
and a test's in-process and subprocess results see the same thread count."""

import os

from igrog_gadget.environment import configure_process

if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.setdefault("OMP_NUM_THREADS", "1")
configure_process()
