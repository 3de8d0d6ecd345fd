"""A lost coordinator on jax: the other processes of a multi-process run
stop with the same one line as for any other lost process.

When process 0 of a jax run (the coordinator, which hosts jax's
coordination service) dies, jax's client in every other process ends that
process from C++ within a moment: an absl fatal log and a stack trace, then
`abort()`, before any Python code can run (jax 0.10 offers no hook:
`missed_heartbeat_callback` cannot be given a Python function). So each
non-coordinator process of `contrastive train` on jax runs the command in a
child process and watches it: the child's stderr passes through, except
jax's fatal report; when the child was ended that way, the supervisor
prints the line (`LostProcess`) from a note the child keeps current (from
`jax.distributed.initialize` on), and exits with status 1. Without a note
(an older jax, without recoverable tasks), jax's report passes unchanged.

The child dies with the supervisor (`PR_SET_PDEATHSIG`), so that killing the
process a user started kills the run; it has a process group of its own, and
the supervisor forwards SIGINT, SIGTERM and SIGHUP to it once. Only the
standard library here: the supervisor imports neither Keras nor jax.
"""

import contextlib
import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time

from contrastive.distribute.base import configured_backend
from contrastive.distribute.lost import LostProcess
from contrastive.files import dies_with_parent, scratch_folder

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
# After the child exits, how long its stderr may stay open (held by a
# process it started) before the supervisor stops reading.
_DRAIN_SECONDS = 2.0
_FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
_END = object()


def _backend(argv, environ):
    """The Keras backend the command will use: `--backend`, else the
    configured one."""
    for i, arg in enumerate(argv):
        if arg == "--backend" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--backend="):
            return arg.partition("=")[2]
    return configured_backend(environ)


def _command(argv):
    """The subcommand's name: the first argument that is not a group option."""
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--backend":
            skip = True
        elif not arg.startswith("-"):
            return arg
    return None


def needed(argv, environ=None):
    """Whether this process should run `contrastive ARGV` under a
    supervisor: `train` on jax, as a non-coordinator process of a
    multi-process run (`KERAS_DISTRIBUTION_*`), not itself supervised, on
    Linux."""
    environ = os.environ if environ is None else environ
    try:
        processes = int(environ.get("KERAS_DISTRIBUTION_NUM_PROCESSES") or 1)
        process = int(environ.get("KERAS_DISTRIBUTION_PROCESS_ID") or 0)
    except ValueError:
        return False  # the environment check names the variable
    return (processes > 1 and process > 0 and not environ.get(SUPERVISED)
            and sys.platform.startswith("linux") and _command(argv) == "train"
            and _backend(argv, environ) == "jax")


def write_note(note):
    """In a supervised child: keeps `note` (`{"who": ...}`, or
    `LostProcess.note`) for the supervisor, to say the line if the
    coordinator is lost."""
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
            note = json.load(f)
        if "run" not in note:
            return f"{note['who']} before training started; start the run again on every process"
        report, who = LostProcess.from_note(note)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return report(who)


def _pump(stream, lines):
    for line in iter(stream.readline, b""):
        lines.put(line)
    lines.put(_END)


def supervise(argv):
    """Runs `python -m contrastive_cli.main ARGV` as a supervised child;
    returns the exit status to leave with (a child ended by a signal ends
    the supervisor by the same signal)."""
    previous = {number: signal.getsignal(number) for number in _FORWARDED}
    with scratch_folder("contrastive-supervisor-") as folder:
        note = os.path.join(folder, "note.json")
        env = {**os.environ, SUPERVISED: "1", NOTE: note}
        # -P: the working directory does not shadow modules in the child.
        child = subprocess.Popen([sys.executable, "-P", "-m", "contrastive_cli.main", *argv],
                                 env=env, stderr=subprocess.PIPE, process_group=0,
                                 preexec_fn=dies_with_parent())  # noqa: PLW1509 (no threads yet)
        try:
            for number in _FORWARDED:
                signal.signal(number, lambda number, frame: child.send_signal(number))
            lines = queue.Queue()
            threading.Thread(target=_pump, args=(child.stderr, lines), daemon=True).start()
            coordinator_lost, said, report = _relay(lines, sys.stderr.buffer, child.poll)
            code = child.wait()
        finally:
            for number, handler in previous.items():
                signal.signal(number, handler)
        line = _line_from_note(note) if coordinator_lost and code != 0 else None
        if line is not None:
            if not said:
                _write(sys.stderr.buffer, [f"error: {line}\n".encode(errors="replace")])
            return 1
        _write(sys.stderr.buffer, report)
    if code < 0:
        signal.signal(-code, signal.SIG_DFL)
        os.kill(os.getpid(), -code)
    return code if code >= 0 else 128 - code


def _write(out, lines):
    with contextlib.suppress(OSError):  # a closed reader (`| head`)
        out.writelines(lines)
        out.flush()


def _relay(lines, out, exited):
    """Passes the child's stderr lines to `out` until it closes (or
    `_DRAIN_SECONDS` after `exited()` says the child exited), holding absl
    log lines, and the lines after them, back for `_HOLD_SECONDS`; keeps
    jax's fatal report and the lines held before it aside. Returns
    `(whether that report came, whether an "error: " line was passed on,
    the report's lines)`: the caller passes them on when no line replaces
    them."""
    held, since, fatal, said, ended, report = [], 0.0, False, False, None, []
    while True:
        try:
            line = lines.get(timeout=0.2)
        except queue.Empty:
            line = None
        if line is _END:
            break
        now = time.monotonic()
        if line is not None:
            if fatal:
                report.append(line)
            elif _JAX_FATAL.match(line):
                fatal = True
                report.extend([*held, line])
                held = []
            elif held or _ABSL.match(line):
                since = since if held else now
                held.append(line)
            else:
                said = said or line.startswith(b"error: ")
                _write(out, [line])
        if held and now - since > _HOLD_SECONDS:
            said = said or any(line.startswith(b"error: ") for line in held)
            _write(out, held)
            held = []
        if ended is None and exited() is not None:
            ended = now
        if ended is not None and now - ended > _DRAIN_SECONDS and lines.empty():
            break
    said = said or any(line.startswith(b"error: ") for line in held)
    _write(out, held)
    return fatal, said, report
