"""Files written whole or not at all, and child processes that die with
their parent.

Every file a command or a run writes goes through `written_atomically`: a
temporary name beside the target, then a rename, so a process killed at
any moment leaves either the finished file or none where it belongs (and a
hidden `.tmp-PID.HOST-*` that nothing reads, removed the next time that
file is written on the same machine (POSIX), once its process is gone).
"""

import contextlib
import ctypes
import glob
import os
import pathlib
import shutil
import signal
import socket
import zlib

from contrastive.errors import SpecError

TEMPORARY = ".tmp-"


@contextlib.contextmanager
def written_atomically(path, replace=True):
    """Yields a temporary path beside `path` (same folder and suffix) for
    the block to write, a file or a directory, and renames it to `path`
    when the block ends (a block that wrote nothing changes nothing);
    removes it when the block raises.

    Args:
        path: the file or directory to write.
        replace: whether a `path` that exists is replaced. When False (a new
            output a command checked was absent), one that appeared since is
            left as it is, and `SpecError` says so.

    Example:

    ```python
    with written_atomically("features.npy") as tmp:
        np.save(tmp, features)
    ```
    """
    path = pathlib.Path(path)
    _remove_abandoned(path)
    tmp = path.with_name(f"{TEMPORARY}{_writer()}-{path.name}")
    try:
        yield tmp
    except BaseException:
        remove(tmp)
        raise
    if not os.path.lexists(tmp):
        return
    if replace:
        os.replace(tmp, path)
        return
    try:
        _place_new(tmp, path)
    except OSError as exc:
        remove(tmp)
        if os.path.lexists(path):
            raise SpecError("expected a new file, received one that appeared while this command "
                            "ran: it was left as it is, and nothing was written",
                            file=str(path)) from None
        raise exc


def _place_new(tmp, path):
    """Renames `tmp` to `path` unless `path` exists (then OSError): a file
    by a hard link, which never replaces one; a directory by a rename,
    which replaces an empty directory only."""
    if os.path.isdir(tmp) and not os.path.islink(tmp):
        os.rename(tmp, path)
        return
    try:
        os.link(tmp, path, follow_symlinks=False)
    except FileExistsError:
        raise
    except OSError:  # a file system without hard links
        if os.path.lexists(path):
            raise FileExistsError(path) from None
        os.replace(tmp, path)
        return
    os.unlink(tmp)


def _writer():
    """`PID.HOST` of this process: the host (a hash of its name) tells
    whether the process can be looked up here (shared file systems)."""
    return f"{os.getpid()}.{zlib.crc32(socket.gethostname().encode()):08x}"


def _remove_abandoned(path):
    """Removes the temporary files of `path` that processes of this machine
    no longer running left (killed while they wrote it)."""
    _remove_dead(path.parent, TEMPORARY, glob.escape(path.name))


def scratch_folder(prefix):
    """A `tempfile.TemporaryDirectory` named `PREFIX PID.HOST-*`, made after
    removing the ones processes of this machine no longer running left: a
    killed process leaves its folder behind (a follower's checkpoints)."""
    import tempfile

    _remove_dead(pathlib.Path(tempfile.gettempdir()), prefix, "*")
    return tempfile.TemporaryDirectory(prefix=f"{prefix}{_writer()}-")


def _remove_dead(folder, prefix, rest):
    """Removes what `folder` holds named `PREFIX PID.HOST-REST` (`rest` a
    glob pattern) of a process of this machine that is no longer running."""
    if os.name != "posix":  # elsewhere `os.kill(pid, 0)` would end the process
        return
    host = _writer().split(".")[1]
    for leftover in folder.glob(f"{glob.escape(prefix)}*.{host}-{rest}"):
        pid = leftover.name[len(prefix):].split(".", 1)[0]
        if pid.isdigit() and not _running(int(pid)):
            with contextlib.suppress(OSError):  # another user's, say
                remove(leftover)


def _running(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True  # another user's, or not a process id: not ours to judge
    return True


def remove(path):
    """Removes the file or directory tree at `path`, if there is one."""
    path = pathlib.Path(path)
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def dies_with_parent():
    """A `preexec_fn` for `subprocess` that asks the kernel (Linux) to kill
    the child with SIGKILL when this process dies, so that no orphan goes
    on writing after its parent was killed. Elsewhere, None. For a parent
    with threads, where a `preexec_fn` is unsafe, the child calls
    `die_with_parent` itself."""
    prctl = _prctl()
    if prctl is None:
        return None
    parent = os.getpid()
    return lambda: _die_with(prctl, parent)


def die_with_parent(parent):
    """Asks the kernel (Linux) to kill this process with SIGKILL when its
    parent dies; exits at once when the parent, process `parent`, is gone
    already."""
    prctl = _prctl()
    if prctl is not None:
        _die_with(prctl, parent)


def _prctl():
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


def _die_with(prctl, parent):
    prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:  # the parent died before prctl
        os._exit(1)
