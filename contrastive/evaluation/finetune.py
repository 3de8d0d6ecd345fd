"""Semi-supervised fine-tuning on a class-balanced labelled subset."""

import keras
import numpy as np

from contrastive import torch_speed
from contrastive.evaluation.progress import EpochProgress
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


def finetune_model(encoder, image_shape, num_classes, augment=True, seed=0):
    """The encoder, then a new linear classifier, from uint8 images.

    With `augment`, each training batch is first randomly cropped and
    resized (area 8-100%) and flipped left-right, the only preprocessing
    the paper fine-tunes with (appendix B.5); in inference the images pass
    unchanged.
    """
    from contrastive.augmenters.crop import RandomResizedCrop
    from contrastive.augmenters.flip import RandomFlip

    inputs = keras.Input(shape=tuple(image_shape), dtype="uint8")
    x = to_unit_float(inputs)
    if augment:
        x = RandomResizedCrop(seed=seed, name="finetune_crop")(x)
        x = RandomFlip(seed=seed + 1, name="finetune_flip")(x)
    h = encoder(x)
    outputs = keras.layers.Dense(num_classes, dtype="float32")(h)
    return keras.Model(inputs, outputs)


def finetune_accuracy(encoder, train, test, fraction=0.1, epochs=30, learning_rate=0.05,
                      batch_size=64, seed=0, augment=True, verbose=0):
    """Fine-tunes the whole encoder (or encoder and first head layer) with a
    new linear classifier on a `fraction` of the labelled training images;
    returns test accuracy.

    As in the paper's semi-supervised protocol (section 4.2, appendix
    B.5), the encoder starts from its pretrained weights and every layer
    is trained, with Nesterov SGD at a fixed learning rate, no
    regularisation, and random crops and flips only (see `finetune_model`).

    Args:
        encoder: a `keras.Model` from float32 images in [0, 1] to h.
        train: labelled `Arrays` or `Files` to draw the subset from.
        test: labelled held-out `Arrays` or `Files`.
        fraction: the share of each class used (0.01 and 0.1 in the paper).
        epochs: passes over the subset.
        learning_rate: SGD's learning rate.
        batch_size: images per step.
        seed: fixes the subset, the initialisation, the order and the
            augmentation.
        augment: crop and flip the training images.
        verbose: 0, 1 or `"auto"`: one progress bar over the epochs on
            stderr (see `contrastive.evaluation.progress`).

    Returns:
        `(accuracy, subset_size)`.
    """
    keras.utils.set_random_seed(seed)
    index = balanced_subset(train.labels, fraction, seed)
    num_classes = int(max(train.labels.max(), test.labels.max())) + 1
    model = finetune_model(encoder, train.image_shape, num_classes, augment, seed)
    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate, momentum=0.9, nesterov=True),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    subset = train.take(index).in_memory()
    x, y = subset.views(), subset.labels
    model.fit(x, y, epochs=epochs, batch_size=min(batch_size, len(x)), verbose=0,
              callbacks=[torch_speed.callback(), EpochProgress("fine-tuning", epochs, verbose)])
    logits = np.concatenate([model.predict_on_batch(batch) for batch in test.batches(256)])
    return float((logits.argmax(axis=1) == test.labels).mean()), len(index)
