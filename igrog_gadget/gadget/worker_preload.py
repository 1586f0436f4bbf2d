"""What the fork server of ``igrog serve``'s worker processes loads once, before it forks any
(:data:`igrog_gadget.gadget.workers.PRELOAD`): the session's modules and the ones torch imports
on a first model and optimizer (:func:`load_training_modules`, about 1.6 s on a 2-core host).
A worker forked from it starts with all of them, so neither a connection nor a session running
beside a starting worker waits for imports. Importing this module has that side effect on
purpose; nothing else imports it. It starts no thread and never queries CUDA (the trainer it builds
is on the CPU): the fork server must fork safely, and a forked worker can use CUDA only when its
parent never initialised it."""

from igrog_gadget.core.training import load_training_modules
from igrog_gadget.gadget import workers  # noqa: F401  (the worker's entry point and the session)
from igrog_gadget.stream import pipeline  # noqa: F401

load_training_modules()
