"""Ctrl-C that stops training every time.

Python's SIGINT handler raises KeyboardInterrupt in whatever Python code
runs when the signal arrives, and on jax that can be inside NumPy's call
of a jax array's `__array__` (Keras converts the step's logs to numbers),
where the exception was lost: the run went on to its end. The command
line's handler (`install`) records the interrupt and raises `Interrupted`,
and `contrastive.training.callbacks.Interruptible`, a callback of every
run, raises it again at the next batch's start or epoch's end. Keras is
not imported here: the command line installs the handler before
`--backend` is read.
"""

import functools
import signal
import sys
import threading

_interrupted = False  # a plain flag: a handler may run inside another


class Interrupted(BaseException):
    """A SIGINT (Ctrl-C) under the command line. Not a KeyboardInterrupt,
    which click would turn into its `Abort` after printing a blank line."""


def install():
    """Replaces Python's default SIGINT handler (only that one: an ignored
    SIGINT, in a background job, stays ignored) in the main thread."""
    if (threading.current_thread() is threading.main_thread()
            and signal.getsignal(signal.SIGINT) is signal.default_int_handler):
        signal.signal(signal.SIGINT, _handler)
        sys.unraisablehook = functools.partial(_unraisable, sys.unraisablehook)


def _unraisable(previous, unraisable):
    # Raised where Python cannot raise it (a finaliser, a callback from C):
    # Python would print "Exception ignored in ..." with a traceback, and
    # `raise_if_interrupted` raises it again anyway.
    if unraisable.exc_type is not None and issubclass(unraisable.exc_type, Interrupted):
        return
    previous(unraisable)


def _handler(signum, frame):
    global _interrupted
    _interrupted = True
    raise Interrupted


def raise_if_interrupted():
    """Raises `Interrupted` when a SIGINT arrived since `install`."""
    if _interrupted:
        raise Interrupted
