"""Batch sizes (``ferbatch.batching``): few distinct shapes, bounded padding."""

from __future__ import annotations

import torch

from ferbatch.batching import bucket_rows, pad_rows


def test_batch_buckets_are_few_and_padding_is_bounded() -> None:
    assert [bucket_rows(n) for n in (0, 1, 2, 3, 5, 64, 65, 128, 129)] == [0, 1, 2, 4, 8, 64, 128, 128, 192]
    sizes = {bucket_rows(n) for n in range(1, 1025)}
    assert len(sizes) == 7 + 15  # 1..64 as powers of two, then multiples of 64 up to 1024
    assert all(n <= bucket_rows(n) < 2 * n for n in range(1, 1025))
    x = torch.ones(5, 3)
    padded = pad_rows(x)
    assert padded.shape == (8, 3) and bool((padded[5:] == 0).all()) and pad_rows(padded) is padded
