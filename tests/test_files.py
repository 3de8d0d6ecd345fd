"""Files written whole or not at all; children that die with their parent."""

import os
import signal
import subprocess
import sys
import time

import pytest

from contrastive.files import _writer, scratch_folder, written_atomically


def test_a_written_file_appears_only_when_the_block_ends(tmp_path):
    target = tmp_path / "features.npy"
    with written_atomically(target) as tmp:
        assert tmp.parent == tmp_path and tmp.name.endswith("features.npy")
        tmp.write_bytes(b"data")
        assert not target.exists()
    assert target.read_bytes() == b"data" and os.listdir(tmp_path) == ["features.npy"]


@pytest.mark.parametrize("directory", [False, True])
def test_a_failed_write_leaves_nothing(tmp_path, directory):
    target = tmp_path / "model"
    with pytest.raises(RuntimeError), written_atomically(target) as tmp:
        if directory:
            (tmp / "variables").mkdir(parents=True)
            (tmp / "variables" / "data").write_bytes(b"half")
        else:
            tmp.write_bytes(b"half")
        raise RuntimeError("killed")
    assert os.listdir(tmp_path) == []


@pytest.mark.skipif(os.name != "posix", reason="a process' liveness is read on POSIX only")
def test_a_write_removes_what_a_killed_writer_of_the_same_file_left(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    host = _writer().split(".")[1]
    abandoned = tmp_path / f".tmp-{dead}.{host}-features.npy"
    abandoned.write_bytes(b"half")
    kept = [tmp_path / f".tmp-{dead}.{host}-model",  # a directory, of another file
            tmp_path / f".tmp-{os.getppid()}.{host}-features.npy",  # a running process' write
            tmp_path / f".tmp-{dead}.0badc0de-features.npy"]  # another machine's
    kept[0].mkdir()
    for path in kept[1:]:
        path.write_bytes(b"half")
    with written_atomically(tmp_path / "features.npy") as tmp:
        assert tmp.name == f".tmp-{os.getpid()}.{host}-features.npy"
        tmp.write_bytes(b"data")
    assert sorted(os.listdir(tmp_path)) == sorted(["features.npy", *(p.name for p in kept)])


@pytest.mark.skipif(os.name != "posix", reason="a process' liveness is read on POSIX only")
def test_a_scratch_folder_removes_those_killed_processes_left(tmp_path, monkeypatch):
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    host = _writer().split(".")[1]
    abandoned = tmp_path / f"contrastive-follower-{dead}.{host}-x1"
    (abandoned / "checkpoint").mkdir(parents=True)
    kept = [tmp_path / f"contrastive-follower-{os.getppid()}.{host}-x2",  # running
            tmp_path / f"contrastive-follower-{dead}.0badc0de-x3",  # another machine's
            tmp_path / f"contrastive-supervisor-{dead}.{host}-x4"]  # another kind
    for path in kept:
        path.mkdir()
    with scratch_folder("contrastive-follower-") as folder:
        assert os.path.basename(folder).startswith(f"contrastive-follower-{os.getpid()}.{host}-")
        assert sorted(os.listdir(tmp_path)) == sorted(
            [os.path.basename(folder), *(p.name for p in kept)])
    assert sorted(os.listdir(tmp_path)) == sorted(p.name for p in kept)


def test_a_directory_is_renamed_whole(tmp_path):
    target = tmp_path / "savedmodel"
    with written_atomically(target) as tmp:
        (tmp / "assets").mkdir(parents=True)
    assert (target / "assets").is_dir() and os.listdir(tmp_path) == ["savedmodel"]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_a_child_that_asked_dies_with_its_killed_parent(tmp_path):
    pid_file = tmp_path / "grandchild.pid"
    # The parent starts a grandchild that asks to die with it, then sleeps.
    parent = subprocess.Popen([sys.executable, "-c", f"""
import os, subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", '''
import os, pathlib, time
from contrastive.files import die_with_parent
die_with_parent({{parent}})
pathlib.Path({str(pid_file)!r}).write_text(str(os.getpid()))
time.sleep(60)
'''.replace("{{parent}}", str(os.getpid()))])
time.sleep(60)
"""])
    deadline = time.time() + 60
    while not pid_file.exists() or not pid_file.read_text():
        assert time.time() < deadline and parent.poll() is None
        time.sleep(0.05)
    grandchild = int(pid_file.read_text())
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    deadline = time.time() + 10
    while _alive(grandchild):
        assert time.time() < deadline, "the grandchild outlived its killed parent"
        time.sleep(0.05)


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie (not yet reaped by init) is dead
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.parametrize("directory", [False, True])
def test_a_new_output_never_replaces_one_that_appeared_meanwhile(tmp_path, directory):
    from contrastive.errors import SpecError

    target = tmp_path / "out"
    with pytest.raises(SpecError, match="appeared while this command ran"), \
            written_atomically(target, replace=False) as tmp:
        if directory:
            (tmp / "variables").mkdir(parents=True)
        else:
            tmp.write_bytes(b"new")
        target.mkdir() if directory else target.write_bytes(b"precious")
        if directory:
            (target / "precious").write_bytes(b"precious")
    kept = target / "precious" if directory else target
    assert kept.read_bytes() == b"precious" and os.listdir(tmp_path) == ["out"]
    with written_atomically(tmp_path / "new", replace=False) as tmp:
        tmp.write_bytes(b"new")
    assert (tmp_path / "new").read_bytes() == b"new"
    assert sorted(os.listdir(tmp_path)) == ["new", "out"]


def test_a_block_that_writes_nothing_changes_nothing(tmp_path):
    (tmp_path / "curves.png").write_bytes(b"old")
    with written_atomically(tmp_path / "curves.png"):
        pass
    assert (tmp_path / "curves.png").read_bytes() == b"old"
    with written_atomically(tmp_path / "none.png"):
        pass
    assert os.listdir(tmp_path) == ["curves.png"]
