"""The benchmarks' own pieces: the plain-torch reference is the same
network as the Keras one, and the GPU summary reads what phases left."""

import collections
import json
import pathlib
import sys

import numpy as np
import pytest

BENCHMARKS = pathlib.Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))


def _keras_shapes():
    from contrastive.registry import build

    encoder = build("encoders", {"name": "resnet18"}, "encoder")
    head = build("heads", {"name": "mlp", "output_dim": 128}, "head")
    head(encoder(np.zeros((2, 32, 32, 3), "float32")))
    shapes = collections.Counter()
    for variable in encoder.weights + head.weights:
        shape = tuple(variable.shape)
        if len(shape) == 4:  # HWIO -> OIHW
            shape = (shape[3], shape[2], shape[0], shape[1])
        elif len(shape) == 2:  # (in, out) -> (out, in)
            shape = shape[::-1]
        shapes[shape] += 1
    return shapes


def test_torch_reference_is_the_keras_network():
    torch = pytest.importorskip("torch")
    del torch
    import torch_reference

    module = torch_reference.build()
    shapes = collections.Counter()
    for name, tensor in list(module.named_parameters()) + list(module.named_buffers()):
        if not name.endswith("num_batches_tracked"):
            shapes[tuple(tensor.shape)] += 1
    assert shapes == _keras_shapes()


def test_torch_reference_step_runs():
    pytest.importorskip("torch")
    import torch_reference

    ms = torch_reference.step_milliseconds(batch_size=2, size=8, steps=1, device="cpu")
    assert np.isfinite(ms) and ms > 0


def test_gpu_summary_reports_missing_phases_and_partial_runs(tmp_path, capsys):
    import gpu_summary

    (tmp_path / "throughput-jax.json").write_text(json.dumps({
        "device": "GPU X", "full_images_per_second": 90.0,
        "floor_images_per_second": 100.0, "ratio": 0.9}))
    (tmp_path / "cifar10-metrics.csv").write_text("epoch,loss\n0,6.1\n1,5.9\n")
    gpu_summary.main([str(tmp_path)])
    out = capsys.readouterr().out
    assert "GPU X" in out
    assert "jax full / floor: 0.9" in out
    assert "cifar10 epochs reached: 2" in out
    assert "cifar10 last loss: 5.9" in out
    assert "torch throughput: missing" in out


def test_gpu_summary_of_a_recipe_run_shows_its_changes_and_no_other_phase(tmp_path, capsys):
    import gpu_summary

    (tmp_path / "cifar10-jax.json").write_text(json.dumps({
        "device": "GPU X", "epochs": 100, "eval": {"knn_accuracy": 0.8, "linear_accuracy": 0.85},
        "overrides": ["train.verbose=2", "schedule.warmup=0"]}))
    gpu_summary.main([str(tmp_path), "--only", "cifar10"])
    out = capsys.readouterr().out
    assert "cifar10 --set: train.verbose=2; schedule.warmup=0" in out
    assert "cifar10 linear top-1: 0.85" in out
    assert "missing" not in out
    gpu_summary.main([str(tmp_path)])
    assert "torch throughput: missing" in capsys.readouterr().out


def test_gpu_summary_reports_the_traced_torch_step(tmp_path, capsys):
    import gpu_summary

    (tmp_path / "throughput-torch.json").write_text(json.dumps({
        "device": "GPU X", "full_images_per_second": 800.0, "traced_step": True,
        "traced_step_compiled": True, "compiled_vs_traced": 2e-6, "first_epoch_seconds": 61.5}))
    (tmp_path / "overhead-torch.json").write_text(json.dumps({
        "keras_images_per_second": 500.0, "torch_compile_images_per_second": 1000.0}))
    gpu_summary.main([str(tmp_path)])
    out = capsys.readouterr().out
    assert "torch full step, source images/s: 800.0" in out
    assert "torch traced step compiled: True" in out
    assert "torch compiled vs traced, max rel. diff: 2e-06" in out
    assert "torch full step / plain compiled torch floor: 0.8" in out
    assert "torch floor" not in out.replace("plain compiled torch floor", "")


def test_the_decode_benchmark_pipelines_give_224_pixel_images(tmp_path):
    pytest.importorskip("tensorflow")
    import decode_rate

    images, origin = decode_rate.sources(None, 3)
    paths, kb = decode_rate.write_jpegs(tmp_path, images, (120, 90))
    assert origin == "synthetic smooth fields" and len(paths) == 3 and kb > 0
    for name in decode_rate.PIPELINES:
        image = decode_rate.pipeline(name, side=32)(paths[0], [1, 2])
        assert tuple(image.shape) == (32, 32, 3) and image.dtype.name == "uint8"
    assert decode_rate.rate(paths, "fused", 1, seconds=0.05, batch=2) > 0
