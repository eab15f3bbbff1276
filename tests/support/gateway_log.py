"""Reading a live gateway's log (JSON lines, as ENVIRONMENT=production writes them)."""

from __future__ import annotations

import json


def access_lines(log_text: str) -> list[dict]:
    """The gateway's access lines; a line still being written is left for the next look."""
    found = []
    for line in log_text.splitlines():
        if line.startswith('{"') and '"logger": "gateway.access"' in line:
            try:
                found.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return found
