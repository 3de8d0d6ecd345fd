"""A pretraining run, from its spec to its run directory.

- `build`: the parts a spec describes, the optimizer and its schedule, the
  assembled model.
- `inputs`: how the training images reach `fit` (`train.input`), one
  `TrainingInput` per mode.
- `run_dir`: the run directory as training writes it (`RunDir`).
- `checkpoints`, `callbacks`: what `fit` calls each epoch.
- `train`: `train()` and `resume()`, which only orchestrate the above.
"""

from contrastive.training.build import (  # noqa: F401
    Parts,
    build_model,
    build_optimizer,
    build_parts,
    schedule_context,
)
from contrastive.training.train import LaunchRequired, restore, resume, train  # noqa: F401
