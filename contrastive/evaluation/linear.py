"""Linear evaluation: a softmax classifier on frozen representations."""

import keras
import numpy as np

from contrastive.evaluation.progress import EpochProgress

# The classifier's optimizer, a `keras.optimizers` class.
OPTIMIZER = "Adam"


def describe(epochs, learning_rate, batch_size):
    """The linear protocol with these settings, as `contrastive explain`
    shows it."""
    return {
        "epochs": epochs,
        "learning_rate": learning_rate,
        "batch_size": batch_size,
        "optimizer": OPTIMIZER,
        "features": "h standardised with the training split's mean and standard deviation",
        "classifier": "one dense layer, softmax cross-entropy, no regularisation",
        "reported": ["top-1 accuracy"],
    }


def linear_classifier(num_features, num_classes, learning_rate):
    """The compiled classifier: one dense layer on the features, trained
    with `OPTIMIZER` on softmax cross-entropy."""
    classifier = keras.Sequential(
        [keras.Input((num_features,)), keras.layers.Dense(num_classes, dtype="float32")]
    )
    classifier.compile(
        optimizer=getattr(keras.optimizers, OPTIMIZER)(learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    return classifier


def linear_accuracy(train_features, train_labels, test_features, test_labels,
                    epochs=100, learning_rate=1e-3, batch_size=256, seed=0,
                    num_classes=None, verbose=0):
    """Trains a linear classifier on frozen features; returns test accuracy.

    Features are computed once (the fast path of the paper's linear
    evaluation) and standardised with the training set's statistics; a
    feature constant on the training set is only centred (as scikit-learn's
    `StandardScaler` does), so that a test value of it is not blown up.

    Args:
        train_features, train_labels: the labelled training features.
        test_features, test_labels: the held-out features.
        epochs: passes over the training features.
        learning_rate: Adam's learning rate.
        batch_size: features per step.
        seed: initialisation and shuffling seed.
        num_classes: default from the labels.
        verbose: 0, 1 or `"auto"`: one progress bar over the epochs, with
            the loss, on stderr (see `contrastive.evaluation.progress`).

    Returns:
        The top-1 accuracy as a float in [0, 1].
    """
    train_labels = np.asarray(train_labels)
    test_labels = np.asarray(test_labels)
    if num_classes is None:
        num_classes = int(max(train_labels.max(), test_labels.max())) + 1
    mean = train_features.mean(axis=0)
    std = train_features.std(axis=0)
    std = np.where(std > 1e-6 * max(float(np.abs(train_features).max()), 1.0), std, 1.0)
    x_train = ((train_features - mean) / std).astype("float32")
    x_test = ((test_features - mean) / std).astype("float32")
    keras.utils.set_random_seed(seed)
    classifier = linear_classifier(x_train.shape[1], num_classes, learning_rate)
    classifier.fit(x_train, train_labels, epochs=epochs, batch_size=batch_size, verbose=0,
                   callbacks=[EpochProgress("linear classifier", epochs, verbose)])
    logits = classifier.predict(x_test, batch_size=1024, verbose=0)
    return float((logits.argmax(axis=1) == test_labels).mean())
