"""Shell completion of component kinds and names (click's `shell_complete=`
callbacks); the shells' set-up is in the README."""

import contextlib
import os

from click.shell_completion import CompletionItem


def complete_kind(ctx, param, incomplete):
    """The kinds of component (`contrastive.kinds.NAMES`) that start with
    `incomplete`, each with its spec section as help."""
    del ctx, param
    from contrastive import kinds

    return [CompletionItem(kind.name, help=f"spec section {kind.section}")
            for kind in kinds.ALL if kind.name.startswith(incomplete)]


def complete_name(ctx, param, incomplete):
    """The registered names (built-ins and plugins) of the kind given before
    on the command line that start with `incomplete`, each with its origin;
    none when that kind is missing or unknown."""
    del param
    from contrastive.errors import ContrastiveError
    from contrastive.registry import get_registry

    try:
        registry = get_registry(ctx.params.get("kind"))
    except ContrastiveError:
        return []
    with _silent_stderr():
        entries = registry.entries()
    return [CompletionItem(entry.name, help=entry.origin)
            for entry in entries
            if entry.name.startswith(incomplete) and not entry.shadowed_by_builtin]


@contextlib.contextmanager
def _silent_stderr():
    """Sends file descriptor 2 to /dev/null: the built-ins import Keras and
    its backend, whose C++ start-up lines would land in the user's prompt."""
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
