"""Built-in augmenters: batched, per-image random Keras layers (SimCLR).

Every augmenter is called as `layer(images, training=True)` on NHWC images,
uint8 in 0..255 or float in [0, 1], and returns float32 in [0, 1]; one call
makes one view with independent random parameters per image. With
`training=False` the input is returned (as float32 in [0, 1]; resized when an
output size is set).
"""

from contrastive.augmenters import blur, color, crop, flip, simclr, solarize  # noqa: F401
