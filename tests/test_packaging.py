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
