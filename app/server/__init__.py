"""The server edge: what happens to a connection before the Flask app sees a request.

gunicorn runs `worker.GatewayGeventWorker`: its own gevent worker, with these duties added
through its hooks (`handle`, `timeout_ctx`, `handle_request`, `handle_error`, `handle_exit`):

    accept             up to 4 x WORKER_CONNECTIONS connections per worker
    read the request   head and body within SERVER_READ_TIMEOUT of the first byte (408 if not),
                       the body whole, up to SERVER_MAX_REQUEST_BODY_SIZE (413), any framing
    serve it           at most WORKER_CONNECTIONS requests at once run the app
    wait for the next  an idle keep-alive connection is closed after SERVER_IDLE_TIMEOUT

Malformed HTTP is answered in the gateway's JSON envelope (`refusals`), never gunicorn's HTML.
On SIGTERM idle connections close at once and requests in flight get SERVER_WRITE_TIMEOUT to
finish; then `shutdown.SHUTDOWN` says the grace period is over and whatever still runs is ended
with ServerShuttingDown (a stream's last event is that error).

This package is imported by gunicorn's master (the worker class is loaded before the fork):
its modules import the Flask side of the app (`app.errors` and up) only inside functions,
after the worker has forked and gevent has patched the standard library.
"""
