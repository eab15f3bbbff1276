"""deploy/inference-gateway.service as the tests read it: the file with the host's paths swapped
for a test's, and its [Service] settings and commands.

    text = unit_text(config_dir=tmp_path / "etc", run_dir=tmp_path / "run")
    service = service_settings(text)          # {"ExecReload": [..., ...], "PIDFile": [...], ...}
    gunicorn_options(service["ExecStart"][0])  # ["--config", ".../gunicorn.conf.py", "--pid", ...]
"""

from __future__ import annotations

import shlex
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "deploy" / "inference-gateway.service"
# The unit's layout and what a test puts there instead.
CODE_DIR, CONFIG_DIR, RUN_DIR = "/opt/inference-gateway", "/etc/inference-gateway", "/run/inference-gateway"


def unit_text(*, config_dir: Path, run_dir: Path) -> str:
    text = UNIT.read_text()
    for host_path, test_path in ((CODE_DIR, ROOT), (CONFIG_DIR, config_dir), (RUN_DIR, run_dir)):
        assert host_path in text, f"the unit no longer mentions {host_path}"
        text = text.replace(host_path, str(test_path))
    return text


def service_settings(text: str) -> dict[str, list[str]]:
    """Every `Key=value` of the [Service] section, in order (a key may repeat, e.g. ExecReload)."""
    found: dict[str, list[str]] = {}
    section = None
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line
        elif section == "[Service]":
            key, _, value = line.partition("=")
            found.setdefault(key, []).append(value)
    return found


def gunicorn_options(command: str) -> list[str]:
    """The options of a `.../gunicorn [options] wsgi:app` command line (binary and app left out)."""
    words = shlex.split(command)
    assert Path(words[0]).name == "gunicorn" and words[-1] == "wsgi:app", command
    return words[1:-1]
