"""The distribution layer: N simulated devices against one device.

Each backend's comparison runs in that backend's pass of the suite (CI runs
it once per KERAS_BACKEND). Device set-up must come before the backend
initialises, so jax and tensorflow run in a subprocess; torch starts its own
gloo processes.
"""

import json
import os
import subprocess
import sys

import keras
import pytest

from contrastive.distribute import Distribution, from_spec
from contrastive.errors import SpecError

BACKEND = keras.backend.backend()
TOLERANCE = 1e-4

CHECK_SCRIPT = """
import json, sys
{setup}
from contrastive.distribute.check import run_check
sync = run_check({devices})
unsync = run_check({devices}, sync_batchnorm=False)
print("REPORT" + json.dumps([sync, unsync]))
"""


def _run(args, env_extra=None, timeout=240):
    env = dict(os.environ, KERAS_BACKEND=BACKEND, **(env_extra or {}))
    return subprocess.run(args, env=env, capture_output=True, text=True, timeout=timeout)


def _reports(setup, devices, env_extra=None):
    script = CHECK_SCRIPT.format(setup=setup, devices=devices)
    done = _run([sys.executable, "-c", script], env_extra)
    assert done.returncode == 0, done.stderr[-3000:]
    line = next(line for line in done.stdout.splitlines() if line.startswith("REPORT"))
    return json.loads(line[len("REPORT"):])


def _assert_agree(report):
    assert report["passed"], report
    assert report["loss_difference"] <= TOLERANCE
    assert report["max_grad_difference"] <= TOLERANCE
    assert report["max_batchnorm_difference"] <= TOLERANCE


def _assert_differ(report):
    assert not report["passed"], report
    assert report["max_batchnorm_difference"] > TOLERANCE
    assert report["max_grad_difference"] > TOLERANCE


def test_strategy_none_is_one_device():
    dist = from_spec({"strategy": "none"})
    assert type(dist) is Distribution
    assert dist.num_replicas == 1 and dist.replica_id() == 0 and dist.is_chief
    assert dist.launch_command(["train", "spec.yaml"]) is None
    with dist.scope():
        pass


def test_strategy_of_another_backend_is_a_spec_error():
    other = {"jax": "mirrored", "tensorflow": "ddp", "torch": "data_parallel"}[BACKEND]
    with pytest.raises(SpecError, match="distribute.strategy"):
        from_spec({"strategy": other})


@pytest.mark.skipif(BACKEND != "jax", reason="jax's pass")
def test_jax_cli_check_passes_on_4_host_devices():
    done = _run([sys.executable, "-m", "contrastive_cli.main", "check-distributed",
                 "--devices", "4", "--json"])
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    report = json.loads(done.stdout[done.stdout.index("{"):])
    assert report["devices"] == 4
    _assert_agree(report)


@pytest.mark.skipif(BACKEND != "jax", reason="jax's pass")
def test_jax_per_device_batch_norm_is_reported():
    # shard_map per-device step: the check can fail.
    flags = os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=4"
    script = CHECK_SCRIPT.format(setup="", devices=4).replace(
        "sync = run_check(4)\n", "sync = None\n")
    done = _run([sys.executable, "-c", script], {"XLA_FLAGS": flags})
    assert done.returncode == 0, done.stderr[-3000:]
    line = next(line for line in done.stdout.splitlines() if line.startswith("REPORT"))
    _assert_differ(json.loads(line[len("REPORT"):])[1])


@pytest.mark.skipif(BACKEND != "tensorflow", reason="tensorflow's pass")
def test_tensorflow_mirrored_2_logical_cpus():
    setup = ("from contrastive.distribute.tensorflow_backend import configure_logical_cpus\n"
             "assert configure_logical_cpus(2)")
    sync, unsync = _reports(setup, 2)
    _assert_agree(sync)
    _assert_differ(unsync)


WORKER_DATASET_SCRIPT = """
import numpy as np, tensorflow as tf
from contrastive.distribute.tensorflow_backend import configure_logical_cpus
from contrastive.distribute.tensorflow_fit import worker_dataset
assert configure_logical_cpus(2)
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
batches = [(np.arange(8 * i, 8 * i + 8, dtype=np.int32).reshape(4, 2),) for i in range(3)]
for step, (x,) in enumerate(worker_dataset(strategy, batches)):
    pieces = [v.numpy() for v in strategy.experimental_local_results(x)]
    np.testing.assert_array_equal(np.concatenate(pieces), batches[step][0])
    assert [len(p) for p in pieces] == [2, 2]
print("STEPS", step + 1)
"""


@pytest.mark.skipif(BACKEND != "tensorflow", reason="tensorflow's pass")
def test_a_worker_s_rows_reach_its_local_replicas_in_order():
    # One worker of two local replicas: each batch of the worker's rows is
    # cut in two, the first half on replica 0.
    done = _run([sys.executable, "-c", WORKER_DATASET_SCRIPT])
    assert done.returncode == 0, done.stderr[-3000:]
    assert "STEPS 3" in done.stdout


@pytest.mark.skipif(BACKEND != "torch", reason="torch's pass")
def test_torch_ddp_2_gloo_processes():
    from contrastive.distribute.check import run_check

    _assert_agree(run_check(2))
    _assert_differ(run_check(2, sync_batchnorm=False))


@pytest.mark.skipif(BACKEND != "torch", reason="torch's pass")
def test_torch_launch_command():
    from contrastive.distribute.torch_backend import TorchDistribution

    dist = TorchDistribution(devices=2)
    assert dist.needs_launch and dist.num_replicas == 2
    assert dist.launch_command(["train", "spec.yaml"]) == (
        "torchrun --standalone --nproc_per_node=2 -m contrastive_cli.main --backend torch train spec.yaml"
    )


def test_the_backend_of_keras_json_is_the_one_checked(tmp_path):
    # Without KERAS_BACKEND, Keras reads keras.json: check-distributed must
    # configure that backend's devices (here the current one's).
    (tmp_path / "keras.json").write_text(json.dumps({"backend": BACKEND}))
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    env["KERAS_HOME"] = str(tmp_path)
    done = subprocess.run([sys.executable, "-m", "contrastive_cli.main", "check-distributed",
                           "--devices", "2", "--json"],
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout[done.stdout.index("{"):])
    assert report["backend"] == BACKEND and report["passed"]


# Several processes: each started as its engine documents, 2 x 2 host
# devices on jax, 2 workers on tensorflow, 2 torchrun nodes of 1 process.
PROCESS_DEVICES = {"jax": 2, "tensorflow": 1, "torch": 1}


def _process_check(*flags):
    done = _run([sys.executable, "-m", "contrastive_cli.main", "check-distributed",
                 "--processes", "2", "--json", *flags], timeout=120)
    assert done.returncode in (0, 1), done.stdout + done.stderr[-3000:]
    report = json.loads(done.stdout[done.stdout.index("{"):])
    assert report["processes"] == 2 and report["devices"] == PROCESS_DEVICES[BACKEND]
    assert report["backend"] == BACKEND
    return done.returncode, report


@pytest.mark.heavy
def test_two_processes_agree_with_one_device():
    code, report = _process_check()
    _assert_agree(report)
    assert code == 0


@pytest.mark.heavy
def test_two_processes_without_sync_batchnorm_differ():
    code, report = _process_check("--no-sync-batchnorm")
    _assert_differ(report)
    assert code == 1


def test_process_commands_follow_each_engine():
    from contrastive.distribute import jax_backend, tensorflow_backend, torch_backend

    program = ["-m", "contrastive_cli.main", "train", "spec.yaml"]
    addresses = ["host0:1234", "host1:1234"]
    jax_cmds = jax_backend.process_commands(program, 2, 4, addresses)
    assert [env["KERAS_DISTRIBUTION_PROCESS_ID"] for env, _ in jax_cmds] == ["0", "1"]
    assert all(env["KERAS_DISTRIBUTION_JOB_ADDRESSES"] == "host0:1234" for env, _ in jax_cmds)
    assert jax_cmds[0][1] == ["python", *program]
    tf_cmds = tensorflow_backend.process_commands(program, 2, 1, addresses)
    configs = [json.loads(env["TF_CONFIG"]) for env, _ in tf_cmds]
    assert [c["task"] for c in configs] == [{"type": "worker", "index": i} for i in (0, 1)]
    assert configs[1]["cluster"]["worker"] == addresses
    torch_cmds = torch_backend.process_commands(program, 2, 4, addresses)
    assert torch_cmds[0] == torch_cmds[1]
    argv = torch_cmds[0][1]
    assert argv[:3] == ["python", "-m", "torch.distributed.run"]
    assert {"--nnodes=2", "--nproc-per-node=4", "--rdzv-backend=c10d",
            "--rdzv-endpoint=host0:1234"} <= set(argv)
    assert argv[-len(program):] == program


def test_machine_commands_name_each_engine():
    from contrastive.distribute.base import machine_commands

    jax_lines = machine_commands("jax", ["train", "spec.yaml"])
    assert [line.split()[2] for line in jax_lines] == [
        "KERAS_DISTRIBUTION_PROCESS_ID=0", "KERAS_DISTRIBUTION_PROCESS_ID=1"]
    assert jax_lines[0].endswith("python -m contrastive_cli.main --backend jax train spec.yaml")
    tf_lines = machine_commands("tensorflow", ["train", "spec.yaml"])
    assert all(line.startswith("TF_CONFIG='") for line in tf_lines)
    assert '"index": 1}' in tf_lines[1]
    torch_lines = machine_commands("torch", ["train", "spec.yaml"])
    assert torch_lines[0] == torch_lines[1]
    assert torch_lines[0].startswith("torchrun --nnodes=2 --nproc-per-node=gpu --rdzv-backend=c10d "
                                     "--rdzv-endpoint=HOST0:29500")


def _mirrored_spec(tmp_path, train=""):
    """A one-step digits spec under `strategy: mirrored`; `train`: more
    `train` keys (", key: value")."""
    spec = tmp_path / "spec.yaml"
    spec.write_text("data: {name: digits, size: 8}\nencoder: {name: small_cnn, widths: [8]}\n"
                    f"train: {{batch_size: 16, epochs: 1, steps_per_epoch: 1{train}}}\n"
                    "distribute: {strategy: mirrored}\n")
    return spec


@pytest.mark.skipif(BACKEND != "tensorflow", reason="tensorflow's pass")
def test_several_tensorflow_workers_refuse_device_input(tmp_path):
    from contrastive.distribute.check.processes import free_ports, run_processes
    from contrastive.distribute.tensorflow_backend import process_commands

    spec = _mirrored_spec(tmp_path, ", input: device")
    program = ["-m", "contrastive_cli.main", "train", str(spec), "--out", str(tmp_path / "run")]
    addresses = [f"127.0.0.1:{port}" for port in free_ports(2)]
    with pytest.raises(RuntimeError) as failed:
        run_processes(process_commands(program, 2, 1, addresses), "tensorflow", 1, 120)
    assert "exited with 2" in str(failed.value)
    assert "train.input: expected memory, stream or auto, received device" in str(failed.value)
    assert not (tmp_path / "run").exists()


@pytest.mark.skipif(BACKEND != "tensorflow", reason="tensorflow's pass")
def test_tensorflow_workers_refuse_a_device_count_they_do_not_have(tmp_path):
    from contrastive.distribute.check.processes import free_ports, run_processes
    from contrastive.distribute.tensorflow_backend import process_commands

    spec = _mirrored_spec(tmp_path)
    program = ["-m", "contrastive_cli.main", "train", str(spec), "--set", "distribute.devices=3",
               "--out", str(tmp_path / "run")]
    addresses = [f"127.0.0.1:{port}" for port in free_ports(2)]
    with pytest.raises(RuntimeError) as failed:
        run_processes(process_commands(program, 2, 1, addresses), "tensorflow", 1, 120)
    assert "exited with 2" in str(failed.value)
    assert ("distribute.devices: expected null or 2 (under TF_CONFIG every worker uses all its "
            "devices: 2 in all), received 3") in str(failed.value)
    assert not (tmp_path / "run").exists()


@pytest.mark.skipif(BACKEND != "tensorflow", reason="tensorflow's pass")
def test_tensorflow_train_prints_the_commands_for_several_machines(tmp_path):
    spec = _mirrored_spec(tmp_path)
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "file").write_text("")
    # The run stops on the occupied --out, after the commands.
    done = _run([sys.executable, "-m", "contrastive_cli.main", "train", str(spec),
                 "--out", str(taken)], timeout=120)
    assert done.returncode == 2, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    start = lines.index("on several machines (HOST0: the first machine's address; the same "
                        "--out on shared storage), run one line on each:")
    for index in (0, 1):
        config = json.dumps({"cluster": {"worker": ["HOST0:29500", "HOST1:29500"]},
                             "task": {"type": "worker", "index": index}})
        assert lines[start + 1 + index] == (
            f"  TF_CONFIG='{config}' python -m contrastive_cli.main --backend tensorflow "
            f"train {spec} --out {taken}")


@pytest.mark.skipif(BACKEND != "torch", reason="torch's pass")
def test_train_prints_the_commands_for_several_machines(tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text("data: {name: digits, size: 8}\nencoder: {name: small_cnn, widths: [8]}\n"
                    "train: {batch_size: 16, epochs: 1, steps_per_epoch: 1}\n"
                    "distribute: {strategy: ddp, devices: 2}\n")
    done = _run([sys.executable, "-m", "contrastive_cli.main", "train", str(spec)], timeout=120)
    assert done.returncode == 2, done.stderr[-3000:]  # one process: start it with torchrun
    lines = done.stdout.splitlines()
    start = lines.index("on several machines (HOST0: the first machine's address; the same "
                        "--out on shared storage), run one line on each:")
    assert lines[start + 1] == lines[start + 2] == (
        "  torchrun --nnodes=2 --nproc-per-node=gpu --rdzv-backend=c10d "
        f"--rdzv-endpoint=HOST0:29500 --rdzv-id=contrastive -m contrastive_cli.main "
        f"--backend torch train {spec}")


@pytest.mark.parametrize("message, processes, index, who", [
    (("Collective ops is aborted by: ... The following tasks are unhealthy "
      "(stopped sending heartbeats): /job:worker/replica:0/task:1"), 3, 0,
     "process 1 of 3 stopped responding"),
    # The broken connection can abort the collective before the health check
    # names the task: of two, the other one.
    ("Collective ops is aborted by: recvmsg:Connection reset by peer", 2, 0,
     "process 1 of 2 stopped responding"),
    ("Collective ops is aborted by: recvmsg:Connection reset by peer", 3, 2,
     ("process 2 of 3 lost its connection to the others (Collective ops is aborted by: "
      "recvmsg:Connection reset by peer)")),
])
def test_tensorflow_names_the_lost_worker(message, processes, index, who):
    from types import SimpleNamespace

    from contrastive.distribute.tensorflow_backend import TensorFlowDistribution

    cluster = {"worker": [f"127.0.0.1:{port}" for port in range(processes)]}
    worker = SimpleNamespace(num_processes=processes, process_index=index,
                             tf_strategy=SimpleNamespace(cluster_resolver=SimpleNamespace(
                                 cluster_spec=lambda: SimpleNamespace(as_dict=lambda: cluster))))
    assert TensorFlowDistribution._lost(worker, message) == who
