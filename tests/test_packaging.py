"""pyproject.toml lists every package of the source tree: an editable
install finds a forgotten one anyway, a built wheel leaves it out."""

import pathlib
import tomllib

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_every_package_is_listed():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    found = {".".join(path.parent.relative_to(ROOT).parts)
             for path in (ROOT / "contrastive").rglob("__init__.py")}
    found |= {"contrastive_cli" + "".join(f".{p}" for p in path.parent.relative_to(ROOT / "cli").parts)
              for path in (ROOT / "cli").rglob("__init__.py")}
    templates = {".".join(path.relative_to(ROOT).parts)
                 for path in (ROOT / "contrastive" / "templates").rglob("*") if path.is_dir()}
    assert found - listed == set(), f"missing from pyproject.toml: {sorted(found - listed)}"
    assert templates - {"contrastive.templates"} <= listed
    assert listed - found - templates == set(), sorted(listed - found - templates)


def test_installing_the_torch_extra_keeps_an_installed_torch(tmp_path):
    # A throwaway environment that sees this one's packages, where torch
    # 2.5.0 (metadata only) shadows the real one: `pip install .[torch]`
    # must take it as it is.
    import json
    import subprocess
    import sysconfig
    import venv

    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    site = pathlib.Path(sysconfig.get_path("purelib", vars={"base": str(env_dir)}))
    parent = sysconfig.get_path("purelib")
    (site / "_parent.pth").write_text(f"import site; site.addsitedir({parent!r})\n")
    info = site / "torch-2.5.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: torch\nVersion: 2.5.0\n")
    (info / "INSTALLER").write_text("pip\n")
    (info / "RECORD").write_text("")
    done = subprocess.run(
        [str(env_dir / "bin" / "python"), "-m", "pip", "install", "--dry-run", "--quiet",
         "--report", "-", "--no-build-isolation", f"{ROOT}[torch]"],
        capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    installs = {item["metadata"]["name"] for item in json.loads(done.stdout)["install"]}
    assert installs == {"contrastive"}, installs
