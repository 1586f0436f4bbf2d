"""Settings of the test process, as the entry points make them (``configure_process``): before
torch is first imported, so that OpenMP's threads wait passively (the suite runs beside server
threads, subprocesses and, with ``-n 2``, a second worker; busy-waiting threads would steal their cores)."""

from igrog_gadget.environment import configure_process

configure_process()
