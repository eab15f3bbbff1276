"""A worker's memory follows its live data: freed large buffers go back to the system.

    memory.return_large_blocks()      # gunicorn.conf.py: post_worker_init, once per worker

glibc serves an allocation of 128 KiB or more with a mapping of its own and unmaps it when it is
freed, but it raises that threshold to the size of every such block freed (up to 32 MiB). After
the first large body, the 64 KiB blocks in which a worker reads, spools and sends uploads and
downloads come from the heap, and the heap keeps what is freed: a worker that had passed 24 MB
uploads on stayed 2-4 MB larger, holding no data (measured with a gateway of one worker and
twelve uploads; tests/api/test_media.py asks for less than 2 MB). Setting the thresholds to
glibc's own defaults (128 KiB) fixes them, which turns the adjustment off: blocks of 128 KiB or
more stay mapped and unmapped, and free memory over 128 KiB at the heap's top is returned. With
them the same twelve uploads raised the worker's RSS by under 300 KiB. The standard library has
no binding for mallopt, hence ctypes; where the C library is not glibc nothing changes.
"""

from __future__ import annotations

import ctypes

M_TRIM_THRESHOLD = -1  # glibc's <malloc.h>
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 128 * 1024  # glibc's default, no longer raised
TRIM_THRESHOLD = 128 * 1024  # glibc's default, no longer raised


def return_large_blocks() -> bool:
    """Fix glibc's thresholds in this process; False where there is no mallopt (not glibc)."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
