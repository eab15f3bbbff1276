"""A port where connections are refused, for "the provider cannot be reached" (502) tests.

    with refusing_port() as port:
        ... OPENAI_API_URL=http://127.0.0.1:{port}/v1 ...

The socket is bound but never listens: the kernel refuses every connection at once, and the
port stays ours for the whole block, so nothing else can start listening there (unlike a port
picked, released and hoped to stay free).
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def refusing_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]
