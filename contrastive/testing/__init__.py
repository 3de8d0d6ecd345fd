"""Test helpers for components, built-in and third-party alike.

- `check_component(kind, name)`: the contract of its kind (see
  `contrastive.kinds`), run on the active backend; raises
  `ContractError` naming what failed.
- `check_all()`: the same for every name the registry lists.
- `value_and_grad(fn, *arrays)`: value and gradients of `keras.ops` code on
  the active backend.

A plugin's own test can be one line:

```python
def test_contract():
    contrastive.testing.check_component("losses", "my_loss")
```
"""

from contrastive.testing.contracts import (  # noqa: F401
    ContractError,
    check_all,
    check_component,
)
from contrastive.testing.gradients import value_and_grad  # noqa: F401
