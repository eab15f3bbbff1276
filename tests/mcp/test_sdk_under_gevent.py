"""Why app/mcp/client.py exists: the `mcp` SDK's client cannot serve concurrent requests in a
gevent worker. Each greenlet would need its own asyncio loop in the one OS thread, and asyncio
refuses a second running loop. If this test ever fails, the SDK has become usable here: revisit
the decision (see the client's docstring)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

PROBE = textwrap.dedent("""
    from gevent import monkey; monkey.patch_all()
    import asyncio, sys, gevent
    from mcp import Client

    async def use(url):
        async with Client(url) as client:
            await client.call_tool("slow_echo", {"text": "x", "seconds": 0.5})

    def request(url):  # what one gevent-served request would do
        asyncio.run(use(url))

    greenlets = [gevent.spawn(request, sys.argv[1]) for _ in range(2)]
    gevent.joinall(greenlets, timeout=20)
    print([type(g.exception).__name__ if g.exception else "ok" for g in greenlets])
""")


def test_the_sdk_client_cannot_run_two_requests_at_once_in_a_gevent_worker(mcp_server):
    done = subprocess.run([sys.executable, "-c", PROBE, mcp_server.url], check=False, capture_output=True,
                          text=True, timeout=60)
    assert done.stdout.strip() == "['ok', 'RuntimeError']", done.stdout + done.stderr[-2000:]
    assert "cannot be called from a running event loop" in done.stderr
