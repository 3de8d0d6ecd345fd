"""Errors that reach the user as one line."""


class ContrastiveError(Exception):
    """Base class of the errors contrastive reports without a traceback.

    Attributes:
        exit_code: the command's exit status: 2, bad input, unless a subclass
            says otherwise.
    """

    exit_code = 2


class SpecError(ContrastiveError, ValueError):
    """A spec file, or a value in it, is not what was expected.

    Renders as `FILE: KEY.PATH: problem`, e.g.
    `spec.yaml: optimizer.learning_rate: expected a number, received "fast"`.

    Args:
        message: what was expected and what was received.
        path: the dotted key path inside the spec, or `""` for the file itself.
        file: the spec file's name, filled in by the loader when known.
    """

    def __init__(self, message, path="", file=None):
        super().__init__(message)
        self.message = message
        self.path = path
        self.file = file

    def with_file(self, file):
        if self.file is None:
            self.file = str(file)
        return self

    def under(self, prefix):
        """Returns the same error with `prefix` put in front of its path."""
        if prefix:
            self.path = f"{prefix}.{self.path}" if self.path else prefix
        return self

    def __str__(self):
        parts = [p for p in (self.file, self.path) if p]
        return ": ".join(parts + [self.message])


class ComponentError(ContrastiveError, LookupError):
    """A component cannot be found or loaded (unknown name, broken plugin)."""


class RegistryError(ContrastiveError):
    """A component was registered twice without `override=True`."""


class DataError(ContrastiveError):
    """Data cannot be read: a missing file, a corrupt image, a wrong shape."""


class ProcessLost(ContrastiveError):
    """A process of a multi-process run stopped (killed, crashed, or its
    machine out of reach), so the others cannot go on. The message names
    it, the last checkpoint and how to continue."""

    exit_code = 1
