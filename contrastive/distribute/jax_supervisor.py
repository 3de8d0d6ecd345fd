"""A lost coordinator on jax: the other processes of a multi-process run
stop with the same one line as for any other lost process.

When process 0 of a jax run (the coordinator, which hosts jax's
coordination service) dies, jax's client in every other process ends that
process from C++ within a moment: an absl fatal log and a stack trace, then
`abort()`, before any Python code can run (jax 0.10 offers no hook:
`missed_heartbeat_callback` cannot be given a Python function). So each
non-coordinator `contrastive` process runs its command in a child process
and watches it: the child's stderr passes through, except jax's fatal
report; when the child was ended that way, the supervisor prints the line
(`LostProcess`) from a note the child's `Watchdog` keeps current, and exits
with status 1.

The child dies with the supervisor (`PR_SET_PDEATHSIG`), so that killing the
process a user started kills the run. Only the standard library here: the
supervisor imports neither Keras nor jax.
"""

import contextlib
import ctypes
import ctypes.util
import json
import os
import queue
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time

from contrastive.distribute.lost import LostProcess

# In the child: set by the supervisor.
SUPERVISED = "CONTRASTIVE_SUPERVISED"
NOTE = "CONTRASTIVE_SUPERVISOR_NOTE"
# jax's report that the coordination service is gone (xla/pjrt/distributed/
# client.h), an absl `F` line.
_JAX_FATAL = re.compile(rb"^F\d{4} .*JAX distributed service detected fatal errors")
# An absl log line: `W1129 05:45:11.575553   31506 file.cc:147] ...`.
_ABSL = re.compile(rb"^[IWEF]\d{4} \d\d:\d\d:\d\d\.\d+ +\d+ \S+:\d+\] ")
# jax logs a warning or two, then the fatal line, within milliseconds; absl
# lines (and the lines after them) are held this long before passing on.
_HOLD_SECONDS = 1.0
_END = object()


def needed(environ=None):
    """Whether this process should run its command under a supervisor: a
    non-coordinator process of a multi-process jax run
    (`KERAS_DISTRIBUTION_*`), not itself supervised, on Linux."""
    environ = os.environ if environ is None else environ
    try:
        processes = int(environ.get("KERAS_DISTRIBUTION_NUM_PROCESSES") or 1)
        process = int(environ.get("KERAS_DISTRIBUTION_PROCESS_ID") or 0)
    except ValueError:
        return False  # the environment check names the variable
    return (processes > 1 and process > 0 and not environ.get(SUPERVISED)
            and sys.platform.startswith("linux"))


def write_note(note):
    """In a supervised child: keeps `note` (`LostProcess.note`) for the
    supervisor, to say the line if the coordinator is lost."""
    path = os.environ.get(NOTE)
    if not path:
        return
    with contextlib.suppress(OSError):
        with open(f"{path}.tmp", "w", encoding="utf-8") as f:
            json.dump(note, f)
        os.replace(f"{path}.tmp", path)


def _line_from_note(path):
    """The line, its checkpoint read now, or None without a note."""
    try:
        with open(path, encoding="utf-8") as f:
            report, who = LostProcess.from_note(json.load(f))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return report(who)


def _before_training_line(environ):
    processes = environ.get("KERAS_DISTRIBUTION_NUM_PROCESSES")
    coordinator = (environ.get("KERAS_DISTRIBUTION_JOB_ADDRESSES") or "").split(",")[0]
    return (f"process 0 of {processes} (the coordinator, {coordinator}) stopped responding "
            "before training started; start the run again on every process")


def _die_with_parent(parent):
    def preexec():
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        if os.getppid() != parent:  # the supervisor died before prctl
            os._exit(1)
    return preexec


def _pump(stream, lines):
    for line in iter(stream.readline, b""):
        lines.put(line)
    lines.put(_END)


def supervise(argv):
    """Runs `python -m contrastive_cli.main ARGV` as a supervised child;
    returns the exit status to leave with."""
    with tempfile.TemporaryDirectory(prefix="contrastive-supervisor-") as folder:
        note = os.path.join(folder, "note.json")
        env = {**os.environ, SUPERVISED: "1", NOTE: note}
        child = subprocess.Popen([sys.executable, "-m", "contrastive_cli.main", *argv], env=env,
                                 stderr=subprocess.PIPE, preexec_fn=_die_with_parent(os.getpid()))  # noqa: PLW1509 (no threads yet)
        # A terminal's Ctrl-C reaches the child too (same process group).
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        for number in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(number, lambda number, frame: child.send_signal(number))
        lines = queue.Queue()
        threading.Thread(target=_pump, args=(child.stderr, lines), daemon=True).start()
        coordinator_lost = _relay(lines, sys.stderr.buffer)
        code = child.wait()
        if coordinator_lost and code != 0:
            line = _line_from_note(note) or _before_training_line(os.environ)
            sys.stderr.buffer.write(f"error: {line}\n".encode(errors="replace"))
            sys.stderr.flush()
            return 1
        return code if code >= 0 else 128 - code


def _relay(lines, out):
    """Passes the child's stderr lines to `out` until it closes, holding
    absl log lines back for `_HOLD_SECONDS`; drops jax's fatal report and
    the warnings held before it. Returns whether that report came."""
    held, since, fatal = [], 0.0, False
    while True:
        try:
            line = lines.get(timeout=0.2)
        except queue.Empty:
            line = None
        if line is _END:
            break
        if line is not None and not fatal:
            if _JAX_FATAL.match(line):
                fatal, held = True, []
            elif held or _ABSL.match(line):
                since = since if held else time.monotonic()
                held.append(line)
            else:
                out.write(line)
                out.flush()
        if held and time.monotonic() - since > _HOLD_SECONDS:
            out.writelines(held)
            out.flush()
            held = []
    out.writelines(held)
    out.flush()
    return fatal
