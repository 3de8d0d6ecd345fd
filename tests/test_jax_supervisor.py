"""The supervisor of a non-coordinator jax process: when it applies, how it
relays the child's stderr (jax's fatal report replaced, everything else
passed on in order), and the line it builds from the child's note. The
whole path (kill -9 of a coordinator) is in test_multiprocess_training."""

import io
import json
import queue

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


def _relayed(lines):
    stream = queue.Queue()
    for line in [*lines, _END]:
        stream.put(line)
    out = io.BytesIO()
    return _relay(stream, out), out.getvalue()


@pytest.mark.parametrize("environ, expected", [
    ({"KERAS_DISTRIBUTION_NUM_PROCESSES": "2", "KERAS_DISTRIBUTION_PROCESS_ID": "1"}, True),
    ({"KERAS_DISTRIBUTION_NUM_PROCESSES": "2", "KERAS_DISTRIBUTION_PROCESS_ID": "0"}, False),
    ({"KERAS_DISTRIBUTION_NUM_PROCESSES": "1", "KERAS_DISTRIBUTION_PROCESS_ID": "0"}, False),
    ({}, False),
    ({"KERAS_DISTRIBUTION_NUM_PROCESSES": "2", "KERAS_DISTRIBUTION_PROCESS_ID": "1",
      jax_supervisor.SUPERVISED: "1"}, False),
    ({"KERAS_DISTRIBUTION_NUM_PROCESSES": "two", "KERAS_DISTRIBUTION_PROCESS_ID": "1"}, False),
])
def test_only_a_non_coordinator_of_several_processes_is_supervised(environ, expected):
    assert needed(environ) is expected


def test_jax_fatal_report_and_the_warnings_before_it_are_dropped():
    fatal, out = _relayed([b"epoch 1/3\n", *FATAL])
    assert fatal
    assert out == b"epoch 1/3\n"


def test_everything_else_passes_in_order():
    # absl lines are held a moment, never dropped, without a fatal report.
    lines = [b"I1129 05:45:11.1 1 port.cc:153] oneDNN custom operations are on.\n",
             b"epoch 1/3\n", b"W1129 05:45:12.2 1 x.cc:1] a warning\n", b"done\n"]
    fatal, out = _relayed(lines)
    assert not fatal
    assert out == b"".join(lines)


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
