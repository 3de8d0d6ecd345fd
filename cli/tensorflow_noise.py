"""TensorFlow's start-up lines, kept off the command line's stderr.

Importing TensorFlow 2.21 writes absl's "All log messages before
absl::InitializeLog() is called are written to STDERR" and oneDNN's notice
to file descriptor 2, twice, whatever `TF_CPP_MIN_LOG_LEVEL` says; they
would surround the one line a bad input gets. `install()` makes the first
import of `tensorflow` run with descriptor 2 read through a pipe, which
passes every other line on as it comes (so that a crash during the import
still says why).
"""

import contextlib
import importlib.abc
import os
import re
import sys
import threading

NOISE = re.compile(
    rb"WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    rb"|I\d{4} [\d:.]+\s+\d+ (port|cpu_feature_guard)\.cc:\d+\] .*"
    rb"|To enable the following instructions: .* rebuild TensorFlow with the appropriate "
    rb"compiler flags\.")


class _QuietImport(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name != "tensorflow":
            return None
        # A lookup (`importlib.util.find_spec`) is not an import: this finder
        # stays until the module is executed.
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None:
                break
        else:
            return None
        if spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        execute = spec.loader.exec_module

        def exec_module(module):
            with contextlib.suppress(ValueError):
                sys.meta_path.remove(self)
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
    """Reads file descriptor 2 through a pipe in the block, passing on every
    line but those `NOISE` matches."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    try:
        saved = os.dup(2)
        read, write = os.pipe()
    except OSError:  # no descriptor 2: nothing to filter
        yield
        return

    def forward():
        with os.fdopen(read, "rb") as lines:
            for line in lines:
                if not NOISE.fullmatch(line.rstrip(b"\r\n")):
                    os.write(saved, line)

    reader = threading.Thread(target=forward, name="tensorflow-noise", daemon=True)
    reader.start()
    os.dup2(write, 2)
    os.close(write)
    try:
        yield
    finally:
        with contextlib.suppress(Exception):
            sys.stderr.flush()
        os.dup2(saved, 2)  # closes the pipe's last writer: the reader ends
        reader.join(timeout=10)
        os.close(saved)
