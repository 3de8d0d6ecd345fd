"""TensorFlow's start-up lines, kept off the command line's stderr.

Importing TensorFlow 2.21 writes absl's "All log messages before
absl::InitializeLog() is called are written to STDERR" and oneDNN's notice
to file descriptor 2, twice, whatever `TF_CPP_MIN_LOG_LEVEL` says; they
would surround the one line a bad input gets. `install()` makes the first
import of `tensorflow` run with descriptor 2 captured, and writes back
every captured line but those.
"""

import contextlib
import importlib.abc
import importlib.util
import os
import re
import sys
import tempfile

NOISE = re.compile(
    r"WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    r"|I\d{4} [\d:.]+\s+\d+ (port|cpu_feature_guard)\.cc:\d+\] .*"
    r"|To enable the following instructions: .* rebuild TensorFlow with the appropriate "
    r"compiler flags\.")


class _QuietImport(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name != "tensorflow":
            return None
        sys.meta_path.remove(self)  # the first import only
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        execute = spec.loader.exec_module

        def exec_module(module):
            with filtered_stderr():
                execute(module)

        spec.loader.exec_module = exec_module
        return spec


def install():
    """Filters the first import of TensorFlow in this process (a no-op when
    it is imported already or the filter is installed)."""
    if "tensorflow" in sys.modules or any(isinstance(f, _QuietImport) for f in sys.meta_path):
        return
    sys.meta_path.insert(0, _QuietImport())


@contextlib.contextmanager
def filtered_stderr():
    """Captures file descriptor 2 in the block; then writes back what was
    captured but the lines `NOISE` matches."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no descriptor 2: nothing to filter
        yield
        return
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            with contextlib.suppress(Exception):
                sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            lines = captured.read().decode(errors="replace").splitlines(keepends=True)
            kept = "".join(line for line in lines if not NOISE.fullmatch(line.rstrip("\r\n")))
            if kept:
                sys.stderr.write(kept)
                sys.stderr.flush()
