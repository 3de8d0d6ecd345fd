"""The plugin distributions in `plugins/` and one made by `new-plugin`,
installed and uninstalled with pip, listed, and trained from specs.

pip installs into a throwaway virtual environment that sees this
environment's packages (a `.pth` file adds its site-packages), so that
`pip uninstall` really removes them (pip refuses to uninstall anything
outside the running environment, so `--target` folders cannot be used for
that). Subprocesses are few: each imports Keras.
"""

import importlib.metadata
import json
import os
import pathlib
import shutil
import subprocess
import sysconfig
import textwrap
import venv

import pytest
import yaml

from helpers import built_once, tiny_spec

pytestmark = pytest.mark.heavy  # its module fixture installs and trains

ROOT = pathlib.Path(__file__).resolve().parents[1]
PLUGINS = ROOT / "plugins"
DISTRIBUTIONS = ("contrastive-redundancy", "contrastive-wideresnet")
GENERATED = "contrastive-toy-aligner"  # `new-plugin`'s default kind, losses
# One generated plugin of every other kind: each installs and passes its own tests.
GENERATED_KINDS = {f"contrastive-gen-{kind}": kind
                   for kind in ("encoders", "heads", "augmenters", "datasets", "optimizers",
                                "schedules", "methods")}

DRIVER = textwrap.dedent("""
    # Runs `contrastive list --json` and `contrastive train` in one process
    # (one Keras import), through the CLI's own click application.
    import contextlib, io, json, sys
    from contrastive_cli.main import app

    jobs = json.loads(sys.argv[1])
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        app.main(["list", "--json"], standalone_mode=False)
    with open(jobs["listing"], "w") as f:
        f.write(buffer.getvalue())
    for spec, out in jobs["train"]:
        with contextlib.redirect_stdout(io.StringIO()):
            app.main(["train", spec, "--out", out, "--json"], standalone_mode=False)
    print("done")
""")


def _run(args, **kwargs):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    env.pop("PYTHONPATH", None)
    return subprocess.run(args, capture_output=True, text=True, env=env, timeout=900, **kwargs)


def _listing(python):
    result = _run([str(python), "-m", "contrastive_cli.main", "list", "--json"])
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def environment():
    """A throwaway venv holding the plugins, and what the steps produced;
    built once a test run (`built_once`)."""
    root = built_once("plugin-distributions", _build)
    tested = json.loads((root / "generated.json").read_text())
    return {
        "python": root / "venv" / "bin" / "python",
        "site": pathlib.Path(sysconfig.get_path("purelib", vars={"base": str(root / "venv")})),
        "root": root,
        "listing": json.loads((root / "listing.json").read_text()),
        "generated_tests": subprocess.CompletedProcess(
            tested["args"], tested["returncode"], tested["stdout"], tested["stderr"]),
    }


def _build(root):
    from click.testing import CliRunner

    from contrastive_cli.main import app

    generated = root / GENERATED
    made = CliRunner().invoke(app, ["new-plugin", GENERATED, "--out", str(generated)])
    assert made.exit_code == 0, made.output
    others = []
    for name, kind in GENERATED_KINDS.items():
        others.append(root / name)
        made = CliRunner().invoke(app, ["new-plugin", name, "--kind", kind, "--out", str(others[-1])])
        assert made.exit_code == 0, made.output

    env_dir = root / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    site = pathlib.Path(sysconfig.get_path("purelib", vars={"base": str(env_dir)}))
    parent = sysconfig.get_path("purelib")
    (site / "_parent_environment.pth").write_text(f"import site; site.addsitedir({parent!r})\n")

    # Copies, since an in-tree build writes build/ and *.egg-info/ next to
    # the sources.
    sources = []
    for dist in DISTRIBUTIONS:
        sources.append(root / "src" / dist)
        shutil.copytree(PLUGINS / dist, sources[-1], ignore=shutil.ignore_patterns(
            "build", "*.egg-info", "__pycache__", ".pytest_cache"))
    installed = _run([str(python), "-m", "pip", "install", "--quiet", "--no-deps",
                      "--no-build-isolation", "--no-index", *map(str, sources),
                      str(generated), *map(str, others)])
    assert installed.returncode == 0, installed.stderr

    data = root / "data"
    data.mkdir()
    arrays = _tiny_arrays(data)
    no_eval = {"knn": {"enabled": False}, "linear": {"enabled": False}}
    specs = {
        # (wide_resnet's own tests train it; compiling it here costs ~20 s)
        "vicreg": tiny_spec(arrays, loss={"name": "vicreg"}, eval=no_eval),
        "barlow_twins": tiny_spec(arrays, loss={"name": "barlow_twins",
                                                "redundancy_weight": 0.01}, eval=no_eval),
        "generated": tiny_spec(arrays, loss={"name": "toy_aligner", "temperature": 0.2},
                               eval=no_eval),
    }
    jobs = {"listing": str(root / "listing.json"), "train": []}
    for name, spec in specs.items():
        path = root / f"{name}.yaml"
        path.write_text(yaml.safe_dump(spec))
        jobs["train"].append([str(path), str(root / "runs" / name)])
    trained = _run([str(python), "-c", DRIVER, json.dumps(jobs)])
    assert trained.returncode == 0 and trained.stdout.strip().endswith("done"), trained.stderr
    tested = _run([str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider",
                   f"--junitxml={root / 'generated.xml'}",
                   *(str(folder / "tests") for folder in (generated, *others))], cwd=root)
    (root / "generated.json").write_text(json.dumps(
        {"args": tested.args, "returncode": tested.returncode, "stdout": tested.stdout,
         "stderr": tested.stderr}))


def _tiny_arrays(folder):
    import numpy as np

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(48, 16, 16, 3), dtype=np.uint8)
    labels = rng.integers(0, 3, size=48).astype(np.int32)
    np.savez(folder / "tiny.npz", images=images, labels=labels)
    np.savez(folder / "tiny_test.npz", images=images[:12], labels=labels[:12])
    return folder / "tiny.npz"


def test_installed_plugins_are_listed_with_their_distribution(environment):
    rows = {(r["kind"], r["name"]): r for r in environment["listing"]}
    for kind, name, dist in [
        ("losses", "vicreg", "contrastive-redundancy"),
        ("losses", "barlow_twins", "contrastive-redundancy"),
        ("encoders", "wide_resnet", "contrastive-wideresnet"),
        ("losses", "toy_aligner", GENERATED),
        *((kind, name.removeprefix("contrastive-").replace("-", "_"), name)
          for name, kind in GENERATED_KINDS.items()),
    ]:
        row = rows[(kind, name)]
        assert (row["origin"], row["version"], row["status"]) == (dist, "0.1.0", "ok"), row


@pytest.mark.parametrize("name", ["vicreg", "barlow_twins", "generated"])
def test_a_spec_using_each_plugin_trains(environment, name):
    run = environment["root"] / "runs" / name
    results = json.loads((run / "results.json").read_text())
    assert results["epochs"] == 1 and results["final_loss"] == pytest.approx(
        results["final_loss"])  # finite (NaN != NaN)
    assert (run / "encoder.keras").exists()
    resolved = yaml.safe_load((run / "spec.yaml").read_text())
    if name == "vicreg":
        assert resolved["loss"]["invariance_weight"] == 25.0
    if name == "barlow_twins":
        assert resolved["loss"] == {"name": "barlow_twins", "redundancy_weight": 0.01,
                                    "epsilon": 1e-5}


def test_the_generated_plugins_own_tests_pass_once_installed(environment):
    import xml.etree.ElementTree as ElementTree

    result = environment["generated_tests"]
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    cases = ElementTree.parse(environment["root"] / "generated.xml").iter("testcase")
    ran = {}
    for case in cases:
        assert not list(case), ElementTree.tostring(case)[:2000]  # no failure, error or skip
        ran.setdefault(case.get("classname").split(".")[-1], set()).add(case.get("name"))
    for name in (GENERATED, *GENERATED_KINDS):
        tests = ran["test_" + name.replace("-", "_")]
        assert {"test_installed_and_registered_by_entry_point",
                "test_meets_the_contract_of_its_kind"} < tests, tests


def test_pip_uninstall_removes_them_from_the_list(environment):
    parent = sysconfig.get_path("purelib")  # what the throwaway venv inherits
    inherited = [dist for dist in (*DISTRIBUTIONS, GENERATED, *GENERATED_KINDS)
                 if list(importlib.metadata.distributions(name=dist, path=[parent]))]
    if inherited:
        pytest.skip(f"{', '.join(inherited)} installed in the running environment too; "
                    "after the uninstall the list would show that copy")
    python = environment["python"]
    removed = _run([str(python), "-m", "pip", "uninstall", "--yes",
                    *DISTRIBUTIONS, GENERATED, *GENERATED_KINDS])
    assert removed.returncode == 0, removed.stderr
    assert not list(environment["site"].glob("contrastive_*"))
    origins = {r["origin"] for r in _listing(python)}
    assert not origins & {*DISTRIBUTIONS, GENERATED, *GENERATED_KINDS}, origins
