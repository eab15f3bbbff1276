"""Merging the workers' views of a deployment (no processes): what /health/providers computes."""

from __future__ import annotations

from app.resilience.health import merge, usable

NOW = 1_800_000_000.0


def view(**deployment) -> dict:
    return {"pid": 1, "at": NOW, "deployments": {"d": {"circuit": "closed", "in_flight": 0, "last_error": None,
                                                       "last_error_at": None, "last_ok_at": None, "check": None,
                                                       "samples": [], **deployment}}}


def test_samples_of_every_worker_make_one_latency_and_error_rate():
    a = view(samples=[[NOW - 5, 10.0, True], [NOW - 4, 30.0, True]], last_ok_at=NOW - 4, in_flight=1)
    b = view(samples=[[NOW - 3, 20.0, True], [NOW - 2, 99.0, False], [NOW - 400, 1.0, True]],
             last_error={"message": "provider answered 503", "status": 503}, last_error_at=NOW - 2, in_flight=2)
    health = merge("d", "openai", [a, b], NOW, 30)
    assert health["latency_p50_ms"] == 20.0  # the median of 10, 30, 20; the sample out of the window is left out
    assert (health["requests"], health["failures"], health["error_rate"]) == (4, 1, 0.25)
    assert health["state"] == "down" and health["last_error"]["status"] == 503  # the latest outcome failed
    assert health["in_flight"] == 3 and health["last_error"]["at"].endswith("Z")


def test_an_open_circuit_in_one_worker_shows_and_the_latest_outcome_decides_otherwise():
    closed = view(last_ok_at=NOW - 1)
    opened = view(circuit="open", last_error={"message": "x", "status": None}, last_error_at=NOW - 10)
    health = merge("d", "openai", [closed, opened], NOW, 30)
    assert (health["state"], health["circuit"], health["circuit_open_workers"]) == ("circuit_open", "open", 1)
    assert not usable(health, NOW)
    recovered = merge("d", "openai", [closed, view(circuit="half_open", last_error_at=NOW - 10,
                                                   last_error={"message": "x", "status": None})], NOW, 30)
    assert recovered["state"] == "up" and recovered["circuit"] == "half_open"


def test_down_counts_as_unusable_only_within_the_cooldown():
    failed = view(last_error={"message": "x", "status": 502}, last_error_at=NOW - 5)
    assert not usable(merge("d", "openai", [failed], NOW, 30), NOW)
    assert usable(merge("d", "openai", [failed], NOW, 30), NOW + 30)
    assert usable(merge("d", "openai", [], NOW, 30), NOW)  # never tried: unknown, worth a try
    checked = view(check={"at": NOW - 1, "ok": False, "latency_ms": 3.0, "error": "broken"}, last_ok_at=NOW - 9)
    health = merge("d", "openai", [checked], NOW, 30)
    assert health["state"] == "down" and health["last_check"]["error"] == "broken" and not usable(health, NOW)
