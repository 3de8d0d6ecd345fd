"""The distributed check over several local processes, each started the way
its backend's engine documents (`process_commands` of each backend module):
jax with `keras.distribution.initialize`'s `KERAS_DISTRIBUTION_*`
variables, tensorflow with `TF_CONFIG` (`MultiWorkerMirroredStrategy`),
torch with one `torchrun --nnodes P --rdzv-backend c10d` per simulated
node. Each process computes its share of the global batch; the chief
writes its result, which is compared with one device's step here.

`python -m contrastive.distribute.check.processes '<json>'` is the program
each process runs.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

import numpy as np

from contrastive.distribute.check import GLOBAL_BATCH, TOLERANCE, compare, images

# Devices per process each backend's engine uses on a CPU: jax simulates
# host devices, MultiWorkerMirroredStrategy runs one replica per CPU
# worker, torchrun runs one process per device.
CPU_DEVICES = {"jax": 2, "tensorflow": 1, "torch": 1}


def free_ports(count):
    """`count` distinct free ports on 127.0.0.1."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def backend_module(backend):
    """The distribution module of `backend`."""
    if backend == "jax":
        from contrastive.distribute import jax_backend as module
    elif backend == "tensorflow":
        from contrastive.distribute import tensorflow_backend as module
    else:
        from contrastive.distribute import torch_backend as module
    return module


def _process_step(backend):
    if backend == "jax":
        from contrastive.distribute.check.jax_step import process_step
    elif backend == "tensorflow":
        from contrastive.distribute.check.tensorflow_step import process_step
    else:
        from contrastive.distribute.check.torch_step import process_step
    return process_step


def run_process_check(processes, devices=None, sync_batchnorm=True, gather_negatives=True,
                      tolerance=TOLERANCE, batch=None, backend=None, method="simclr",
                      timeout=300):
    """Compares one step of `method` on `processes` local processes of
    `devices` devices each (default: `CPU_DEVICES`) with one device.

    Returns:
        `run_check`'s report, with `processes` and `devices` (per process).

    Raises:
        RuntimeError: a process failed or did not finish within `timeout`
            seconds (its output's end is in the message).
    """
    import keras

    backend = backend or keras.backend.backend()
    devices = devices or CPU_DEVICES[backend]
    if backend == "tensorflow" and devices != 1:
        raise ValueError(f"expected 1 device per tensorflow worker on a CPU "
                         f"(MultiWorkerMirroredStrategy runs one), received {devices}")
    replicas = processes * devices
    batch = batch or (GLOBAL_BATCH if GLOBAL_BATCH % replicas == 0 else 2 * replicas)
    x = images(batch)
    from contrastive.distribute.check import build_model, _backend_step

    single = _backend_step(backend)(lambda: build_model(method=method), x, 1)
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "result.npy")
        job = {"backend": backend, "method": method, "batch": batch, "out": out,
               "sync_batchnorm": sync_batchnorm, "gather_negatives": gather_negatives}
        program = ["-m", "contrastive.distribute.check.processes", json.dumps(job)]
        addresses = [f"127.0.0.1:{port}" for port in free_ports(processes)]
        commands = backend_module(backend).process_commands(program, processes, devices,
                                                            addresses)
        run_processes(commands, backend, devices, timeout)
        multi = np.load(out, allow_pickle=True).item()
    return compare(single, multi, tolerance=tolerance, backend=backend, processes=processes,
                   devices=devices, batch=batch, sync_batchnorm=sync_batchnorm,
                   gather_negatives=gather_negatives, method=method)


def local_environment(backend, devices):
    """The variables that give each local process `devices` simulated
    devices on a CPU, beside this process' own."""
    env = dict(os.environ, KERAS_BACKEND=backend, PYTHONPATH=os.pathsep.join(sys.path))
    if backend == "jax":
        kept = [f for f in env.get("XLA_FLAGS", "").split()
                if not f.startswith("--xla_force_host_platform_device_count")]
        env["XLA_FLAGS"] = " ".join(kept + [f"--xla_force_host_platform_device_count={devices}"])
    env.pop("TF_CONFIG", None)
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)
    return env


def run_processes(commands, backend, devices, timeout):
    """Starts `commands` (`[(environment, argv)]`, `python` as the
    interpreter) and waits for all of them.

    Raises:
        RuntimeError: one failed (the others are stopped) or the time ran
            out; the message names the process and ends with its output.
    """
    base = local_environment(backend, devices)
    started = []
    with tempfile.TemporaryDirectory() as logs:
        try:
            for i, (env, argv) in enumerate(commands):
                log = open(os.path.join(logs, f"{i}.log"), "w+b")  # noqa: SIM115
                argv = [sys.executable if a == "python" else a for a in argv]
                process = subprocess.Popen(argv, env={**base, **env}, stdout=log,
                                           stderr=subprocess.STDOUT, start_new_session=True)
                started.append((process, log))
            _wait(started, time.monotonic() + timeout)
        finally:
            for process, log in started:
                if process.poll() is None:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait()
                log.close()


def _wait(started, deadline):
    while True:
        codes = [p.poll() for p, _ in started]
        failed = [i for i, code in enumerate(codes) if code not in (None, 0)]
        if failed:
            raise RuntimeError(_failure(started, failed[0], f"exited with {codes[failed[0]]}"))
        if all(code == 0 for code in codes):
            return
        if time.monotonic() > deadline:
            waiting = codes.index(None)
            raise RuntimeError(_failure(started, waiting, "did not finish in time"))
        time.sleep(0.1)


def _failure(started, index, what):
    log = started[index][1]
    log.flush()
    log.seek(0)
    tail = log.read().decode(errors="replace")[-3000:]
    return f"process {index} of {len(started)} {what}:\n{tail}"


def main(argv=None):
    """One process' part of the check (the program `run_process_check`
    starts)."""
    job = json.loads((argv or sys.argv[1:])[0])
    from contrastive.distribute.check import build_model

    step = _process_step(job["backend"])
    result, chief = step(lambda: build_model(method=job["method"]), images(job["batch"]),
                         job["sync_batchnorm"], job["gather_negatives"])
    if chief:
        np.save(job["out"], np.array(result, dtype=object), allow_pickle=True)
    sys.stdout.flush()
    sys.stderr.flush()
    # Leave without the interpreter's teardown: the threads of the engines
    # (gloo, grpc, TensorFlow's beside torch) can abort it after the work.
    os._exit(0)


if __name__ == "__main__":
    main()
