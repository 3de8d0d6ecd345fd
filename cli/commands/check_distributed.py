"""`contrastive check-distributed`: N devices, or P processes of D devices,
against one device, one step."""

import json
import os
import subprocess
import sys

import click

from contrastive_cli.options import json_option

REEXEC = "CONTRASTIVE_CHECK_DISTRIBUTED_CHILD"


@click.command("check-distributed")
@click.option("--devices", type=click.IntRange(min=1), default=None,
              help="Replicas to compare with one device (default: the accelerators, else 2; "
                   "jax 4 on a CPU); with --processes, devices per process (default on a "
                   "CPU: jax 2, tensorflow 1, torch 1).")
@click.option("--processes", type=click.IntRange(min=2), default=None,
              help="Local processes, each started the way the backend's engine documents "
                   "(jax: keras.distribution.initialize; tensorflow: TF_CONFIG; torch: "
                   "one torchrun --nnodes P with c10d rendezvous per simulated node).")
@click.option("--method", default="simclr", show_default=True,
              help="The training method to check (any registered method).")
@click.option("--no-sync-batchnorm", "no_sync", is_flag=True,
              help="Per-device batch norm: shows the check failing.")
@click.option("--no-gather-negatives", "no_gather", is_flag=True,
              help="Local negatives only: shows the check failing.")
@json_option
@click.pass_context
def command(ctx, devices, processes, method, no_sync, no_gather, as_json):
    """One training step of a small SimCLR on N devices (or P processes of
    D devices) against the same global batch on one device: prints both
    losses, the largest relative gradient and batch-norm statistic
    differences; exits 0 when they agree within tolerance, 1 when they do
    not."""
    from contrastive.distribute.base import configured_backend

    backend = configured_backend()
    if processes:
        from contrastive.distribute.check.processes import run_process_check

        try:
            report = run_process_check(processes, devices, sync_batchnorm=not no_sync,
                                       gather_negatives=not no_gather, backend=backend,
                                       method=method)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--devices") from exc
        replicas = f"{processes} processes x {report['devices']} devices"
    else:
        if devices is None:
            devices = 4 if backend == "jax" else 2
        if devices < 2:
            raise click.BadParameter(f"expected at least 2 devices without --processes, "
                                     f"received {devices}", param_hint="--devices")
        if not _devices_ready(backend, devices):
            ctx.exit(_reexec(backend, devices))
        from contrastive.distribute.check import GLOBAL_BATCH, run_check

        batch = GLOBAL_BATCH if GLOBAL_BATCH % devices == 0 else 2 * devices
        report = run_check(devices, sync_batchnorm=not no_sync,
                           gather_negatives=not no_gather, batch=batch, method=method)
        replicas = f"{devices} devices"
    if as_json:
        click.echo(json.dumps(report, indent=2))
    else:
        click.echo(f"method {method}, backend {report['backend']}, {replicas}, "
                   f"global batch {report['batch']}, "
                   f"sync_batchnorm={report['sync_batchnorm']}, "
                   f"gather_negatives={report['gather_negatives']}")
        click.echo(f"loss, one device:   {report['loss_single']:.8f}")
        click.echo(f"loss, {replicas}:    {report['loss_distributed']:.8f}")
        click.echo(f"loss difference (relative):           {report['loss_difference']:.3g}")
        click.echo(f"largest gradient difference (relative): {report['max_grad_difference']:.3g}")
        click.echo(f"largest batch-norm statistic difference: "
                   f"{report['max_batchnorm_difference']:.3g}")
        verdict = "agree" if report["passed"] else "DIFFER"
        click.echo(f"{verdict} within tolerance {report['tolerance']:g}")
    ctx.exit(0 if report["passed"] else 1)


def _devices_ready(backend, devices):
    """Prepares `devices` simulated devices in this process when the
    backend has not initialised its devices yet; False when a fresh
    process is needed."""
    if os.environ.get(REEXEC):
        return True
    if backend == "jax":
        flag = f"--xla_force_host_platform_device_count={devices}"
        if "jax" not in sys.modules:
            os.environ["XLA_FLAGS"] = _with_flag(os.environ.get("XLA_FLAGS", ""), flag)
        import jax

        try:
            return len(jax.devices()) >= devices
        except RuntimeError:
            return False
    if backend == "tensorflow":
        from contrastive.distribute.tensorflow_backend import configure_logical_cpus

        import tensorflow as tf

        return bool(tf.config.list_physical_devices("GPU")) or configure_logical_cpus(devices)
    return True  # torch starts its own processes


def _with_flag(flags, flag):
    kept = [f for f in flags.split() if not f.startswith("--xla_force_host_platform_device_count")]
    return " ".join(kept + [flag])


def _reexec(backend, devices):
    env = dict(os.environ, KERAS_BACKEND=backend)
    env[REEXEC] = "1"
    if backend == "jax":
        env["XLA_FLAGS"] = _with_flag(
            env.get("XLA_FLAGS", ""), f"--xla_force_host_platform_device_count={devices}"
        )
    argv = [a for a in sys.argv[1:] if a != "--backend" and a not in ("jax", "torch", "tensorflow")]
    args = ["check-distributed"] + argv[argv.index("check-distributed") + 1:] \
        if "check-distributed" in argv else ["check-distributed", "--devices", str(devices)]
    return subprocess.call([sys.executable, "-m", "contrastive_cli.main", *args], env=env)
