"""The machine's IPv4 TCP connections as the kernel lists them (/proc/net/tcp), for tests that
count connections: e.g. that nginx reuses one keep-alive connection to the gateway.

Read from /proc rather than by running `ss` so the tests need nothing beyond Linux itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

# include/net/tcp_states.h
STATES = {1: "ESTABLISHED", 2: "SYN_SENT", 3: "SYN_RECV", 4: "FIN_WAIT1", 5: "FIN_WAIT2", 6: "TIME_WAIT",
          7: "CLOSE", 8: "CLOSE_WAIT", 9: "LAST_ACK", 10: "LISTEN", 11: "CLOSING"}


@dataclass(frozen=True)
class Connection:
    local_port: int
    remote_port: int
    state: str


def connections(table: Path = Path("/proc/net/tcp")) -> list[Connection]:
    found = []
    for line in table.read_text().splitlines()[1:]:
        fields = line.split()
        local, remote, state = fields[1], fields[2], int(fields[3], 16)
        found.append(Connection(int(local.split(":")[1], 16), int(remote.split(":")[1], 16), STATES.get(state, "?")))
    return found


def client_ports(server_port: int) -> dict[int, str]:
    """Every connection to `server_port` on this machine (any state but LISTEN), by the client's
    port: {client port: state as the client's end sees it, else as the server's end does}."""
    ports: dict[int, str] = {}
    for conn in connections():
        if conn.state == "LISTEN":
            continue
        if conn.remote_port == server_port:
            ports[conn.local_port] = conn.state
        elif conn.local_port == server_port:
            ports.setdefault(conn.remote_port, conn.state)
    return ports
