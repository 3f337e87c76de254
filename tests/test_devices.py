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
    cpu_bf16_native,
    default_batch_sizes,
    detect_concurrency,
    gradient_scaler,
    inference_autocast,
    resolve_device,
    shared_threads,
    training_autocast,
    training_dtype,
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


@pytest.mark.parametrize("bf16", [True, False])
def test_training_precision_on_cuda_is_bf16_or_fp16_with_loss_scaling(
        bf16: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """A GPU with native bf16 trains in bf16 (nothing to scale); an older one in fp16, and only
    then is the gradient scaler active. The CPU scales nothing."""
    calls: list[bool] = []

    def supported(including_emulation: bool = True) -> bool:
        calls.append(including_emulation)
        return bf16

    monkeypatch.setattr(torch.cuda, "is_bf16_supported", supported)
    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    assert training_dtype(cuda) == (torch.bfloat16 if bf16 else torch.float16)
    assert calls == [False]  # emulated bf16 is not native: it would be slow
    assert training_dtype(cuda, enabled=False) is None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "CUDA is not available ... Disabling" here
        auto = training_autocast(cuda)
    assert isinstance(auto, torch.autocast) and auto.fast_dtype == training_dtype(cuda)
    made: list[tuple[str, bool]] = []  # what the scaler is asked for (CUDA may be absent here)
    monkeypatch.setattr(torch.amp, "GradScaler",
                        lambda device, enabled: made.append((device, enabled)))
    gradient_scaler(cuda), gradient_scaler(cuda, False), gradient_scaler(cpu)
    assert made == [("cuda", not bf16), ("cuda", False), ("cuda", False)]
    assert training_dtype(cpu) == (torch.bfloat16 if cpu_bf16_native() else None)


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
