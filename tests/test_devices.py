"""The execution policy (``ferbatch.devices``): device names, CUDA that is not there, batch
sizes, autocast and the sharing of torch threads."""

from __future__ import annotations

import contextlib
import warnings

import pytest
import torch

from ferbatch.devices import (
    CPU_CLASSIFY_BATCH,
    CPU_DETECT_BATCH,
    GPU_CLASSIFY_BATCH,
    GPU_DETECT_BATCH,
    MAX_DETECT_WORKERS,
    default_batch_sizes,
    detect_concurrency,
    inference_autocast,
    resolve_device,
    shared_threads,
    training_autocast,
)
from ferbatch.errors import ConfigError


@pytest.fixture()
def no_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


def test_cuda_without_cuda_is_a_config_error(no_cuda: None) -> None:
    assert resolve_device("auto") == torch.device("cpu")
    assert resolve_device("cpu") == torch.device("cpu")
    for name in ("cuda", "cuda:0"):
        with pytest.raises(ConfigError, match=f"--device {name}: CUDA is not available"):
            resolve_device(name)


@pytest.mark.parametrize("name", ["gpu", "cuda:", "cuda:x", "CPU", "", "mps"])
def test_unknown_device_names_are_refused(name: str) -> None:
    with pytest.raises(ConfigError, match="device must be auto, cpu or cuda"):
        resolve_device(name)


def test_a_gpu_index_the_machine_lacks_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("auto") == torch.device("cuda")
    assert resolve_device("cuda:1") == torch.device("cuda", 1)
    with pytest.raises(ConfigError, match="this machine has 2 CUDA device"):
        resolve_device("cuda:2")


def test_batch_sizes_follow_the_device_and_explicit_values_win() -> None:
    cpu, gpu = torch.device("cpu"), torch.device("cuda")
    sizes = default_batch_sizes(cpu)
    assert (sizes.detect, sizes.classify) == (CPU_DETECT_BATCH, CPU_CLASSIFY_BATCH)
    sizes = default_batch_sizes(gpu)
    assert (sizes.detect, sizes.classify) == (GPU_DETECT_BATCH, GPU_CLASSIFY_BATCH)
    mixed = default_batch_sizes(cpu, detect=3)
    assert (mixed.detect, mixed.classify) == (3, CPU_CLASSIFY_BATCH)
    assert CPU_DETECT_BATCH < GPU_DETECT_BATCH and CPU_CLASSIFY_BATCH < GPU_CLASSIFY_BATCH


def test_reduced_precision_only_where_it_is_safe() -> None:
    cpu = torch.device("cpu")
    assert isinstance(inference_autocast(cpu), contextlib.nullcontext)
    assert isinstance(training_autocast(cpu, enabled=False), contextlib.nullcontext)
    with inference_autocast(cpu):
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.float32
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "CUDA is not available ... Disabling autocast" here
        cuda = inference_autocast(torch.device("cuda"))
    assert isinstance(cuda, torch.autocast) and cuda.fast_dtype == torch.float16


def test_detection_threads_are_shared_and_restored() -> None:
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(4)
        assert detect_concurrency(torch.device("cpu")) == min(4, MAX_DETECT_WORKERS)
        assert detect_concurrency(torch.device("cuda")) == 1
        with shared_threads(2):
            assert torch.get_num_threads() == 2
        assert torch.get_num_threads() == 4
        with pytest.raises(RuntimeError), shared_threads(8):  # never below one thread
            assert torch.get_num_threads() == 1
            raise RuntimeError("the block failed")
        assert torch.get_num_threads() == 4
        torch.set_num_threads(1)
        assert detect_concurrency(torch.device("cpu")) == 1
    finally:
        torch.set_num_threads(before)
