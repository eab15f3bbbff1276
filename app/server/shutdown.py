"""Whether this worker's shutdown grace period is over.

The worker (`GatewayGeventWorker`) ends it SERVER_WRITE_TIMEOUT after SIGTERM, and at that
moment also raises ServerShuttingDown in every greenlet still serving. Code that keeps a response
going by itself calls `SHUTDOWN.check()` between steps, so that an error swallowed on the way
(a failing tool, a listener) cannot keep a stream alive past the grace period:

    for chunk in chunks:
        SHUTDOWN.check()        # raises ServerShuttingDown once the grace period is over
"""

from __future__ import annotations


class Shutdown:
    def __init__(self) -> None:
        self._message: str | None = None

    @property
    def grace_over(self) -> bool:
        return self._message is not None

    def end_grace_period(self, grace: float) -> None:
        self._message = (f"The gateway is shutting down: this request was still running at the end of "
                         f"its {grace:g}s grace period (SERVER_WRITE_TIMEOUT) and has been ended.")

    def error(self) -> Exception:
        from app.errors import ServerShuttingDown

        return ServerShuttingDown(self._message or "The gateway is shutting down.")

    def check(self) -> None:
        if self._message is not None:
            raise self.error()


SHUTDOWN = Shutdown()
