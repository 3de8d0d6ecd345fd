"""Built-in schedules: constant, warmup_cosine; and the paper's learning-rate
scaling (`peak_learning_rate`)."""

from contrastive.schedules import warmup_cosine  # noqa: F401
from contrastive.schedules.warmup_cosine import SCALINGS, peak_learning_rate  # noqa: F401
