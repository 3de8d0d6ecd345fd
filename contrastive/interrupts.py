"""Ctrl-C and `kill` that stop training every time, in one line.

Python's SIGINT handler raises KeyboardInterrupt in whatever Python code
runs when the signal arrives, and on jax that can be inside NumPy's call
of a jax array's `__array__` (Keras converts the step's logs to numbers),
where the exception was lost: the run went on to its end. The command
line's handler (`install`) records the interrupt and raises `Interrupted`,
and `contrastive.training.callbacks.Interruptible`, a callback of every
run, raises it again at the next batch's start or epoch's end.

SIGTERM (`kill`, `timeout`, a batch scheduler ending or preempting a job)
takes the same way in a run of one process (`Terminated`), so that it too
says how to resume. A Python handler runs only when the main thread runs
Python: a watchdog thread, woken by the signal itself (`set_wakeup_fd`),
ends the process `GRACE_SECONDS` after a SIGTERM that has not ended it (a
process waiting in native code). A process of a multi-process run (the
launchers' variables set, or `terminate_at_once`) keeps the default action:
it may wait in a collective for a partner that is gone, and the launcher's
SIGTERM (torchrun, the jax supervisor) must end it there.
Keras is not imported here: the command line installs the handlers before
`--backend` is read.
"""

import functools
import os
import signal
import sys
import threading
import time

GRACE_SECONDS = 30
# Set by the launchers of a multi-process run (torchrun, Keras' jax
# distribution, tf.distribute, contrastive's jax supervisor).
_SEVERAL = ("WORLD_SIZE", "KERAS_DISTRIBUTION_NUM_PROCESSES")
_LAUNCHED = ("TF_CONFIG", "CONTRASTIVE_SUPERVISED")

_interrupted = None  # the exception to raise again: a plain value, a handler may run inside another


class Interrupted(BaseException):
    """A SIGINT (Ctrl-C) under the command line. Not a KeyboardInterrupt,
    which click would turn into its `Abort` after printing a blank line."""


class Terminated(Interrupted):
    """A SIGTERM under the command line, in a run of one process."""


def install():
    """Replaces Python's default SIGINT handler and the default action of
    SIGTERM (only those: an ignored signal, as SIGINT in a background job,
    stays ignored) in the main thread."""
    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, _handler)
    if signal.getsignal(signal.SIGTERM) == signal.SIG_DFL and not _several_processes():
        signal.signal(signal.SIGTERM, _handler)
        _watch_for_sigterm()
    if getattr(sys.unraisablehook, "func", None) is not _unraisable:
        sys.unraisablehook = functools.partial(_unraisable, sys.unraisablehook)


def _several_processes(environ=os.environ):
    def above_one(name):
        try:
            return int(environ.get(name) or 1) > 1
        except ValueError:
            return False

    return any(above_one(name) for name in _SEVERAL) or any(environ.get(n) for n in _LAUNCHED)


def _watch_for_sigterm():
    """Starts the watchdog (see the module's docstring); where the wake-up
    file cannot be set, there is none."""
    read, write = os.pipe()
    os.set_blocking(write, False)
    try:
        signal.set_wakeup_fd(write, warn_on_full_buffer=False)
    except (ValueError, OSError):
        os.close(read)
        os.close(write)
        return
    threading.Thread(target=_watch, args=(read,), name="contrastive-sigterm",
                     daemon=True).start()


def _watch(read):
    while True:
        try:
            numbers = os.read(read, 512)
        except OSError:
            return
        if not numbers:
            return
        if signal.SIGTERM in numbers:
            time.sleep(GRACE_SECONDS)
            os.write(2, f"terminated: still running {GRACE_SECONDS} s after SIGTERM (waiting "
                        "in native code); ending it now\n".encode())
            os._exit(128 + signal.SIGTERM)


def terminate_at_once():
    """Gives SIGTERM its default action back (a process of a multi-process
    run: see the module's docstring), where `install` took it."""
    if (threading.current_thread() is threading.main_thread()
            and signal.getsignal(signal.SIGTERM) is _handler):
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _unraisable(previous, unraisable):
    # Raised where Python cannot raise it (a finaliser, a callback from C):
    # Python would print "Exception ignored in ..." with a traceback, and
    # `raise_if_interrupted` raises it again anyway.
    if unraisable.exc_type is not None and issubclass(unraisable.exc_type, Interrupted):
        return
    previous(unraisable)


def _handler(signum, frame):
    global _interrupted
    kind = Terminated if signum == signal.SIGTERM else Interrupted
    if _interrupted is None or kind is Terminated:
        _interrupted = kind
    raise kind


def raise_if_interrupted():
    """Raises `Interrupted` (`Terminated` for a SIGTERM) when the signal
    arrived since `install`."""
    if _interrupted is not None:
        raise _interrupted
