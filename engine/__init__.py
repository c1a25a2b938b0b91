"""GSH Lab's engine: data, training, measurement and the run record; never imports Qt.

Importing it first fixes how thread pools wait and how many threads they use
(engine.threads), before torch, BLAS or numba load."""

from . import threads as _threads

_threads.configure()
