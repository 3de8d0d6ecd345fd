"""The supervisor of a non-coordinator jax process: when it applies, how it
relays the child's stderr (jax's fatal report replaced, everything else
passed on in order), and the line it builds from the child's note. The
whole path (kill -9 of a coordinator) is in test_multiprocess_training."""

import io
import json
import os
import queue
import subprocess
import sys
import threading
import time

import pytest

from contrastive.distribute import jax_supervisor
from contrastive.distribute.jax_supervisor import _END, _line_from_note, _relay, needed
from contrastive.distribute.lost import LostProcess

FATAL = [
    (b"W1129 05:45:11.575553   31506 preemption_sync_manager.cc:147] Failed to retrieve "
     b"preemption notice from coordination service: UNAVAILABLE: Socket closed\n"),
    b"Additional GRPC error information from remote target coordination_service\n",
    b"E1129 05:45:11.575792   31506 coordination_service_agent.cc:289] Polled an error\n",
    (b"F1129 05:45:11.575799   31506 client.h:80] Terminating process because the JAX "
     b"distributed service detected fatal errors. This most likely indicates that another "
     b"task died\n"),
    b"*** Check failure stack trace: ***\n",
    b"    @     0x7fdff3640634  absl::log_internal::LogMessage::SendToLog()\n",
]


def _relayed(lines, pause=0.0):
    """`_relay` over `lines`, `pause` seconds between them."""
    stream = queue.Queue()

    def feed():
        for line in [*lines, _END]:
            stream.put(line)
            time.sleep(pause)

    threading.Thread(target=feed, daemon=True).start()
    out = io.BytesIO()
    fatal, said, report = _relay(stream, out, lambda: None)
    return fatal, said, report, out.getvalue()


SEVERAL = {"KERAS_DISTRIBUTION_NUM_PROCESSES": "2", "KERAS_DISTRIBUTION_PROCESS_ID": "1",
           "KERAS_BACKEND": "jax"}


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
@pytest.mark.parametrize("argv, environ, expected", [
    (["train", "s.yaml"], SEVERAL, True),
    (["--backend", "jax", "train", "s.yaml"], {**SEVERAL, "KERAS_BACKEND": "torch"}, True),
    (["--backend", "torch", "train", "s.yaml"], SEVERAL, False),
    (["train", "s.yaml"], {**SEVERAL, "KERAS_BACKEND": "tensorflow"}, False),
    (["embed", "--run", "r"], SEVERAL, False),
    (["--version"], SEVERAL, False),
    (["train", "s.yaml"], {**SEVERAL, "KERAS_DISTRIBUTION_PROCESS_ID": "0"}, False),
    (["train", "s.yaml"], {**SEVERAL, "KERAS_DISTRIBUTION_NUM_PROCESSES": "1"}, False),
    (["train", "s.yaml"], {"KERAS_BACKEND": "jax"}, False),
    (["train", "s.yaml"], {**SEVERAL, jax_supervisor.SUPERVISED: "1"}, False),
    (["train", "s.yaml"], {**SEVERAL, "KERAS_DISTRIBUTION_NUM_PROCESSES": "two"}, False),
])
def test_only_jax_training_on_a_non_coordinator_is_supervised(argv, environ, expected):
    assert needed(argv, environ) is expected


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
@pytest.mark.parametrize("args, code, says", [
    (["train", "--help"], 0, "Usage: contrastive train"),
    (["train", "missing.yaml"], 2, "error: "),
])
def test_the_supervised_child_s_output_and_status_come_through(tmp_path, args, code, says):
    done = subprocess.run([sys.executable, "-m", "contrastive_cli.main", "--backend", "jax",
                           *args], env={**os.environ, **SEVERAL}, cwd=tmp_path,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == code, done.stderr
    if code == 0:
        assert says in done.stdout
    else:  # bad input: one line, through the supervisor
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(says), done.stderr


def test_jax_fatal_report_and_the_warnings_before_it_are_set_aside():
    fatal, said, report, out = _relayed([b"epoch 1/3\n", *FATAL])
    assert fatal and not said
    assert out == b"epoch 1/3\n"
    assert report == FATAL  # from the first absl line held before it


def test_everything_else_passes_in_order():
    lines = [b"I1129 05:45:11.1 1 port.cc:153] oneDNN custom operations are on.\n",
             b"epoch 1/3\n", b"W1129 05:45:12.2 1 x.cc:1] a warning\n", b"error: a line\n"]
    fatal, said, report, out = _relayed(lines)
    assert not fatal and said and report == []
    assert out == b"".join(lines)


def test_absl_lines_are_held_only_a_moment():
    # Without a fatal report they pass on after the hold, before the child
    # ends.
    stream = queue.Queue()
    stream.put(b"W1129 05:45:12.2 1 x.cc:1] a warning\n")
    out = io.BytesIO()
    relay = threading.Thread(target=_relay, args=(stream, out, lambda: None), daemon=True)
    relay.start()
    time.sleep(1.6)
    assert out.getvalue() == b"W1129 05:45:12.2 1 x.cc:1] a warning\n"
    stream.put(_END)
    relay.join(5)


def test_reading_stops_when_the_child_is_gone_and_its_pipe_stays_open():
    stream = queue.Queue()
    stream.put(b"last words\n")
    out = io.BytesIO()
    start = time.monotonic()
    assert _relay(stream, out, lambda: 1) == (False, False, [])
    assert out.getvalue() == b"last words\n" and time.monotonic() - start < 5


def test_the_line_reads_the_checkpoint_when_it_is_said(tmp_path):
    state = tmp_path / "checkpoint.json"
    report = LostProcess(tmp_path, state, epochs=3, epoch=1)
    note = tmp_path / "note.json"
    note.write_text(json.dumps(report.note("process 0 of 2 (the coordinator, h:1) "
                                           "stopped responding")))
    assert _line_from_note(note) == (
        f"process 0 of 2 (the coordinator, h:1) stopped responding during epoch 1 of 3; "
        f"{tmp_path} has no checkpoint yet; continue with `contrastive train --resume "
        f"{tmp_path}`, started on every process as before")
    # Written by the chief after the note: the line follows the checkpoint.
    state.write_text(json.dumps({"epoch": 2}))
    assert "during epoch 3 of 3; the last checkpoint is epoch 2 in" in _line_from_note(note)
    assert _line_from_note(tmp_path / "missing.json") is None
    # From `jax.distributed.initialize` until training starts.
    note.write_text(json.dumps({"who": "process 0 of 2 (the coordinator, h:1) "
                                       "stopped responding"}))
    assert _line_from_note(note) == ("process 0 of 2 (the coordinator, h:1) stopped responding "
                                     "before training started; start the run again on every "
                                     "process")
