"""Batch-size bucketing for CPU inference.

oneDNN (PyTorch's CPU convolution backend) creates and caches kernels per input shape; a stage
that sees a new batch size on every call keeps creating them and its memory grows (measured:
1.55 GB peak for a 472-frame run with unbucketed R-Net/O-Net/classifier batches, 1.0 GB with
buckets). Padding each batch to one of a few sizes keeps the shape count small while wasting
little work: powers of two up to ``step``, then multiples of ``step``.
"""

from __future__ import annotations

import torch


def bucket_rows(n: int, step: int = 64) -> int:
    """The padded batch size for ``n`` rows: 1, 2, 4, … up to ``step``, then multiples of it."""
    if n <= 0:
        return 0
    if n <= step:
        return 1 << (n - 1).bit_length()
    return -(-n // step) * step


def pad_rows(x: torch.Tensor, step: int = 64) -> torch.Tensor:
    """``x`` with zero rows appended up to :func:`bucket_rows` of its length."""
    extra = bucket_rows(x.shape[0], step) - x.shape[0]
    if extra <= 0:
        return x
    return torch.cat([x, x.new_zeros((extra, *x.shape[1:]))])
