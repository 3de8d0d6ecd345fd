"""`contrastive export --run DIR --format FORMAT --out PATH`: the encoder
for other runtimes."""

import click


@click.command("export")
@click.option("--run", "run_dir", required=True, type=click.Path(file_okay=False),
              help="A finished run directory (with encoder.keras).")
@click.option("--format", "format_", required=True, metavar="FORMAT",
              help="keras, savedmodel, onnx or torchvision.")
@click.option("--out", required=True, type=click.Path(),
              help="The file or directory to write; it must not exist.")
def command(run_dir, format_, out):
    """Write the encoder (float32 images in [0, 1] to h) of a run as a .keras
    file, a TensorFlow SavedModel, an ONNX file, or a torchvision ResNet
    state dict (resnet18 ... resnet152 at width x1; printed: how to load it).

    savedmodel and onnx are exported by Keras on the TensorFlow backend
    (tensorflow needed; onnx also tf2onnx and onnx), whatever the backend.
    """
    from contrastive.export import export_encoder

    exported = export_encoder(run_dir, format_, out)
    click.echo(f"wrote the {exported.format} export of {run_dir}'s encoder to {exported.path}")
    if exported.notes:
        click.echo("load it with:")
        for line in exported.notes:
            click.echo(f"    {line}")
