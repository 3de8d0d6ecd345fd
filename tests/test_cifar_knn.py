"""A short SimCLR pretraining on a CIFAR-10 subset improves the kNN accuracy
of h on held-out test images over the same encoder at initialisation."""

import keras
import numpy as np
import pytest

from contrastive.evaluation import encode, knn_accuracy
from contrastive.spec import resolve
from contrastive.training import build_parts, train

from helpers import CIFAR_TEST, CIFAR_TRAIN

pytestmark = [pytest.mark.skipif(not CIFAR_TRAIN.exists(), reason="needs ../shared/datasets/cifar10"),
              pytest.mark.heavy]

MARGIN = 0.04


def test_pretraining_improves_knn_over_random_initialisation(tmp_path):
    # 2,000 training images (200 a class) and 1,000 test images, at 16x16 so
    # that the run fits a CPU test.
    spec = resolve({
        "seed": 0,
        "data": {"name": "image_folder", "path": str(CIFAR_TRAIN), "test_path": str(CIFAR_TEST),
                 "size": 16, "limit_per_class": 200},
        "augment": {"name": "simclr", "preset": "cifar10", "crop_scale": [0.2, 1.0]},
        "encoder": {"name": "small_cnn", "widths": [32, 64]},
        "head": {"name": "mlp", "output_dim": 64},
        "loss": {"name": "nt_xent", "temperature": 0.2},
        "optimizer": {"name": "adam", "learning_rate": 0.002},
        "train": {"batch_size": 200, "epochs": 6, "verbose": 0, "probe": False},
        "eval": {"knn": {"enabled": False}, "linear": {"enabled": False}},
        "output": {"tensorboard": False, "plot": False},
    })
    parts = build_parts(spec)
    test = parts.dataset.load("test")
    held_out = test.take(np.concatenate([np.flatnonzero(test.labels == c)[:100] for c in range(10)]))

    def knn(encoder):
        return knn_accuracy(encode(encoder, parts.input.data.images), parts.input.labels,
                            encode(encoder, held_out.images), held_out.labels, k=20)

    # `train` builds its parts from the same seed, so its encoder starts from
    # the weights measured here.
    before = knn(parts.encoder)
    train(spec, out=tmp_path / "run", log=lambda line: None)
    after = knn(keras.saving.load_model(tmp_path / "run" / "encoder.keras"))
    assert after >= before + MARGIN, (before, after)
