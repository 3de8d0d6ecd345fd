"""`contrastive neighbors --run DIR --out grid.png`: held-out images beside
their nearest training images in h."""

import click

from contrastive_cli.options import (
    check_new_png,
    data_option,
    progress_option,
    run_option,
    verbosity,
)


@click.command("neighbors")
@run_option
@click.option("--out", required=True, type=click.Path(dir_okay=False),
              help="The PNG file to write; it must not exist.")
@click.option("--n", "n", default=8, show_default=True, type=click.IntRange(1, 64),
              help="Held-out images (rows).")
@click.option("--k", "k", default=5, show_default=True, type=click.IntRange(1, 32),
              help="Nearest training images per row.")
@click.option("--sample", type=click.Choice(["first", "random"]), default="first",
              show_default=True, help="The first N held-out images, or a random sample.")
@click.option("--seed", default=0, show_default=True, type=int, help="The random sample's seed.")
@data_option
@progress_option
def command(run_dir, out, n, k, sample, seed, data, progress):
    """Draw N held-out images beside their K nearest training images in h
    (cosine similarity), with the similarity and, where known, the class
    above each image."""
    from contrastive.pictures import write_neighbors
    from contrastive.run import Run
    from contrastive_cli.commands.eval import _mapping

    check_new_png(out)
    found = write_neighbors(Run(run_dir), out, n=n, k=k, sample=sample, seed=seed,
                            data=_mapping(data), verbose=verbosity(progress))
    rows, columns = found["neighbors"].shape
    click.echo(f"wrote {out}: {rows} held-out images beside their {columns} nearest "
               f"training images in h")
