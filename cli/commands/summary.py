"""`contrastive summary SPEC`: the model's parts, parameter counts and shapes."""

import json

import click


@click.command("summary")
@click.argument("spec", type=click.Path(dir_okay=False))
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a spec value (repeatable), e.g. --set encoder.width_multiplier=2.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def command(spec, overrides, as_json):
    """Show the encoder and head a SPEC builds: parameters and output shapes.

    The parts are built on the symbolic input shape only (the weights are
    never allocated), so even a ResNet-50 (4x) is summarised at once. The
    image side comes from the data section's `size`, else from the dataset,
    else 32. Evaluation uses h, the encoder's output; the loss sees z.
    """
    from contrastive.errors import SpecError
    from contrastive.spec import load_spec

    loaded = load_spec(spec, overrides)
    try:
        result = summarize(loaded)
    except SpecError as exc:
        raise loaded.blame(exc) from None
    if as_json:
        click.echo(json.dumps(result, indent=2))
    else:
        click.echo(render(result))


def summarize(spec):
    """Returns the summary mapping of a loaded `Spec` (what `--json` prints)."""
    import keras

    from contrastive.encoders.counting import unallocated
    from contrastive.registry import build

    input_shape, source = image_shape(spec)
    precision = spec.train.precision
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(precision)
    try:
        with unallocated():
            encoder = build("encoders", spec["encoder"], "encoder")
            head = build("heads", spec.head, "head") if spec.head else None
            encoder.build(input_shape)
            h_shape = tuple(encoder.compute_output_shape(input_shape))
            h_dtype = _output_dtype(encoder, input_shape, encoder.compute_dtype)
            parts = {"encoder": _part(spec["encoder"]["name"], encoder, h_shape, h_dtype)}
            if head is not None:
                head.build(h_shape)
                z_shape = tuple(head.compute_output_shape(h_shape))
                z_dtype = _output_dtype(head, h_shape, head.compute_dtype, h_dtype)
                parts["head"] = _part(spec["head"]["name"], head, z_shape, z_dtype)
    finally:
        keras.config.set_dtype_policy(previous)
    total = {
        key: sum(part[key] for part in parts.values())
        for key in ("parameters", "trainable_parameters", "non_trainable_parameters")
    }
    return {
        "spec": spec.file,
        "backend": keras.backend.backend(),
        "precision": precision,
        "input_shape": list(input_shape),
        "input_shape_from": source,
        "method": spec.method["name"],
        **parts,
        "total": total,
        "representation": "h (the encoder's output) is used for evaluation",
    }


def image_shape(spec):
    """`((None, H, W, C), source)`: from `data.size`, the dataset, or 32x32x3."""
    data = spec["data"] or {}
    size = data.get("size")
    if isinstance(size, int) and not isinstance(size, bool):
        return (None, size, size, 3), "data.size"
    if isinstance(size, (list, tuple)) and len(size) == 2:
        return (None, int(size[0]), int(size[1]), 3), "data.size"
    try:
        from contrastive.registry import build

        images = build("datasets", data, "data").load("train").images
        if len(images.shape) == 4:
            return (None, *(int(d) for d in images.shape[1:])), "dataset"
    except Exception:  # noqa: BLE001 (any dataset failure: fall back to 32)
        pass
    return (None, 32, 32, 3), "default"


def _part(name, layer, shape, dtype):
    from contrastive.encoders.counting import parameter_counts

    counts = parameter_counts(layer)
    return {
        "name": name,
        "class": type(layer).__name__,
        "parameters": counts["total"],
        "trainable_parameters": counts["trainable"],
        "non_trainable_parameters": counts["non_trainable"],
        "output_shape": list(shape),
        "output_dtype": dtype,
    }


def _output_dtype(layer, input_shape, default, input_dtype="float32"):
    """The output dtype from the layer's own spec where it gives one."""
    import keras

    try:
        spec = layer.compute_output_spec(keras.KerasTensor(input_shape, dtype=input_dtype))
        return keras.backend.standardize_dtype(spec.dtype)
    except Exception:  # noqa: BLE001 (layers whose spec needs their weights)
        return default


def render(result):
    """The human-readable table of a summary mapping."""
    parts = [result[key] for key in ("encoder", "head") if result.get(key) is not None]
    width = max([12] + [len(part["name"]) for part in parts])
    lines = [
        f"spec: {result['spec']}",
        f"backend: {result['backend']}   precision: {result['precision']}",
        f"input: {_shape(result['input_shape'])} (from {result['input_shape_from']})",
        f"method: {result['method']} (the counts are the encoder's and the head's; a method "
        "may add networks of its own, such as a momentum copy)",
        "",
        f"{'part':<8} {'name':<{width}} {'parameters':>14} {'trainable':>14}  output",
    ]
    for key in ("encoder", "head"):
        part = result.get(key)
        if part is None:
            continue
        symbol = "h" if key == "encoder" else "z"
        lines.append(
            f"{key:<8} {part['name']:<{width}} {part['parameters']:>14,} "
            f"{part['trainable_parameters']:>14,}  {symbol} {_shape(part['output_shape'])} "
            f"{part['output_dtype']}"
        )
    total = result["total"]
    lines.append(
        f"{'total':<8} {'':<{width}} {total['parameters']:>14,} "
        f"{total['trainable_parameters']:>14,}"
    )
    lines.append("")
    lines.append("evaluation (kNN, linear probe) uses h; the loss uses z")
    return "\n".join(lines)


def _shape(shape):
    return "(" + ", ".join("N" if d is None else str(d) for d in shape) + ")"
