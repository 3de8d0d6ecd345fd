"""`contrastive train` over two processes reaches the weights one process
reaches with the same global batch, and so does a run whose worker is
killed with SIGKILL, then resumed with `train --resume` on both: torch over
two torchrun nodes of one process each (c10d rendezvous on localhost), jax
over two processes of 2 host devices each (`keras.distribution.initialize`)
against one process of 4, tensorflow over two `MultiWorkerMirroredStrategy`
workers of one CPU each (`TF_CONFIG`) against one process on one device,
streaming too (its workers feed a tf.data input their own way)."""

import json
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

BACKEND = os.environ.get("KERAS_BACKEND", "tensorflow")
pytestmark = [pytest.mark.skipif(BACKEND not in ("torch", "jax", "tensorflow"),
                                 reason="torch's, jax's and tensorflow's passes"),
              pytest.mark.heavy]

EPOCHS = 3
# Devices a process: jax simulates host devices; torch runs one per process,
# a tensorflow worker one per CPU.
DEVICES = {"jax": 2, "torch": 1, "tensorflow": 1}
STRATEGY = {"jax": "data_parallel", "torch": "ddp", "tensorflow": "mirrored"}


def _spec(tmp_path, steps, learning_rate=0.001, data=None, mode="memory", evaluate=False):
    # The paper's augmentation: each process draws the global batch's crops
    # and keeps its rows, as one process draws them (at a learning rate of
    # 1e-12 the batch-norm statistics of both runs agree to 4e-6 after 36
    # steps). A small learning rate: on this tiny model float round-off (a
    # sum in another order) grows with the steps and the rate; with
    # augmentation, at 0.001, 1.5e-4 after 12 steps and 3e-2 after 24, at
    # 1e-4, 7e-6 after 36.
    spec = {
        "seed": 0,
        "data": data or {"name": "digits", "size": 8},
        "augment": {"name": "simclr", "preset": "cifar10"},
        "encoder": {"name": "small_cnn", "widths": [8]},
        "head": {"name": "mlp", "output_dim": 8},
        "loss": {"name": "nt_xent", "temperature": 0.5},
        "optimizer": {"name": "sgd", "learning_rate": learning_rate},
        "train": {"batch_size": 16, "epochs": EPOCHS, "steps_per_epoch": steps,
                  "input": mode, "verbose": 0},
        "eval": {"knn": {"enabled": evaluate, "k": 5},
                 "linear": {"enabled": evaluate, "epochs": 2}, "baselines": False},
        "output": {"save_encoder": evaluate, "plot": False, "tensorboard": False},
        "distribute": {"strategy": STRATEGY[BACKEND]},
    }
    path = tmp_path / f"spec-{steps}-{learning_rate:g}.json"
    path.write_text(json.dumps(spec))
    return path


def _weights(run):
    import h5py

    state = json.loads((run / "checkpoint.json").read_text())
    assert state["epoch"] == EPOCHS
    values = {}
    with h5py.File(run / state["weights"], "r") as file:
        file.visititems(lambda name, item: values.__setitem__(name, item[()])
                        if isinstance(item, h5py.Dataset) else None)
    return values


def _assert_same_weights(run, reference):
    got, want = _weights(run), _weights(reference)
    assert got.keys() == want.keys()
    for name in want:
        np.testing.assert_allclose(got[name], want[name], rtol=1e-4, atol=1e-5, err_msg=name)


def _losses(run, column="loss"):
    import csv

    with open(run / "metrics.csv", newline="") as f:
        return [float(row[column]) for row in csv.DictReader(f)]


def _one_process(spec, run):
    """One process: torch and tensorflow on one device, jax on 4 host
    devices (the devices of the two processes). tensorflow's reference is
    no distribution rather than a `MirroredStrategy` over 2 logical CPUs:
    that one computes on the workers' replicas exactly (the same weights to
    the bit), so it would share their faults, while one device tells
    whether the two workers train as one process does (synchronized batch
    norm and gathered negatives included).

    Started here, finished by `_finished`: it runs while the nodes start
    and while a survivor waits to see its peer gone."""
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4")
    strategy = "data_parallel" if BACKEND == "jax" else "none"
    one = subprocess.Popen([sys.executable, "-m", "contrastive_cli.main", "train", str(spec),
                            "--set", f"distribute.strategy={strategy}", "--out", str(run)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    _references.append(one)
    return one


_references = []


@pytest.fixture(autouse=True)
def _no_reference_left():
    """A test that fails before `_finished` leaves no reference running."""
    yield
    while _references:
        one = _references.pop()
        if one.poll() is None:
            one.kill()
            one.communicate()


def _finished(one):
    _, errors = one.communicate(timeout=300)
    assert one.returncode == 0, errors[-3000:]


def _start_nodes(args):
    from contrastive.distribute.check.processes import (
        backend_module,
        free_ports,
        local_environment,
    )

    program = ["-m", "contrastive_cli.main", *args]
    addresses = [f"127.0.0.1:{port}" for port in free_ports(2)]
    commands = backend_module(BACKEND).process_commands(program, 2, DEVICES[BACKEND], addresses)
    env = local_environment(BACKEND, DEVICES[BACKEND])
    return [subprocess.Popen([sys.executable, *argv[1:]], env={**env, **extra},
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             start_new_session=True)
            for extra, argv in commands]


def _finish(nodes, timeout=240, stop_after=None):
    """Waits for `nodes`; returns their exit codes and outputs. With
    `stop_after`, a node still running after that many seconds is killed
    (code None) instead of failing the test."""
    deadline = time.monotonic() + (stop_after or timeout)
    while time.monotonic() < deadline and any(node.poll() is None for node in nodes):
        time.sleep(0.1)
    running = [node.poll() is None for node in nodes]
    for node in nodes:
        if node.poll() is None:
            os.killpg(node.pid, signal.SIGKILL)
    outputs = [node.communicate()[0].decode(errors="replace") for node in nodes]
    if any(running) and stop_after is None:
        pytest.fail(f"the run did not finish in {timeout} s:\n" + outputs[0][-3000:])
    return [None if r else node.returncode for r, node in zip(running, nodes)], outputs


def test_two_nodes_reach_the_weights_of_one_process(tmp_path):
    spec = _spec(tmp_path, steps=2, evaluate=True)
    one = _one_process(spec, tmp_path / "one")
    codes, outputs = _finish(_start_nodes(["train", str(spec), "--out", str(tmp_path / "two")]))
    assert codes == [0, 0], outputs[0][-3000:] + outputs[1][-3000:]
    _finished(one)
    _assert_same_weights(tmp_path / "two", tmp_path / "one")
    # The logged loss is the global batch's, not the chief's rows'.
    np.testing.assert_allclose(_losses(tmp_path / "two"), _losses(tmp_path / "one"), rtol=1e-4)
    # So are the loss' metrics (a flipped rank would move the accuracy by 1/64).
    for column in ("contrastive_acc", "contrastive_entropy"):
        np.testing.assert_allclose(_losses(tmp_path / "two", column),
                                   _losses(tmp_path / "one", column), rtol=1e-4, atol=1e-3,
                                   err_msg=column)
    # The chief evaluates and saves the encoder once every process is done.
    got, want = (json.loads((tmp_path / run / "results.json").read_text())["eval"]
                 for run in ("two", "one"))
    assert got.keys() == want.keys() == {"knn_accuracy", "knn_top5_accuracy", "linear_accuracy"}
    assert abs(got["knn_accuracy"] - want["knn_accuracy"]) <= 0.01, (got, want)
    assert (tmp_path / "two" / "encoder.keras").exists()


@pytest.mark.skipif(BACKEND != "tensorflow",
                    reason="the tensorflow workers' own path for a tf.data input")
def test_two_workers_stream_the_batches_of_one_process(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    for c in range(2):
        (tmp_path / "images" / f"class{c}").mkdir(parents=True)
        for i in range(20):
            Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(
                tmp_path / "images" / f"class{c}" / f"{i:02d}.png")
    data = {"name": "image_folder", "path": str(tmp_path / "images"), "size": 8, "cache": False}
    spec = _spec(tmp_path, steps=2, data=data, mode="stream")
    one = _one_process(spec, tmp_path / "one")
    codes, outputs = _finish(_start_nodes(["train", str(spec), "--out", str(tmp_path / "two")]))
    assert codes == [0, 0], outputs[0][-3000:] + outputs[1][-3000:]
    _finished(one)
    _assert_same_weights(tmp_path / "two", tmp_path / "one")


def _workers(node):
    """The training processes of `node`: torchrun's workers, or the node's
    own process (jax: a supervisor, whose child dies with it; tensorflow)."""
    if BACKEND != "torch":
        return [node.pid]
    agent = node
    children = []
    for task in os.listdir(f"/proc/{agent.pid}/task"):
        with open(f"/proc/{agent.pid}/task/{task}/children") as f:
            children += [int(pid) for pid in f.read().split()]
    return children


def _past_the_first_checkpoint(spec, run):
    """Two nodes training `spec` into `run`, once the first epoch's
    checkpoint is written."""
    nodes = _start_nodes(["train", str(spec), "--out", str(run)])
    state = run / "checkpoint.json"
    deadline = time.monotonic() + 180
    while not (state.exists() and json.loads(state.read_text())["epoch"] >= 1):
        assert time.monotonic() < deadline and all(n.poll() is None for n in nodes)
        time.sleep(0.05)
    return nodes


def test_a_killed_worker_then_resume_reaches_the_same_weights(tmp_path):
    spec = _spec(tmp_path, steps=12, learning_rate=1e-4)
    one = _one_process(spec, tmp_path / "one")
    run = tmp_path / "two"
    nodes = _past_the_first_checkpoint(spec, run)
    state = run / "checkpoint.json"
    for pid in _workers(nodes[1]):
        os.kill(pid, signal.SIGKILL)
    killed = time.monotonic()
    # The survivor stops by itself: jax's after the heartbeat timeout (10 s),
    # tensorflow's when the health check aborts its collective (about 12 s),
    # torch's when its collective fails or torchrun stops it.
    codes, outputs = _finish(nodes, timeout=40)
    print(f"the survivor stopped {time.monotonic() - killed:.1f} s after the kill")
    assert codes[1] != 0, outputs[1][-3000:]
    assert codes[0] != 0, outputs[0][-3000:]
    lost = [line for line in outputs[0].splitlines() if "process 1 of 2" in line]
    assert len(lost) == 1 and f"--resume {run}" in lost[0], outputs[0][-3000:]
    # No traceback through our code (torchrun prints its own).
    assert not re.search(r'File "[^"]*[/\\]contrastive(_cli)?[/\\]', outputs[0]), outputs[0][-3000:]
    assert json.loads(state.read_text())["epoch"] < EPOCHS, "the run ended before the kill"
    codes, outputs = _finish(_start_nodes(["train", "--resume", str(run)]))
    assert codes == [0, 0], outputs[0][-3000:] + outputs[1][-3000:]
    _finished(one)
    _assert_same_weights(run, tmp_path / "one")


@pytest.mark.skipif(BACKEND != "jax", reason="jax's coordinator hosts its coordination service")
def test_a_killed_coordinator_is_one_line_from_the_other_process(tmp_path):
    # jax's client ends the other process from C++ when the coordinator
    # dies; its supervisor replaces that report with the line.
    spec = _spec(tmp_path, steps=12, learning_rate=1e-4)
    run = tmp_path / "two"
    nodes = _past_the_first_checkpoint(spec, run)
    state = run / "checkpoint.json"
    os.kill(nodes[0].pid, signal.SIGKILL)
    killed = time.monotonic()
    codes, outputs = _finish(nodes, timeout=40)
    print(f"process 1 stopped {time.monotonic() - killed:.1f} s after the kill:\n{outputs[1]}")
    assert codes[1] == 1, outputs[1][-3000:]
    lines = outputs[1].strip().splitlines()
    assert lines[-1].startswith("error: process 0 of 2 (the coordinator, 127.0.0.1:"), lines[-1]
    assert "stopped responding during epoch 2 of 3; the last checkpoint is epoch 1" in lines[-1]
    assert f"--resume {run}" in lines[-1]
    assert "Check failure stack trace" not in outputs[1] and "Terminating process" not in outputs[1]
    assert not any(re.match(r"[WEF]\d{4} ", line) for line in lines), outputs[1][-3000:]
    assert json.loads(state.read_text())["epoch"] == 1
