"""Spec files: formats, overrides, validation messages, resolution."""

import pytest

from contrastive.errors import SpecError
from contrastive.spec import load_spec, resolve

from helpers import tiny_spec


def test_yaml_toml_and_json_resolve_alike(write_spec, tiny_arrays):
    data = tiny_spec(tiny_arrays)
    data.pop("augment")  # TOML has no null
    resolved = [load_spec(write_spec(data, suffix)).data for suffix in (".yaml", ".toml", ".json")]
    assert resolved[0] == resolved[1] == resolved[2]


def test_defaults_are_filled_in(tiny_arrays):
    spec = resolve({"data": {"name": "arrays", "path": str(tiny_arrays)},
                    "encoder": {"name": "small_cnn"}})
    assert spec["seed"] == 0
    assert spec["loss"]["name"] == "nt_xent" and spec["loss"]["temperature"] == 0.1
    assert spec["encoder"]["widths"] == [32, 64, 128]
    assert spec["train"]["batch_size"] == 256
    assert spec["distribute"]["sync_batchnorm"] is True
    assert spec["eval"]["knn"]["k"] == 200


def test_overrides_are_typed_as_yaml(tiny_arrays):
    spec = resolve(tiny_spec(tiny_arrays), ["optimizer.learning_rate=0.5", "train.epochs=3",
                                            "loss.temperature=2e-1", "train.jit_compile=false"])
    assert spec["optimizer"]["learning_rate"] == 0.5
    assert spec["train"]["epochs"] == 3
    assert spec["loss"]["temperature"] == 0.2
    assert spec["train"]["jit_compile"] is False


def test_a_section_the_spec_leaves_out_is_overridden_from_its_default(tiny_arrays):
    data = {"data": {"name": "arrays", "path": str(tiny_arrays)}, "encoder": {"name": "small_cnn"}}
    spec = resolve(data, ["optimizer.learning_rate=0.5", "augment.strength=0.25"])
    assert (spec["optimizer"]["name"], spec["optimizer"]["learning_rate"],
            spec["optimizer"]["momentum"]) == ("sgd", 0.5, 0.9)
    assert spec["augment"]["name"] == "simclr" and spec["augment"]["strength"] == 0.25
    assert resolve(data, ["optimizer={momentum: 0.8}"])["optimizer"]["learning_rate"] == 0.1
    # Naming another component starts from its own defaults...
    assert resolve(data, ["optimizer.name=adam"])["optimizer"]["name"] == "adam"
    # ...and a section the spec turned off stays without the default's keys.
    with pytest.raises(SpecError, match="'name' key") as info:
        resolve({**data, "augment": None}, ["augment.strength=0.25"])
    assert info.value.path == "augment"


@pytest.mark.parametrize(
    "change, path, message",
    [
        ({"optimzer": {"name": "sgd"}}, "optimzer", "unknown key; did you mean 'optimizer'?"),
        ({"train": {"batch_size": 16, "epohcs": 2}}, "train.epohcs", "did you mean 'epochs'?"),
        ({"train": {"batch_size": "big"}}, "train.batch_size", 'expected an integer >= 1, received "big"'),
        ({"train": {"batch_size": 0}}, "train.batch_size", "expected an integer >= 1, received 0"),
        ({"train": {"precision": "fp8"}}, "train.precision", "expected one of float32"),
        ({"loss": {"name": "nt_xnet"}}, "loss.name", "did you mean 'nt_xent'?"),
        ({"loss": {"name": "nt_xent", "temperature": -1}}, "loss.temperature", "expected a number > 0"),
        ({"optimizer": {"name": "sgd", "learning_rate": "fast"}}, "optimizer.learning_rate",
         'expected a number > 0, received "fast"'),
        ({"seed": "x"}, "seed", 'expected an integer >= 0 and <= 4294967295, received "x"'),
        ({"eval": {"knn": {"k": 0}}}, "eval.knn.k", "expected an integer >= 1"),
        ({"encoder": {"name": "small_cnn", "widths": [0]}}, "encoder.widths",
         "expected a list of integers >= 1 and <= 8192 with at least 1 item, received a list [0]"),
        ({"encoder": None}, "encoder", "missing required section 'encoder'"),
        # "" would name the working directory.
        ({"data": {"name": "image_folder", "path": ""}}, "data.path",
         'expected a string that is not blank, received ""'),
        ({"data": {"name": "tar_shards", "path": ["a.tar", " "]}}, "data.path",
         "or a list of strings that are not blank, received a list ['a.tar', ' ']"),
        ({"output": {"dir": ""}}, "output.dir", "expected a string that is not blank or null"),
    ],
)
def test_problems_name_file_and_key_path(write_spec, tiny_arrays, change, path, message):
    data = tiny_spec(tiny_arrays)
    data.update(change)
    file = write_spec(data)
    with pytest.raises(SpecError) as info:
        load_spec(file)
    assert info.value.path == path
    assert message in info.value.message
    assert str(info.value).startswith(f"{file}: {path}: ")


def test_override_problems_are_attributed_to_set(write_spec, tiny_arrays):
    file = write_spec(tiny_spec(tiny_arrays))
    with pytest.raises(SpecError) as info:
        load_spec(file, ["optimizer.learning_rate=fast"])
    assert str(info.value) == '--set: optimizer.learning_rate: expected a number > 0, received "fast"'
    with pytest.raises(SpecError, match="expected KEY.PATH=VALUE"):
        load_spec(file, ["optimizer.learning_rate"])


@pytest.mark.parametrize(
    "suffix, text, message",
    [
        (".yaml", "seed: 1\ndata: [unclosed\n", "malformed YAML"),
        (".toml", "seed = \n", "malformed TOML"),
        (".json", '{"seed": 1,}', "malformed JSON"),
        (".yaml", "- just\n- a list\n", "expected a mapping of sections"),
        (".txt", "seed: 1", "expected a .yaml, .yml, .toml or .json file"),
        (".yaml", "x: !!python/object/apply:os.system ['true']\n", "malformed YAML"),
    ],
)
def test_malformed_files(write_spec, suffix, text, message):
    file = write_spec(None, suffix, text=text)
    with pytest.raises(SpecError) as info:
        load_spec(file)
    assert message in str(info.value)
    assert str(info.value).startswith(str(file))


def test_missing_file():
    with pytest.raises(SpecError, match="no such file"):
        load_spec("does/not/exist.yaml")


def test_yaml_merge_keys_merge_and_explicit_keys_override(tmp_path, tiny_arrays):
    import yaml

    spec = tiny_spec(tiny_arrays)
    text = yaml.safe_dump({k: v for k, v in spec.items() if k != "optimizer"})
    file = tmp_path / "merge.yaml"
    file.write_text(text + "optimizer:\n  <<: &sgd {name: sgd, learning_rate: 0.1, momentum: 0.9}\n"
                    "  learning_rate: 0.2\n")
    optimizer = load_spec(file).optimizer
    assert (optimizer["name"], optimizer["learning_rate"], optimizer["momentum"]) == (
        "sgd", 0.2, 0.9)
    file.write_text(text + "optimizer:\n  name: sgd\n  name: adam\n")
    with pytest.raises(SpecError, match="duplicate key 'name'"):
        load_spec(file)
