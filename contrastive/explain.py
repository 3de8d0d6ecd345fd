"""`contrastive explain`: the resolved schedule, departures from the paper
and the evaluation protocol of h.

`explain(spec)` returns an `Explanation` (structured, JSON-ready with
`as_dict`); `render(explanation)` turns it into text. The paper's defaults
live in one table, `PAPER_DEFAULTS`, keyed by preset.
"""

import dataclasses

from contrastive.errors import ContrastiveError, SpecError
from contrastive.registry import build

# The paper's settings per preset: spec key path -> (value, source). The
# learning rate is checked as a (base rate, scaling) rule, see `LR_RULES`.
PAPER_DEFAULTS = {
    "imagenet": {
        "optimizer.name": ("lars", "Sec. 3, Appendix B.1"),
        "optimizer.momentum": (0.9, "Appendix B.1"),
        "optimizer.weight_decay": (1e-6, "Appendix B.1"),
        "optimizer.eta": (0.001, "official code"),
        "schedule.name": ("warmup_cosine", "Appendix B.1"),
        "schedule.warmup": (10.0, "Appendix B.1: 10 warmup epochs"),
        "schedule.warmup_unit": ("epochs", "Appendix B.1"),
        "schedule.final_fraction": (0.0, "cosine decay to 0"),
        "method.name": ("simclr", "the paper's method"),
        "loss.name": ("nt_xent", "Sec. 2.1"),
        "loss.temperature": (0.1, "Table 5"),
        "loss.negatives": ("all", "Sec. 2.1: 2(N-1) negatives"),
        "train.batch_size": (4096, "Sec. 3"),
    },
    "cifar10": {
        "optimizer.name": ("lars", "Appendix B.9"),
        "optimizer.momentum": (0.9, "Appendix B.9"),
        "optimizer.weight_decay": (1e-4, "official CIFAR-10 recipe"),
        "optimizer.eta": (0.001, "official code"),
        "schedule.name": ("warmup_cosine", "Appendix B.9"),
        "schedule.warmup": (10.0, "Appendix B.9: 10 warmup epochs"),
        "schedule.warmup_unit": ("epochs", "Appendix B.9"),
        "schedule.final_fraction": (0.0, "cosine decay to 0"),
        "method.name": ("simclr", "the paper's method"),
        "loss.name": ("nt_xent", "Sec. 2.1"),
        "loss.temperature": (0.5, "Appendix B.9"),
        "loss.negatives": ("all", "Sec. 2.1: 2(N-1) negatives"),
        "train.batch_size": (512, "official CIFAR-10 recipe"),
    },
}
# Accepted (base learning rate, scaling) pairs per preset.
LR_RULES = {
    "imagenet": ((0.3, "linear"), (0.075, "sqrt")),
    "cifar10": ((1.0, "linear"),),
}
LR_SOURCE = {
    "imagenet": "Appendix B.1: 0.3 x B/256 or 0.075 x sqrt(B)",
    "cifar10": "official CIFAR-10 recipe: 1.0 x B/256",
}


@dataclasses.dataclass
class Departure:
    key: str
    value: object
    paper: object
    source: str


@dataclasses.dataclass
class Explanation:
    """What `explain` resolved.

    Attributes:
        preset: the paper preset compared against (`imagenet`, `cifar10`).
        schedule: the resolved schedule (`peak_learning_rate`,
            `warmup_steps`, `total_steps`, `steps_per_epoch`, ...).
        departures: every setting that differs from the paper's default.
        evaluation: how h will be evaluated after pretraining (see
            `evaluation_protocol`).
    """

    preset: str
    schedule: dict
    departures: list
    evaluation: dict = dataclasses.field(default_factory=dict)

    def as_dict(self):
        return {
            "preset": self.preset,
            "schedule": self.schedule,
            "departures": [dataclasses.asdict(d) for d in self.departures],
            "evaluation": self.evaluation,
        }


def choose_preset(data):
    """The preset of the spec's `simclr` augmenter, else `imagenet`."""
    augment = data.get("augment") or {}
    preset = augment.get("preset")
    return preset if preset in PAPER_DEFAULTS else "imagenet"


def steps_per_epoch(spec):
    """`train.steps_per_epoch`, or the training images // batch size."""
    train = spec.train
    if train.steps_per_epoch:
        return int(train.steps_per_epoch)
    try:
        count = len(build("datasets", spec.data, "data").load("train"))
    except ContrastiveError as exc:
        raise SpecError(
            f"cannot count the training images ({exc}); set train.steps_per_epoch",
            "train.steps_per_epoch",
        ) from None
    steps = count // train.batch_size
    if steps < 1:
        raise SpecError(
            f"expected at most the {count} training images, received {train.batch_size}",
            "train.batch_size",
        )
    return steps


def resolve_schedule(spec, steps=None):
    """The schedule the trainer will build (`contrastive.training.build`),
    described as a dict."""
    from contrastive.training.build import build_schedule, schedule_context

    steps = steps_per_epoch(spec) if steps is None else steps
    context = schedule_context(spec, steps)
    schedule = build_schedule(spec, steps)
    if schedule is None:
        return {
            "name": None,
            "base_learning_rate": context["base_learning_rate"],
            "scaling": "none",
            "batch_size": context["batch_size"],
            "peak_learning_rate": context["base_learning_rate"],
            "warmup_steps": 0,
            "total_steps": context["total_steps"],
            "steps_per_epoch": steps,
        }
    result = dict(schedule.describe()) if hasattr(schedule, "describe") else {
        "name": spec.schedule["name"]}
    result.setdefault("peak_learning_rate",
                      getattr(schedule, "peak_learning_rate", context["base_learning_rate"]))
    result.setdefault("total_steps", context["total_steps"])
    result.setdefault("steps_per_epoch", steps)
    return result


def _lookup(data, key):
    node = data
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return _MISSING
        node = node[part]
    return node


_MISSING = object()


def _same(a, b):
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return abs(float(a) - float(b)) <= 1e-12 * max(1.0, abs(float(b)))
    return a == b


def departures(data, preset):
    """Every setting of the resolved spec `data` that differs from the
    paper's default for `preset` (settings of components other than the
    paper's, e.g. `loss.temperature` of another loss, are compared only
    when the component has them)."""
    table = PAPER_DEFAULTS[preset]
    found = []
    for key, (paper, source) in table.items():
        section = key.split(".")[0]
        if data.get(section) is None and section == "schedule":
            if key == "schedule.name":
                found.append(Departure(key, None, paper, source))
            continue
        value = _lookup(data, key)
        if value is _MISSING:
            continue
        if not _same(value, paper):
            found.append(Departure(key, value, paper, source))
    base = data["optimizer"].get("learning_rate")
    scaling = (data.get("schedule") or {}).get("scaling", "none")
    rules = LR_RULES[preset]
    if not any(_same(base, b) and scaling == s for b, s in rules):
        paper = " or ".join(f"{b:g} with {s} scaling" for b, s in rules)
        found.append(
            Departure(
                "optimizer.learning_rate",
                f"{base:g} with {scaling} scaling",
                paper,
                LR_SOURCE[preset],
            )
        )
    return found


def evaluation_protocol(spec):
    """How h of a run of `spec` is evaluated after pretraining: the held-out
    data, the kNN monitor, and each protocol's settings (from the modules
    that run them), with `enabled`."""
    from contrastive.evaluation import knn, linear

    settings = spec.eval
    held_out = (f"eval.data ({settings.data['name']})" if settings.data is not None
                else "the test split of data")
    return {
        "held_out": held_out,
        "monitor_every": settings.monitor_every,
        "knn": {"enabled": settings.knn.enabled,
                **knn.describe(settings.knn.k, settings.knn.temperature)},
        "linear": {"enabled": settings.linear.enabled,
                   **linear.describe(settings.linear.epochs, settings.linear.learning_rate,
                                     settings.linear.batch_size, settings.linear.augment)},
    }


def explain(spec):
    """Resolves the schedule of `spec` (a `Spec`, or anything `load_spec`
    takes), lists its departures from the paper and describes how h will be
    evaluated.

    Raises:
        SpecError: the steps per epoch cannot be computed, or a component
            rejects its arguments.
    """
    from contrastive.spec import load_spec

    spec = load_spec(spec)
    data = spec.as_dict()
    preset = choose_preset(data)
    return Explanation(preset, resolve_schedule(spec), departures(data, preset),
                       evaluation_protocol(spec))


def _fmt(value):
    if value is None:
        return "none"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def render(explanation):
    """The explanation as text."""
    s = explanation.schedule
    lines = ["schedule:"]
    name = s.get("name") or "none (the optimizer's rate, constant)"
    lines.append(f"  name: {name}")
    base = s.get("base_learning_rate")
    scaling = s.get("scaling", "none")
    batch = s.get("batch_size")
    peak = s.get("peak_learning_rate")
    if scaling == "linear":
        how = f" = {_fmt(base)} x {batch}/256"
    elif scaling == "sqrt":
        how = f" = {_fmt(base)} x sqrt({batch})"
    else:
        how = ""
    lines.append(f"  peak learning rate: {_fmt(peak)}{how} (scaling: {scaling})")
    if "warmup_steps" in s:
        extra = f" ({s['warmup']})" if s.get("warmup") else ""
        lines.append(f"  warmup steps: {s['warmup_steps']}{extra}")
    lines.append(f"  total steps: {s.get('total_steps')} ({s.get('steps_per_epoch')} per epoch)")
    if "final_learning_rate" in s:
        lines.append(f"  final learning rate: {_fmt(s['final_learning_rate'])}")
    deps = explanation.departures
    lines.append(f"departures from the paper ({explanation.preset} preset): {len(deps) or 'none'}")
    for d in deps:
        lines.append(f"  {d.key}: {_fmt(d.value)} (paper: {_fmt(d.paper)}; {d.source})")
    if explanation.evaluation:
        lines.extend(render_evaluation(explanation.evaluation))
    return "\n".join(lines)


def render_evaluation(protocol):
    """The lines of `evaluation_protocol`'s description."""
    knn, linear = protocol["knn"], protocol["linear"]
    every = protocol["monitor_every"]
    lines = [f"evaluation of h on {protocol['held_out']}:"]
    if knn["enabled"]:
        lines += [f"  knn: k {knn['k']}, temperature {_fmt(knn['temperature'])}",
                  f"    bank: {knn['bank']}; similarity: {knn['similarity']}",
                  f"    vote: {knn['vote']}; reports {' and '.join(knn['reported'])}"]
    else:
        lines.append("  knn: off (eval.knn.enabled: false)")
    if linear["enabled"]:
        lines += [f"  linear: {linear['epochs']} epochs, learning rate "
                  f"{_fmt(linear['learning_rate'])}, batch size {linear['batch_size']}, "
                  f"optimizer {linear['optimizer']}",
                  f"    features: {linear['features']}",
                  f"    classifier: {linear['classifier']}; reports "
                  f"{' and '.join(linear['reported'])}"]
    else:
        lines.append("  linear: off (eval.linear.enabled: false)")
    lines.append(f"  knn monitor: every {every} epochs" if every else "  knn monitor: off")
    return lines
