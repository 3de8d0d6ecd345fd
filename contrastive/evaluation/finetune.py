"""Semi-supervised fine-tuning on a class-balanced labelled subset."""

import keras
import numpy as np

from contrastive.model import to_unit_float


def balanced_subset(labels, fraction, seed=0):
    """Indices of a class-balanced subset: `fraction` of each class (at
    least one image per class), fixed by `seed`.

    Returns:
        Sorted indices into `labels`.
    """
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    picked = []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        count = max(1, int(round(len(members) * fraction)))
        picked.append(rng.choice(members, size=count, replace=False))
    return np.sort(np.concatenate(picked))


def finetune_accuracy(encoder, train, test, fraction=0.1, epochs=30, learning_rate=0.05,
                      batch_size=64, seed=0):
    """Fine-tunes the whole encoder (or encoder and first head layer) with a
    new linear classifier on a
    `fraction` of the labelled training images; returns test accuracy.

    As in the paper's semi-supervised protocol (section 4.2), the encoder
    starts from its pretrained weights and every layer is trained, with
    Nesterov SGD at a fixed learning rate. Unlike the paper, the images are
    not augmented during fine-tuning.

    Args:
        encoder: a `keras.Model` from float32 images in [0, 1] to h.
        train: labelled `Arrays` to draw the subset from.
        test: labelled held-out `Arrays`.
        fraction: the share of each class used (0.01 and 0.1 in the paper).
        epochs: passes over the subset.
        learning_rate: SGD's learning rate.
        batch_size: images per step.
        seed: fixes the subset, the initialisation and the order.

    Returns:
        `(accuracy, subset_size)`.
    """
    keras.utils.set_random_seed(seed)
    index = balanced_subset(train.labels, fraction, seed)
    num_classes = int(max(train.labels.max(), test.labels.max())) + 1
    inputs = keras.Input(shape=train.images.shape[1:], dtype="uint8")
    h = encoder(to_unit_float(inputs))
    outputs = keras.layers.Dense(num_classes, dtype="float32")(h)
    model = keras.Model(inputs, outputs)
    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate, momentum=0.9, nesterov=True),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    x, y = train.images[index], train.labels[index]
    model.fit(x, y, epochs=epochs, batch_size=min(batch_size, len(x)), verbose=0)
    logits = model.predict(test.images, batch_size=256, verbose=0)
    return float((logits.argmax(axis=1) == test.labels).mean()), len(index)
