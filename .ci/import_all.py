"""Imports every module of the installed package, from outside the checkout,
so that a module or data file missing from pyproject.toml fails CI (an
editable install would find it in the source tree)."""

import importlib
import pkgutil

import contrastive
import contrastive_cli
from contrastive.scaffold import template

assert "site-packages" in contrastive.__file__, f"not the installed copy: {contrastive.__file__}"
names = []
for package in (contrastive, contrastive_cli):
    for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
        importlib.import_module(info.name)
        names.append(info.name)
template("tests/_common.py.tmpl")  # the package data travels too
print(f"imported {len(names)} modules from {contrastive.__file__}")
