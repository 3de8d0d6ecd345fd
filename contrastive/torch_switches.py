"""The torch backend's environment variables, read without importing Keras,
so that the command line can check them before anything runs.

- `CONTRASTIVE_TORCH_FAST`: which of `contrastive.torch_speed`'s switches
  are on: `1` (the default) all but the opt-in ones, `all` all, `0` none,
  or a comma-separated list of names (`layout,kernels`).
- `CONTRASTIVE_TORCH_STEP`: how `contrastive.torch_step` runs a traced
  step: `auto` (the default: compiled on CUDA, the uncompiled graph on a
  CPU), `compile` or `graph` on every device.
"""

import functools
import os

from contrastive.errors import SpecError

FAST = "CONTRASTIVE_TORCH_FAST"
STEP = "CONTRASTIVE_TORCH_STEP"
SWITCHES = ("layout", "kernels", "batchnorm", "calls", "foreach", "seeds", "compile_augment")
# Off unless named (CONTRASTIVE_TORCH_FAST=...,compile_augment or torch_speed.override()).
OPT_IN = ("compile_augment",)
STEP_MODES = ("auto", "compile", "graph")


def fast_switches(environ=None):
    """The switches `CONTRASTIVE_TORCH_FAST` turns on, as a set of names.

    Raises:
        SpecError: an unknown name (exit status 2 from the command line).
    """
    environ = os.environ if environ is None else environ
    return _parse_fast(environ.get(FAST, "1"))


@functools.lru_cache(maxsize=8)
def _parse_fast(value):
    value = value.strip().lower()
    if value in ("", "1", "true", "on"):
        return frozenset(SWITCHES) - frozenset(OPT_IN)
    if value == "all":
        return frozenset(SWITCHES)
    if value in ("0", "false", "off", "none"):
        return frozenset()
    names = {name.strip() for name in value.split(",") if name.strip()}
    unknown = names - set(SWITCHES)
    if unknown:
        raise SpecError(
            f"expected 0, 1, all or a comma-separated list of {', '.join(SWITCHES)}, "
            f"received unknown switch(es) {', '.join(sorted(unknown))}", file=FAST)
    return frozenset(names)


def step_mode(environ=None):
    """`CONTRASTIVE_TORCH_STEP`: "auto" (the default), "compile" or "graph".

    Raises:
        SpecError: another value (exit status 2 from the command line).
    """
    environ = os.environ if environ is None else environ
    mode = environ.get(STEP, "auto").strip().lower()
    if mode not in STEP_MODES:
        raise SpecError(f"expected {', '.join(STEP_MODES[:-1])} or {STEP_MODES[-1]}, "
                        f"received {mode!r}", file=STEP)
    return mode


def check(environ=None):
    """Both variables hold a value this module accepts (whatever the backend,
    so that a typo is said at once and not when the backend changes).

    Raises:
        SpecError: naming the variable, what was expected and what was received.
    """
    fast_switches(environ)
    step_mode(environ)
