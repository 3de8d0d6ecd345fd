"""Linear evaluation: a softmax classifier on frozen representations."""

import keras
import numpy as np

from contrastive.evaluation.progress import EpochProgress

# The classifier's optimizer, a `keras.optimizers` class.
OPTIMIZER = "Adam"


def describe(epochs, learning_rate, batch_size, augment=False):
    """The linear protocol with these settings, as `contrastive explain`
    shows it."""
    features = "h standardised with the training split's mean and standard deviation"
    if augment:
        features = ("h of a new random crop (area 8-100%) and flip of each training image "
                    "every epoch, through the frozen encoder, standardised as the unchanged "
                    "images' h")
    return {
        "epochs": epochs,
        "learning_rate": learning_rate,
        "batch_size": batch_size,
        "augment": augment,
        "optimizer": OPTIMIZER,
        "features": features,
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
    mean, std = standardisation(train_features)
    x_train = ((train_features - mean) / std).astype("float32")
    x_test = ((test_features - mean) / std).astype("float32")
    keras.utils.set_random_seed(seed)
    classifier = linear_classifier(x_train.shape[1], num_classes, learning_rate)
    classifier.fit(x_train, train_labels, epochs=epochs, batch_size=batch_size, verbose=0,
                   callbacks=[EpochProgress("linear classifier", epochs, verbose)])
    logits = classifier.predict(x_test, batch_size=1024, verbose=0)
    return float((logits.argmax(axis=1) == test_labels).mean())


def standardisation(features):
    """The mean and standard deviation of each feature over `features`; a
    feature constant there gets 1, so that it is only centred (as
    scikit-learn's `StandardScaler` does) and a test value of it is not
    blown up."""
    mean = features.mean(axis=0)
    std = features.std(axis=0)
    return mean, np.where(std > 1e-6 * max(float(np.abs(features).max()), 1.0), std, 1.0)


def augmented_linear_accuracy(encoder, train, test, train_features, epochs=100,
                              learning_rate=1e-3, batch_size=256, seed=0, verbose=0):
    """Trains a linear classifier on h of augmented training images through
    the frozen encoder; returns test accuracy.

    Every epoch each training image is randomly cropped (area 8-100%,
    resized back) and flipped left-right anew, as the paper's linear
    evaluation (appendix B.6) and the official code train the classifier;
    the encoder stays in inference mode (batch norm uses its moving
    statistics) and is not updated. h is standardised with the mean and
    standard deviation of the unchanged training images' h
    (`train_features`), so that the classifier and its optimizer see the
    features `linear_accuracy` gives them; test images pass unchanged.
    Slower than `linear_accuracy` by about `epochs` forward passes over the
    training split, which it holds in memory.

    Args:
        encoder: a model from float32 images in [0, 1] to h.
        train, test: the labelled splits (`Arrays` or `Files`).
        train_features: h of `train`'s unchanged images, in order.
        epochs, learning_rate, batch_size, seed, verbose: as `linear_accuracy`.

    Returns:
        The top-1 accuracy as a float in [0, 1].
    """
    from contrastive import torch_speed

    train = train.in_memory()
    num_classes = int(max(train.labels.max(), test.labels.max())) + 1
    keras.utils.set_random_seed(seed)
    model = augmented_probe(encoder, train.image_shape, num_classes,
                            standardisation(train_features), seed)
    # Setting `trainable` reaches every sublayer: each one's own is put back.
    trainable = [(layer, layer.trainable) for layer in encoder._flatten_layers()]
    encoder.trainable = False
    try:
        model.compile(optimizer=getattr(keras.optimizers, OPTIMIZER)(learning_rate),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        model.fit(train.views(), train.labels, epochs=epochs, verbose=0,
                  batch_size=min(batch_size, len(train)),
                  callbacks=[torch_speed.callback(),
                             EpochProgress("linear classifier, augmented", epochs, verbose)])
        logits = np.concatenate([keras.ops.convert_to_numpy(model(batch, training=False))
                                 for batch in test.batches(256)])
    finally:
        for layer, value in trainable:
            layer.trainable = value
    return float((logits.argmax(axis=1) == test.labels).mean())


def augmented_probe(encoder, image_shape, num_classes, standardised_by, seed=0):
    """The model `augmented_linear_accuracy` trains, from uint8 images:
    in training a random crop (area 8-100%, resized back) and a left-right
    flip, then the encoder in inference mode, h standardised by
    `standardised_by` (`(mean, std)`), and a new dense layer; in inference
    the images pass unchanged."""
    from contrastive.augmenters.crop import RandomResizedCrop
    from contrastive.augmenters.flip import RandomFlip
    from contrastive.model import to_unit_float

    mean, std = standardised_by
    inputs = keras.Input(shape=tuple(image_shape), dtype="uint8")
    x = RandomResizedCrop(seed=seed, name="linear_crop")(to_unit_float(inputs))
    x = RandomFlip(seed=seed + 1, name="linear_flip")(x)
    h = keras.ops.cast(_InInferenceMode(encoder)(x), "float32")
    h = keras.layers.Normalization(mean=mean, variance=np.square(std), dtype="float32")(h)
    return keras.Model(inputs, keras.layers.Dense(num_classes, dtype="float32")(h))


class _InInferenceMode(keras.layers.Layer):
    """Calls `layer` in inference mode, whatever the mode of the model
    around it (a functional model passes its own `training` to every
    layer, over the value the layer was called with when it was built)."""

    def __init__(self, layer, **kwargs):
        super().__init__(**kwargs)
        self.layer = layer

    def call(self, inputs):
        return self.layer(inputs, training=False)
