"""Every registered component meets the contract of its kind
(`contrastive.testing`), on the active backend."""

import tarfile

import numpy as np
import pytest
from PIL import Image

from contrastive import kinds
from contrastive.registry import register
from contrastive.testing import ContractError, check_component
from contrastive.testing.contracts import _CALLS, components

COMPONENTS = sorted(components())


@pytest.fixture(scope="module")
def data_files(tmp_path_factory):
    """Required arguments of the datasets that read files."""
    root = tmp_path_factory.mktemp("contract-data")
    rng = np.random.default_rng(0)
    for c in ("a", "b"):
        (root / "folder" / c).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(
                root / "folder" / c / f"{i}.png")
    np.savez(root / "arrays.npz", images=rng.integers(0, 256, (4, 8, 8, 3), dtype=np.uint8))
    (root / "list.csv").write_text("path,label\n" + "".join(
        f"folder/{c}/{i}.png,{c}\n" for c in ("a", "b") for i in range(3)))
    with tarfile.open(root / "shard-000.tar", "w") as shard:
        for c in ("a", "b"):
            for i in range(3):
                shard.add(root / "folder" / c / f"{i}.png", arcname=f"{c}{i}.png")
                (root / f"{c}{i}.cls").write_text(c)
                shard.add(root / f"{c}{i}.cls", arcname=f"{c}{i}.cls")
    return {"image_folder": {"path": str(root / "folder"), "size": 8, "cache": False},
            "arrays": {"path": str(root / "arrays.npz")},
            "file_list": {"path": str(root / "list.csv"), "size": 8, "cache": False},
            "tar_shards": {"path": str(root / "shard-*.tar"), "size": 8, "cache": False}}


def test_every_kind_has_a_contract_check():
    assert set(_CALLS) == set(kinds.NAMES)
    assert all(kind.contract for kind in kinds.ALL)


@pytest.mark.parametrize("kind,name", COMPONENTS, ids=[f"{k}-{n}" for k, n in COMPONENTS])
def test_component_meets_its_contract(kind, name, data_files):
    check_component(kind, name, data_files.get(name) if kind == "datasets" else None)


def test_a_broken_component_fails_its_contract():
    import keras

    class Explodes(keras.losses.Loss):
        def call(self, z_a, z_b):
            return keras.ops.sum(z_a) / 0.0

    register("losses", "explodes_for_test", Explodes)
    try:
        with pytest.raises(ContractError, match="loss 'explodes_for_test'.*not finite"):
            check_component("losses", "explodes_for_test")
    finally:
        from contrastive.registry import get_registry

        get_registry("losses").unregister("explodes_for_test")


def test_required_arguments_are_reported():
    with pytest.raises(ContractError, match="dataset 'image_folder': cannot be built"):
        check_component("datasets", "image_folder")
