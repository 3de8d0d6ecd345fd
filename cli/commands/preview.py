"""`contrastive preview SPEC --out views.png`: originals beside two views."""

import click

from contrastive_cli.options import check_split


@click.command("preview")
@click.argument("spec", type=click.Path(dir_okay=False))
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False),
              help="PNG file to write.")
@click.option("--n", "n", default=16, show_default=True, type=click.IntRange(1, 256),
              help="Images (rows) to show.")
@click.option("--split", default="train", show_default=True, help="Dataset split to read.")
@click.option("--set", "overrides", multiple=True, metavar="KEY.PATH=VALUE",
              help="Override a spec value (repeatable).")
def command(spec, out, n, split, overrides):
    """Writes a grid: each row an original image and its two augmented views.

    The views come from the spec's `augment` section, seeded with the spec's
    `seed`, applied to the first N images of the spec's `data`.
    """
    # Keras is imported here, after `--backend` has set KERAS_BACKEND.
    import numpy as np
    from keras import ops
    from PIL import Image

    from contrastive import registry
    from contrastive.errors import DataError, SpecError
    from contrastive.files import written_atomically
    from contrastive.preflight import check_new_file
    from contrastive.spec import load_spec

    check_new_file(out, "--out", {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff"})
    resolved = load_spec(spec, overrides)
    try:
        dataset = registry.build("datasets", resolved["data"], "data")
        check_split(dataset, split)
        try:
            arrays = dataset.load(split)
        except DataError as exc:
            raise SpecError(str(exc), "data") from None
        if resolved["augment"] is None:
            raise SpecError("expected an augmenter to preview, received null", "augment")
        augmenter = registry.build(
            "augmenters", resolved["augment"], "augment", context={"seed": resolved["seed"]}
        )
    except SpecError as exc:
        raise resolved.blame(exc) from None
    images = np.asarray(arrays.images[:n])
    # Aspect-kept images: crops in each image's own region of the canvas,
    # shown beside its centred view.
    sized = {} if arrays.sizes is None else {"sizes": arrays.sizes[:n]}
    first = ops.convert_to_numpy(augmenter(images, training=True, **sized))
    second = ops.convert_to_numpy(augmenter(images, training=True, **sized))
    if sized:
        images = arrays.take(np.arange(len(images))).views()
    grid = views_grid(images, first, second)
    with written_atomically(out, replace=False) as tmp:
        Image.fromarray(grid).save(tmp)
    click.echo(f"wrote {out}: {len(images)} images x (original, view 1, view 2), "
               f"augment {resolved['augment']['name']}, seed {resolved['seed']}")


def views_grid(originals, first, second, gap=2, min_cell=64):
    """Returns a uint8 RGB grid: one row per image, columns original, view 1,
    view 2; cells upscaled (nearest) to at least `min_cell` pixels."""
    import numpy as np
    from PIL import Image

    h, w = first.shape[1:3]
    scale = max(1, -(-min_cell // max(h, w)))
    cell_h, cell_w = h * scale, w * scale

    def cell(image):
        image = np.asarray(image)
        if image.dtype != np.uint8:
            image = (np.clip(image, 0, 1) * 255).round().astype(np.uint8)
        if image.shape[-1] == 1:
            image = np.repeat(image, 3, axis=-1)
        return np.asarray(Image.fromarray(image).resize((cell_w, cell_h), Image.Resampling.NEAREST))

    rows = len(originals)
    grid = np.full((rows * (cell_h + gap) + gap, 3 * (cell_w + gap) + gap, 3), 255, np.uint8)
    for r in range(rows):
        for c, image in enumerate((originals[r], first[r], second[r])):
            y, x = gap + r * (cell_h + gap), gap + c * (cell_w + gap)
            grid[y:y + cell_h, x:x + cell_w] = cell(image)
    return grid
