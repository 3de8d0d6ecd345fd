"""The CIFAR ResNet-18 and MLP head written as a plain `torch.nn.Module`.

Not part of the library: the baseline that `overhead.py` and `gpu.sh`
measure Keras-on-torch against, in the same process. It mirrors the
architecture of `contrastive`'s `resnet18` with the CIFAR stem (3x3
stride-1 stem, no max-pool, basic blocks [2, 2, 2, 2] of widths 64-512,
a projection shortcut on the first block of every stage as the official
code, zero-initialised last batch-norm scale in each
block, batch norm momentum 0.9 / epsilon 1e-5) followed by the `mlp` head
(Dense-BN-ReLU of the width of h, then Dense without bias to `output_dim`
and batch norm without offset).
"""

import time


def build(width=64, blocks=(2, 2, 2, 2), output_dim=128, cifar_stem=True):
    """Returns the encoder followed by the head, as one `torch.nn.Module`."""
    import torch
    from torch import nn

    def bn(channels, zero=False):
        layer = nn.BatchNorm2d(channels, eps=1e-5, momentum=0.1)
        if zero:
            nn.init.zeros_(layer.weight)
        return layer

    class Block(nn.Module):
        def __init__(self, cin, cout, stride, projection):
            super().__init__()
            self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.bn1 = bn(cout)
            self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.bn2 = bn(cout, zero=True)
            self.shortcut = None
            if projection:
                self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), bn(cout))

        def forward(self, x):
            y = torch.relu(self.bn1(self.conv1(x)))
            y = self.bn2(self.conv2(y))
            return torch.relu(y + (x if self.shortcut is None else self.shortcut(x)))

    if cifar_stem:
        stem = [nn.Conv2d(3, width, 3, 1, 1, bias=False), bn(width), nn.ReLU()]
    else:
        stem = [nn.Conv2d(3, width, 7, 2, 3, bias=False), bn(width), nn.ReLU(),
                nn.MaxPool2d(3, 2, 1)]
    layers, cin = list(stem), width
    for stage, count in enumerate(blocks):
        cout = width * 2 ** stage
        for index in range(count):
            layers.append(Block(cin, cout, 2 if stage > 0 and index == 0 else 1, index == 0))
            cin = cout
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    head_bn = nn.BatchNorm1d(output_dim, eps=1e-5, momentum=0.1)
    head_bn.bias = None  # batch norm without offset, as the head's last layer
    head = [nn.Linear(cin, cin, bias=False), nn.BatchNorm1d(cin, eps=1e-5, momentum=0.1), nn.ReLU(),
            nn.Linear(cin, output_dim, bias=False), head_bn]
    return nn.Sequential(*layers, *head)


def step_milliseconds(batch_size, size, steps, precision="float32", compile=False,
                      device=None, width=64, blocks=(2, 2, 2, 2), cifar_stem=True, seed=0):
    """Milliseconds of one forward, backward and SGD step of the plain
    module on `2 * batch_size` ready-made views (the floor's trivial loss,
    mean of z squared, as in `throughput.py`).

    Args:
        batch_size: source images; the step sees twice as many views.
        size: image side.
        steps: steps in each of three timed rounds (the median round is
            returned), after three warm-up steps (compilation); the device
            is synchronised only at the end of a round, as `fit` does.
        precision: "float32", or "bfloat16" (autocast, as Keras'
            `mixed_bfloat16`).
        compile: wrap the module in `torch.compile`.
        device: a torch device; default CUDA when available, else CPU.
    """
    import torch

    torch.manual_seed(seed)
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    model = build(width, blocks, cifar_stem=cifar_stem).to(device).to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    views = torch.rand(2 * batch_size, 3, size, size, device=device).to(
        memory_format=torch.channels_last)
    forward = torch.compile(model) if compile else model
    autocast = precision in ("bfloat16", "mixed_bfloat16")

    def step():
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
            z = forward(views)
        loss = z.float().square().mean()
        loss.backward()
        optimizer.step()
        return loss

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    for _ in range(3):
        step()
    sync()
    rounds = []
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(steps):
            step()
        sync()
        rounds.append((time.perf_counter() - start) * 1000 / steps)
    return sorted(rounds)[1]
