"""Process memory policy: give large freed buffers back to the operating system (glibc).

A video's frames are large, short-lived buffers (a 1080p RGB frame is 6.2 MB, its grey image
2.1 MB) allocated in the decode thread and freed in others, between the detector's tensors of
every size. glibc's malloc serves blocks above its mmap threshold with ``mmap`` and returns
them on ``free``, but the threshold is *dynamic*: each freed mmapped block raises it to that
block's size (up to 32 MB), after which frame-sized blocks come from the heaps, where freed
holes between live blocks stay resident. Measured on a whole ``ferbatch run`` of a 1080p clip
(``bench/mem_per_resolution.py``): 1531 MB peak RSS with the dynamic threshold, 1218 MB with a
fixed 1 MiB one (glibc's ``MALLOC_MMAP_THRESHOLD_=1048576``). :func:`return_large_allocations`
sets that threshold with ``mallopt(M_MMAP_THRESHOLD)``, which also turns the dynamic
adjustment off (mallopt(3)).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import sys

log = logging.getLogger(__name__)

#: blocks of at least this many bytes are mmapped and returned to the system when freed
MMAP_THRESHOLD = 1 << 20
_M_MMAP_THRESHOLD = -3  # glibc <malloc.h>
_applied = False


def return_large_allocations(threshold: int = MMAP_THRESHOLD) -> bool:
    """Fix glibc's mmap threshold at ``threshold`` bytes for this process (once); ``True``
    when it is in force. Does nothing (``False``) off Linux, on a C library without
    ``mallopt`` (musl), or when the user set ``MALLOC_MMAP_THRESHOLD_`` themselves (their value
    stands). Never raises."""
    global _applied
    if _applied:
        return True
    if not sys.platform.startswith("linux") or "MALLOC_MMAP_THRESHOLD_" in os.environ:
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    _applied = mallopt(_M_MMAP_THRESHOLD, int(threshold)) == 1
    if _applied:
        log.debug("glibc mmap threshold fixed at %d bytes", threshold)
    return _applied
