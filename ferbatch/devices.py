"""Execution policy of the models, in one place: device choice, batch sizes, autocast, threads.

Every stage, the trainer and the Ray pool ask this module instead of deciding for themselves,
so ``--device cuda`` means the same thing (and fails the same way) everywhere.

* :func:`resolve_device`: ``auto`` → CUDA when available, else the CPU; an explicit ``cuda[:N]``
  without a usable GPU is a :class:`~ferbatch.errors.ConfigError`, not a traceback later.
* :func:`default_batch_sizes`: frames per detection batch and faces per classification batch
  when the user gave none (measured on the CPU, ``bench/bench_pipeline.py``).
* :func:`inference_autocast` / :func:`training_autocast`: reduced precision where it is safe.
* :func:`detect_concurrency` / :func:`shared_threads`: how many detection batches run at once
  on the CPU and how the intra-op threads are shared among them.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .errors import ConfigError

if TYPE_CHECKING:  # torch is imported where it is used: `ferbatch --help` stays fast
    import torch

#: frames per detection batch on the CPU: one batch per core in flight (as fast as 16, less memory)
CPU_DETECT_BATCH = 8
GPU_DETECT_BATCH = 32
#: faces per classification batch on the CPU: small, so classification overlaps detection
CPU_CLASSIFY_BATCH = 32
GPU_CLASSIFY_BATCH = 256
#: detection batches in flight at once on the CPU, at most (bounds the frames held in memory)
MAX_DETECT_WORKERS = 4

DEVICE_HELP = ("Where the models run: auto (CUDA when available, else the CPU), cpu, cuda, "
               "or cuda:N (GPU N).")


def check_device_name(name: str) -> None:
    """Raise :class:`ConfigError` unless ``name`` is ``auto``, ``cpu`` or ``cuda[:N]``."""
    if name in ("auto", "cpu", "cuda"):
        return
    if name.startswith("cuda:") and name[5:].isdigit():
        return
    raise ConfigError(f"--device must be auto, cpu or cuda[:N], got {name!r}")


def resolve_device(name: str = "auto") -> torch.device:
    """The :class:`torch.device` for ``name`` (``auto``, ``cpu``, ``cuda``, ``cuda:N``).

    Raises :class:`ConfigError` for an unknown name, for ``cuda`` on a machine without a usable
    CUDA device, and for a GPU index the machine does not have.
    """
    import torch

    check_device_name(name)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise ConfigError(f"--device {name}: CUDA is not available on this machine "
                          "(use --device cpu or auto)")
    device = torch.device(name)
    if device.index is not None and device.index >= torch.cuda.device_count():
        raise ConfigError(f"--device {name}: this machine has {torch.cuda.device_count()} "
                          "CUDA device(s)")
    return device


@dataclass(frozen=True)
class BatchSizes:
    """Frames per detection batch and faces per classification batch."""

    detect: int
    classify: int


def default_batch_sizes(device: torch.device, detect: int | None = None,
                        classify: int | None = None) -> BatchSizes:
    """Batch sizes for ``device``; explicit values win over the defaults."""
    cpu = device.type == "cpu"
    return BatchSizes(detect=detect or (CPU_DETECT_BATCH if cpu else GPU_DETECT_BATCH),
                      classify=classify or (CPU_CLASSIFY_BATCH if cpu else GPU_CLASSIFY_BATCH))


def inference_autocast(device: torch.device) -> contextlib.AbstractContextManager:
    """fp16 autocast on CUDA for inference; a no-op on the CPU (bf16 does not pay there for
    the small emotion nets, and changes rows)."""
    import torch

    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.float16)
    return contextlib.nullcontext()


def cpu_bf16_native() -> bool:
    """True when this CPU computes bf16 natively (AVX512-BF16 or AMX).

    Without it (e.g. AVX2-only x86 CPUs) bf16 autocast is emulated and slower than fp32:
    measured on a 2-core AMD EPYC (AVX2), one ``vgg_gap`` width-32 training step of 128 faces
    ran at 12 images/s under bf16 autocast and 120 images/s in fp32.
    """
    import torch

    try:
        return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    except AttributeError:  # private helpers missing in another torch build: stay in fp32
        return False


def training_dtype(device: torch.device, enabled: bool = True) -> torch.dtype | None:
    """The autocast dtype of training on ``device``: bf16 on a GPU that computes it natively
    (Ampere and later: no loss scaling needed, fp32's exponent range), else fp16 on CUDA (then
    with a gradient scaler, :func:`gradient_scaler`); bf16 on a CPU that computes bf16 natively
    (:func:`cpu_bf16_native`); ``None`` (fp32) otherwise or when disabled."""
    import torch

    if not enabled:
        return None
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported(including_emulation=False) \
            else torch.float16
    if device.type == "cpu" and cpu_bf16_native():
        return torch.bfloat16
    return None


def training_autocast(device: torch.device, enabled: bool = True) -> contextlib.AbstractContextManager:
    """Autocast to :func:`training_dtype` on ``device``; a no-op when that is fp32."""
    import torch

    dtype = training_dtype(device, enabled)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def gradient_scaler(device: torch.device, enabled: bool = True) -> torch.amp.GradScaler:
    """A gradient scaler (loss scaling against fp16 gradient underflow, Micikevicius et al.
    2018, "Mixed Precision Training") that is active only when training runs in fp16 on CUDA;
    a pass-through otherwise."""
    import torch

    return torch.amp.GradScaler("cuda", enabled=training_dtype(device, enabled) == torch.float16)


def detect_concurrency(device: torch.device) -> int:
    """Detection batches to run at once: one per intra-op thread on the CPU (capped), one on a
    GPU. Read at call time: Ray sets each worker's thread count."""
    import torch

    if device.type != "cpu":
        return 1
    return max(1, min(torch.get_num_threads(), MAX_DETECT_WORKERS))


@contextlib.contextmanager
def shared_threads(workers: int) -> Iterator[None]:
    """Divide the intra-op threads among ``workers`` concurrent callers for the block.

    ``torch.set_num_threads`` is process-wide, so the old count is restored at the end.
    """
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(max(1, threads // max(1, workers)))
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def upload(array: np.ndarray | torch.Tensor, device: torch.device) -> torch.Tensor:
    """``array`` as a tensor on ``device``. uint8 frames and crops go over the bus as they are
    (4× less than float32) and are converted there; on CUDA from pinned host memory with a
    non-blocking copy, so the transfer overlaps the host's next work."""
    import torch

    tensor = torch.from_numpy(array) if isinstance(array, np.ndarray) else array
    if device.type == "cuda":
        return tensor.pin_memory().to(device, non_blocking=True)
    return tensor.to(device)


def out_of_memory_message(path: str | os.PathLike[str], device: torch.device) -> str:
    """The ``error`` of a video whose analysis ran out of accelerator memory: what happened
    and which options lower the memory a batch needs."""
    return (f"{Path(path).name}: out of memory on {device} (lower --det-batch, --cls-batch or "
            f"--det-max-side, or run fewer workers per GPU)")


def release_memory(device: torch.device) -> None:
    """Give cached allocator blocks back after an out-of-memory error, so the next video starts
    from a clean device."""
    import torch

    if device.type == "cuda":
        torch.cuda.empty_cache()
