"""`contrastive map --run DIR --out map.png`: the held-out representations
in 2-D, coloured by class."""

import click

from contrastive_cli.options import (
    check_new_png,
    data_option,
    progress_option,
    run_option,
    verbosity,
)


@click.command("map")
@run_option
@click.option("--out", required=True, type=click.Path(dir_okay=False),
              help="The PNG file to write; it must not exist.")
@click.option("--method", type=click.Choice(["tsne", "umap"]), default="tsne", show_default=True,
              help="scikit-learn's t-SNE, or UMAP (needs `pip install umap-learn`).")
@click.option("--n", "n", default=5000, show_default=True, type=click.IntRange(min=3),
              help="At most N held-out images: a random sample when there are more.")
@click.option("--seed", default=0, show_default=True, type=int,
              help="Seed of the sample and of the method.")
@data_option
@progress_option
def command(run_dir, out, method, n, seed, data, progress):
    """Draw a 2-D map (t-SNE or UMAP) of h of the held-out images, one colour
    per class."""
    from contrastive.pictures import write_map
    from contrastive.run import Run
    from contrastive_cli.commands.eval import _mapping

    check_new_png(out)
    drawn = write_map(Run(run_dir), out, method=method, n=n, seed=seed, data=_mapping(data),
                      verbose=verbosity(progress))
    click.echo(f"wrote {out}: {method} map of {len(drawn['points'])} held-out images")
