"""The metrics the gateway records, and the signal receivers that feed the token and tool counters.

Names and labels of the original gateway, so existing dashboards keep working:

    llm_responses_total                 counter    provider, request_method, request_path, status_code
    llm_request_duration                histogram  ms; provider, request_method, request_path
    llm_usage_prompt_tokens_total       counter    provider, model   (streams included)
    llm_usage_completion_tokens_total   counter    provider, model
    llm_usage_total_tokens_total        counter    provider, model
    llm_tool_calls_total                counter    provider, model, tool_type, tool_name (bounded
                                                   like `model`: TELEMETRY_MAX_MODEL_LABELS per tool_type)
    llm_usage_cost_usd_total            counter    provider, model, key_name (app/accounts' prices;
                                                   key_name is the virtual key's, else empty)

and our own:

    llm_upstream_retries_total            counter  deployment          a failed try tried again on it
    llm_upstream_fallbacks_total          counter  deployment, to      an alias left `deployment` for `to`
    llm_circuit_transitions_total         counter  deployment, state   its breaker became open/half_open/closed
    llm_retry_budget_exhausted_total      counter  deployment          a retry or fallback not made: budget spent
        (app/resilience; `deployment` is a provider id or a deployment name of the configuration
        file, so the label values are bounded by configuration; `provider` above is the
        deployment that served)

    llm_gateway_overhead_duration       histogram  ms; request_method, request_path
        wall time of a request inside the app minus the time spent waiting for providers
        (every request but the public probes, GET /health and /health/ready)
    llm_time_to_first_token             histogram  ms; provider, model
        streams: from the app receiving the request to the first body byte handed to gunicorn

`request_path` is the matched route (`/v1/chat/completions`, `/proxy/<provider>/<path:path>`),
never the raw path, so a client cannot create unbounded series; unmatched paths are `unmatched`.
`model` is the model as the provider knows it, bounded per provider (`model_labels`: beyond
TELEMETRY_MAX_MODEL_LABELS distinct models, `other`). Under gunicorn the values live in
prometheus-client's multiprocess files and the master sums them (see `exporter`).
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.metrics import MetricWrapperBase

from app.telemetry.model_labels import ModelLabels

# The original's buckets (1..10000 ms), then room for long streams.
REQUEST_BUCKETS_MS = (1, 5, 10, 25, 50, 75, 100, 250, 500, 750, 1000, 2500, 5000, 7500, 10000,
                      30000, 60000, 120000, 300000)
# The gateway's own time is usually well under a millisecond.
OVERHEAD_BUCKETS_MS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 10000)


class Children(dict):
    """A metric's labelled children by label values, looked up once (`labels()` validates and locks)."""

    __slots__ = ("metric",)

    def __init__(self, metric: MetricWrapperBase):
        super().__init__()
        self.metric = metric

    def __missing__(self, labels: tuple[str, ...]) -> Any:
        child = self[labels] = self.metric.labels(*labels)
        return child


class Metrics:
    """One set of metric objects per app, in the app's own registry (tests read it directly).

    The request path uses the `Children` caches; their size is bounded like the label values
    (providers, route templates, methods, status codes, models).
    """

    def __init__(self, models: ModelLabels | None = None) -> None:
        self.models = models or ModelLabels(50)  # the `model` label's values (bounded)
        # `tool_name` comes from the model's answer (a client's own tools: any name), so it is
        # bounded the same way, per tool_type; beyond the limit a tool is counted as `other`
        self.tool_names = ModelLabels(self.models.limit)
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.responses = Counter("llm_responses", "Responses to provider-routed requests.",
                                 ("provider", "request_method", "request_path", "status_code"), registry=r)
        self.request_duration = Histogram(
            "llm_request_duration", "Duration of provider-routed requests in milliseconds, streams until their end.",
            ("provider", "request_method", "request_path"), buckets=REQUEST_BUCKETS_MS, registry=r)
        self.prompt_tokens = Counter("llm_usage_prompt_tokens", "Prompt tokens reported by providers.",
                                     ("provider", "model"), registry=r)
        self.completion_tokens = Counter("llm_usage_completion_tokens", "Completion tokens reported by providers.",
                                         ("provider", "model"), registry=r)
        self.total_tokens = Counter("llm_usage_total_tokens", "Total tokens reported by providers.",
                                    ("provider", "model"), registry=r)
        self.tool_calls = Counter("llm_tool_calls", "Tool calls made by models.",
                                  ("provider", "model", "tool_type", "tool_name"), registry=r)
        self.gateway_overhead = Histogram(
            "llm_gateway_overhead_duration",
            "Milliseconds a request spent in the gateway itself: its wall time in the app minus the time spent "
            "waiting for providers.",
            ("request_method", "request_path"), buckets=OVERHEAD_BUCKETS_MS, registry=r)
        self.time_to_first_token = Histogram(
            "llm_time_to_first_token",
            "Streams: milliseconds from the app receiving the request to the first body byte sent.",
            ("provider", "model"), buckets=REQUEST_BUCKETS_MS, registry=r)
        self.retries = Counter("llm_upstream_retries", "Failed upstream tries tried again on the same deployment.",
                               ("deployment",), registry=r)
        self.fallbacks = Counter("llm_upstream_fallbacks", "Calls an alias moved from a failed deployment to its next target.",
                                 ("deployment", "to"), registry=r)
        self.circuit_transitions = Counter("llm_circuit_transitions", "Circuit breaker state changes per deployment.",
                                           ("deployment", "state"), registry=r)
        self.budget_exhausted = Counter("llm_retry_budget_exhausted",
                                        "Retries or fallbacks not made because the worker's retry budget was spent.",
                                        ("deployment",), registry=r)
        self.usage_cost = Counter("llm_usage_cost_usd", "US dollars spent, priced by the gateway's price table.",
                                  ("provider", "model", "key_name"), registry=r)
        self.responses_by = Children(self.responses)
        self.request_duration_by = Children(self.request_duration)
        self.gateway_overhead_by = Children(self.gateway_overhead)
        self.time_to_first_token_by = Children(self.time_to_first_token)
        self.prompt_tokens_by = Children(self.prompt_tokens)
        self.completion_tokens_by = Children(self.completion_tokens)
        self.total_tokens_by = Children(self.total_tokens)

    # signal receivers (app.signals); sender is the app

    def on_completion_usage(self, sender: Any, *, provider: str, model: str, usage: Any, **_: Any) -> None:
        if not isinstance(usage, dict):
            return
        prompt = _count(usage.get("prompt_tokens"))
        completion = _count(usage.get("completion_tokens"))
        total = _count(usage.get("total_tokens")) or prompt + completion
        provider = provider or "unknown"
        labels = (provider, self.models(provider, model))
        if prompt:
            self.prompt_tokens_by[labels].inc(prompt)
        if completion:
            self.completion_tokens_by[labels].inc(completion)
        if total:
            self.total_tokens_by[labels].inc(total)

    def on_tool_called(self, sender: Any, *, provider: str, model: str, tool_type: str, tool_name: str,
                       **_: Any) -> None:
        provider = provider or "unknown"
        self.tool_calls.labels(provider, self.models(provider, model), tool_type,
                               self.tool_names(tool_type, tool_name)).inc()


    def on_usage_recorded(self, sender: Any, *, provider: str, model: str, key_name: str, cost_usd: float,
                          **_: Any) -> None:
        provider = provider or "unknown"
        self.usage_cost.labels(provider, self.models(provider, model), key_name or "").inc(max(cost_usd, 0.0))

    def on_upstream_retried(self, sender: Any, *, deployment: str, **_: Any) -> None:
        self.retries.labels(deployment).inc()

    def on_upstream_fell_back(self, sender: Any, *, deployment: str, to: str, **_: Any) -> None:
        self.fallbacks.labels(deployment, to).inc()

    def on_circuit_changed(self, sender: Any, *, deployment: str, state: str, **_: Any) -> None:
        self.circuit_transitions.labels(deployment, state).inc()

    def on_retry_budget_exhausted(self, sender: Any, *, deployment: str, **_: Any) -> None:
        self.budget_exhausted.labels(deployment).inc()


def _count(value: Any) -> int:
    """A token count as a provider reported it; anything that is not a non-negative number counts 0."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        return 0
    return int(value)
