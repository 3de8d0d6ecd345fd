"""The kinds of component: one record each, the only table of them.

The registry, the spec, `new-plugin` and `contrastive.testing` all read
these records; adding a kind means adding a record here (and its package
`contrastive.<name>`, its templates and its contract check).
"""

import dataclasses
import difflib

from contrastive.errors import ComponentError


@dataclasses.dataclass(frozen=True)
class Kind:
    """A kind of component.

    Attributes:
        name: the registry kind, the built-in package `contrastive.<name>`
            and the entry-point group `contrastive.<name>`.
        singular: one component of the kind, for messages and file names.
        section: the spec section that names a component of the kind.
        context: arguments contrastive supplies at build time, which a spec
            may not set.
        contract: what a component of the kind must do (checked by
            `contrastive.testing.check_component`).
    """

    name: str
    singular: str
    section: str
    context: tuple = ()
    contract: str = ""


ALL = (
    Kind(
        "datasets", "dataset", "data",
        contract="a `contrastive.datasets.Dataset`: `splits`, and `load(split)` "
                 "returning `Arrays` of uint8 (N, H, W, 3) images and int labels (or None)",
    ),
    Kind(
        "augmenters", "augmenter", "augment", context=("seed",),
        contract="a Keras layer mapping float32 images in [0, 1], (N, H, W, 3), to one "
                 "random view of the same shape and range in training, seeded by `seed`",
    ),
    Kind(
        "encoders", "encoder", "encoder",
        contract="a Keras layer mapping float32 images (N, H, W, 3) to the "
                 "representation h, (N, D)",
    ),
    Kind(
        "heads", "head", "head",
        contract="a Keras layer mapping h, (N, D), to the projection z, (N, d)",
    ),
    Kind(
        "losses", "loss", "loss",
        contract="a Keras loss called as `loss(z_a, z_b)` on the two views' projections, "
                 "(N, d) each, returning a finite float32 scalar with finite gradients",
    ),
    Kind(
        "methods", "method", "method",
        context=("encoder", "head", "augmenter", "loss", "num_classes", "input_layer",
                 "steps_per_epoch", "total_steps"),
        contract="a `contrastive.methods.Method` (a Keras model): `call(x, training)` "
                 "returns a dict with h, `objective(outputs)` a finite float32 scalar "
                 "with finite gradients; it trains with `fit` and reloads from its config",
    ),
    Kind(
        "optimizers", "optimizer", "optimizer",
        contract="a `keras.optimizers.Optimizer` whose `learning_rate` may be a schedule",
    ),
    Kind(
        "schedules", "schedule", "schedule",
        context=("base_learning_rate", "steps_per_epoch", "total_steps", "batch_size"),
        contract="a `keras.optimizers.schedules.LearningRateSchedule` mapping the step "
                 "to a finite, non-negative learning rate",
    ),
)
NAMES = tuple(kind.name for kind in ALL)
_BY_NAME = {kind.name: kind for kind in ALL}
_BY_SECTION = {kind.section: kind for kind in ALL}


def get(name):
    """The `Kind` called `name`.

    Raises:
        ComponentError: there is no such kind ("did you mean" included).
    """
    try:
        return _BY_NAME[name]
    except (KeyError, TypeError):
        close = difflib.get_close_matches(str(name), NAMES, n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        raise ComponentError(
            f"expected a kind of component ({', '.join(NAMES)}), received '{name}'{hint}"
        ) from None


def of_section(section):
    """The `Kind` whose components the spec section `section` names, or None."""
    return _BY_SECTION.get(section)


def sections():
    """The component sections of a spec, in the spec's order."""
    return tuple(kind.section for kind in ALL)
