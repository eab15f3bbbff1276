"""Relay a provider's answer to the client as it arrives: an event stream event by event
(`relay`), or any other body chunk by chunk (`relay_bytes`, e.g. audio).

`relay()` is the generator a streamed answer's body is made of (`app.chat.passthrough`):

  * each chunk from the provider is cut at its last blank line; the complete events go to the
    client at once, as they were sent (`event:` lines and all), the partial tail waits for the
    rest of its event (never for more);
  * an optional `look` function sees each block of complete events and returns what to send
    (the same bytes, fewer events, or b"") -- e.g. to read usage or drop the usage-only chunk;
  * a failure after the first byte ends the stream with one last event, `error_event(exc)`
    (the endpoint's: `data: {"error": {...}}` for chat, an `event: error` for the Responses
    and Messages APIs);
  * `close` runs when the stream ends for any reason, the client hanging up included (gunicorn
    closes the response iterator, which closes this generator): it must close the provider's
    response so the provider connection goes away at once.

`relay_bytes()` passes a body on unchanged; a provider that cuts it short cuts the client's
connection too (no clean end), so a truncated file cannot pass as complete.
"""

from __future__ import annotations

import errno
import logging
from collections.abc import Callable, Iterable, Iterator

from app.errors import GatewayError
from app.server.shutdown import SHUTDOWN
from app.streaming import sse
from app.upstream.sse import EventSplitter

log = logging.getLogger("gateway.streaming")

Look = Callable[[bytes], bytes]
ErrorEvent = Callable[[GatewayError], bytes]


def relay(chunks: Iterable[bytes], *, close: Callable[[], None], look: Look | None = None,
          error_event: ErrorEvent = sse.error_event) -> Iterator[bytes]:
    """Yield complete SSE events from `chunks` as they arrive; see the module docstring."""
    splitter = EventSplitter()
    feed = splitter.feed
    try:
        for chunk in chunks:
            SHUTDOWN.check()  # past the shutdown grace period: end with its error event
            block = feed(chunk)
            if block:
                if look is not None:
                    block = look(block)
                    if not block:
                        continue
                yield block
        tail = splitter.rest()
        if tail.strip():
            tail += b"\n\n"
            yield look(tail) if look is not None else tail
    except GatewayError as exc:
        log.warning("stream ended early: %s", exc.message)
        yield error_event(exc)
    except Exception:
        log.exception("stream failed")
        yield error_event(GatewayError("The stream failed inside the gateway.", code="internal_error"))
    finally:
        close()


def relay_bytes(chunks: Iterable[bytes], *, close: Callable[[], None]) -> Iterator[bytes]:
    """Yield the body's chunks as they arrive; see the module docstring."""
    try:
        for chunk in chunks:
            SHUTDOWN.check()
            yield chunk
    except GatewayError as exc:
        log.warning("body ended early: %s", exc.message)
        # gunicorn closes the client connection without ending the body
        raise ConnectionResetError(errno.ECONNRESET, exc.message) from None
    finally:
        close()
