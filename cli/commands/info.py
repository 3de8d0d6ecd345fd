"""`contrastive info`: backend, devices, versions and plugins."""

import importlib.metadata
import json
import platform

import click

from contrastive_cli.options import json_option

PACKAGES = ("contrastive", "keras", "numpy", "jax", "jaxlib", "torch", "tensorflow", "tensorflow-cpu")


@click.command("info")
@json_option
def command(as_json):
    """Print the Keras backend, its devices, package versions and plugins."""
    import keras

    from contrastive import plugins

    info = {
        "backend": keras.backend.backend(),
        "devices": _devices(keras.backend.backend()),
        "python": platform.python_version(),
        "packages": {name: _version(name) for name in PACKAGES if _version(name)},
        "plugins": plugins.distributions(),
        "plugins_disabled": plugins.plugins_disabled(),
    }
    if as_json:
        click.echo(json.dumps(info, indent=2))
        return
    click.echo(f"backend: {info['backend']}")
    click.echo(f"devices: {', '.join(info['devices'])}")
    click.echo(f"python: {info['python']}")
    for name, version in info["packages"].items():
        click.echo(f"{name}: {version}")
    if info["plugins_disabled"]:
        click.echo("plugins: disabled (CONTRASTIVE_DISABLE_PLUGINS)")
    else:
        listed = ", ".join(f"{n} {v}" for n, v in info["plugins"].items()) or "none"
        click.echo(f"plugins: {listed}")


def _version(name):
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def _devices(backend):
    if backend == "jax":
        import jax

        return [f"{d.platform}:{d.id}" for d in jax.devices()]
    if backend == "torch":
        import torch

        devices = ["cpu"]
        if torch.cuda.is_available():
            devices += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
        return devices
    import tensorflow as tf

    return [d.name.replace("/physical_device:", "") for d in tf.config.list_physical_devices()]
