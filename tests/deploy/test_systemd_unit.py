"""deploy/inference-gateway.service: valid for systemd, hardened, and its commands do what the
runbook says. (systemd is not running here: `systemd-analyze` checks the file offline; the
commands run directly. The zero-downtime tests start gunicorn with the unit's ExecStart.)"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from app.config import Settings
from tests.support.live_gateway import gateway_environ
from tests.support.systemd_unit import gunicorn_options, service_settings, unit_text


def systemd_analyze() -> str:
    found = shutil.which("systemd-analyze")
    assert found, "systemd-analyze is missing (Debian: apt-get install -y systemd); .ci/run installs it"
    return found


def swapped_unit(tmp_path: Path) -> Path:
    (tmp_path / "etc").mkdir(exist_ok=True)
    path = tmp_path / "inference-gateway.service"
    path.write_text(unit_text(config_dir=tmp_path / "etc", run_dir=tmp_path / "run"))
    return path


def test_systemd_analyze_verify_finds_nothing_to_say(tmp_path):
    result = subprocess.run([systemd_analyze(), "verify", str(swapped_unit(tmp_path))], check=False,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and (result.stdout + result.stderr).strip() == "", result.stderr


def test_hardening_keeps_the_exposure_level_ok(tmp_path):
    # systemd's own score, 0 (locked down) to 10; 2.0 and below is what it calls OK.
    result = subprocess.run([systemd_analyze(), "security", "--offline=yes", "--threshold=20",
                             str(swapped_unit(tmp_path))], check=False, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout[-600:]


def test_stop_waits_for_streams_and_reload_is_a_checked_hup(tmp_path):
    service = service_settings(unit_text(config_dir=tmp_path / "etc", run_dir=tmp_path / "run"))
    assert service["KillSignal"] == ["SIGTERM"] and service["KillMode"] == ["mixed"]
    # systemd must not SIGKILL before gunicorn's graceful timeout (SERVER_WRITE_TIMEOUT) is over
    assert int(service["TimeoutStopSec"][0]) > Settings.from_environ({}).server_write_timeout
    check, hup = service["ExecReload"]
    assert hup == "/bin/kill -HUP $MAINPID" and os.access("/bin/kill", os.X_OK)
    assert "--check-config" in gunicorn_options(check)
    start = gunicorn_options(service["ExecStart"][0])
    assert start[start.index("--pid") + 1] == service["PIDFile"][0]  # systemd reads the pid gunicorn writes
    assert service["Type"] == ["notify"]  # gunicorn tells systemd when it is ready


def test_the_reload_check_refuses_a_bad_setting_in_one_line(tmp_path):
    service = service_settings(unit_text(config_dir=tmp_path / "etc", run_dir=tmp_path / "run"))
    command = service["ExecReload"][0].split()
    config_dir = Path(service["WorkingDirectory"][0])
    config_dir.mkdir()
    env = gateway_environ(dict(value.split("=", 1) for value in service["Environment"]))

    def check(dotenv: str) -> subprocess.CompletedProcess:
        (config_dir / ".env").write_text(dotenv)
        return subprocess.run(command, cwd=config_dir, env=env, check=False, capture_output=True, text=True,
                              timeout=60)

    refused = check("SERVER_HOST=127.0.0.1\nCLIENT_TIMEOUT=banana\n")
    assert refused.returncode == 2
    assert (refused.stdout + refused.stderr).strip().splitlines() == [
        "inference-gateway: invalid CLIENT_TIMEOUT='banana': expected a duration such as 30s, 1m30s or 500ms"]
    assert check("SERVER_HOST=127.0.0.1\nCLIENT_TIMEOUT=45s\n").returncode == 0
