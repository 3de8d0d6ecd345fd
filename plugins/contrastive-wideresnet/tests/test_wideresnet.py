"""The WideResNet encoder: shapes, parameters, config, saving, jit, training."""

import keras
import numpy as np
import pytest

from contrastive_wideresnet.encoder import WideResNet


def images(n=4, size=16, seed=0):
    return np.random.default_rng(seed).uniform(size=(n, size, size, 3)).astype("float32")


def test_wrn_28_2_has_the_papers_parameter_count():
    encoder = WideResNet(depth=28, widen_factor=2)
    encoder.build((None, 32, 32, 3))
    trainable = sum(int(np.prod(v.shape)) for v in encoder.trainable_weights)
    # WRN-28-2 (without the classifier): about 1.47 M parameters.
    assert 1.40e6 < trainable < 1.50e6, trainable


@pytest.mark.parametrize("bad", [{"depth": 12}, {"depth": 4}, {"widen_factor": 0},
                                 {"dropout": 1.0}])
def test_rejects_bad_arguments(bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        WideResNet(**bad)


def test_shape_config_round_trip_and_saved_model_reload(tmp_path):
    keras.saving.register_keras_serializable(package="contrastive-wideresnet-test")(WideResNet)
    encoder = WideResNet(depth=10, widen_factor=2, dropout=0.1)
    assert encoder.compute_output_shape((None, 8, 8, 3)) == (None, 128)
    clone = WideResNet.from_config(encoder.get_config())
    assert clone.get_config()["dropout"] == 0.1 and clone.depth == 10
    inputs = keras.Input((8, 8, 3))
    model = keras.Model(inputs, encoder(inputs, training=False))
    path = tmp_path / "encoder.keras"
    model.save(path)
    reloaded = keras.saving.load_model(path)
    x = images(n=2, size=8)
    assert tuple(model(x).shape) == (2, 128)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(reloaded(x)), keras.ops.convert_to_numpy(model(x)),
        rtol=1e-5, atol=1e-5,
    )


def test_trains_with_jit_in_the_simclr_model():
    """Compiled training steps of contrastive's SimCLR model on this backend."""
    from contrastive.heads.mlp import MLPHead
    from contrastive.losses.nt_xent import NTXent
    from contrastive.model import SimCLR

    keras.utils.set_random_seed(0)
    model = SimCLR(WideResNet(depth=10, widen_factor=1), MLPHead(output_dim=8),
                   augmenter=None, loss=NTXent(temperature=0.5))
    model.compile(optimizer=keras.optimizers.SGD(0.01), jit_compile=True)
    history = model.fit(images(16, size=8), batch_size=8, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][-1])
    before = keras.ops.convert_to_numpy(model.represent(images(2, size=8)))
    assert before.shape == (2, 64)
