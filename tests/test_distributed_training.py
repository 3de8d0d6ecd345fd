"""`contrastive train` runs under each backend's own distributed engine:
jax DataParallel over 2 host devices, tf.distribute MirroredStrategy over 2
logical CPUs, torch DDP over 2 gloo processes started by torchrun."""

import json
import os
import shlex
import subprocess
import sys
import textwrap

import pytest
import yaml

from helpers import tiny_spec


@pytest.fixture
def spec_file(tiny_arrays, tmp_path):
    data = tiny_spec(tiny_arrays, augment={"name": "simclr", "preset": "cifar10"},
                     output={"tensorboard": False, "plot": False},
                     eval={"knn": {"enabled": False}, "linear": {"enabled": False}})
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _run(command, env=None):
    result = subprocess.run(command, capture_output=True, text=True, timeout=600,
                            env={**os.environ, **(env or {})})
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def _check_run(run_dir):
    results = json.loads((run_dir / "results.json").read_text())
    assert results["epochs"] == 1 and results["steps"] == 2
    assert (run_dir / "encoder.keras").exists()
    assert json.loads((run_dir / "checkpoint.json").read_text())["epoch"] == 1


def test_jax_data_parallel(backend, spec_file, tmp_path):
    if backend != "jax":
        pytest.skip("jax only")
    run = tmp_path / "run"
    result = _run([sys.executable, "-m", "contrastive_cli.main", "train", str(spec_file),
                   "--set", "distribute.strategy=data_parallel", "--out", str(run)],
                  env={"XLA_FLAGS": "--xla_force_host_platform_device_count=2"})
    assert "data_parallel over 2 replica(s)" in result.stdout
    _check_run(run)


def test_tensorflow_mirrored(backend, spec_file, tmp_path):
    if backend != "tensorflow":
        pytest.skip("tensorflow only")
    run = tmp_path / "run"
    script = textwrap.dedent(f"""
        import tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        from contrastive_cli.main import main
        main(["train", {str(spec_file)!r}, "--set", "distribute.strategy=mirrored",
              "--set", "distribute.devices=2",
              "--out", {str(run)!r}])
    """)
    result = _run([sys.executable, "-c", script])
    assert "mirrored over 2 replica(s)" in result.stdout
    _check_run(run)


def test_torch_ddp_prints_then_runs_under_torchrun(backend, spec_file, tmp_path):
    if backend != "torch":
        pytest.skip("torch only")
    run = tmp_path / "run"
    args = ["train", str(spec_file), "--set", "distribute.strategy=ddp",
            "--set", "distribute.devices=2", "--out", str(run)]
    printed = subprocess.run([sys.executable, "-m", "contrastive_cli.main", *args],
                             capture_output=True, text=True, timeout=300)
    assert printed.returncode == 2
    command = printed.stderr.split("start it with: ", 1)[1].strip()
    assert command.startswith("torchrun --standalone --nproc_per_node=2 -m contrastive_cli.main --backend torch train")
    assert not run.exists()
    launcher, *rest = shlex.split(command)  # the printed command, run as printed
    assert launcher == "torchrun"
    # Without KERAS_BACKEND: the command itself must choose torch.
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    result = subprocess.run([sys.executable, "-m", "torch.distributed.run", *rest],
                            capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    _check_run(run)
