"""Built-in encoders."""

from contrastive.encoders import small_cnn  # noqa: F401
from contrastive.encoders import resnet  # noqa: F401
from contrastive.encoders import applications  # noqa: F401
from contrastive.encoders import vit  # noqa: F401
