// The traffic page: four charts of the last hour, refreshed from /console/api/traffic every 5 s.
"use strict";

(function () {
  const source = document.getElementById("traffic-data");
  if (!source) return;
  const filters = document.getElementById("traffic-filters");
  const C = window.Console;

  function hhmm(iso) { return iso.slice(11, 16); }
  function values(hour, name) { return hour.minutes.map(function (m) { return m[name]; }); }

  function draw(hour) {
    const labels = hour.minutes.map(function (m) { return hhmm(m.minute); });
    const chart = function (name) { return document.querySelector('canvas[data-chart="' + name + '"]'); };
    Charts.line(chart("rpm"), labels, [{ name: "requests", values: values(hour, "requests"), color: "#2d5bd7" }], { whole: true });
    Charts.line(chart("errors"), labels, [{ name: "errors", color: "#c53030",
      values: hour.minutes.map(function (m) { return m.error_rate === null ? null : m.error_rate * 100; }) }], { unit: "%" });
    Charts.line(chart("latency"), labels, [
      { name: "p50", values: values(hour, "p50_ms"), color: "#1f8a4c" },
      { name: "p95", values: values(hour, "p95_ms"), color: "#b7791f" }]);
    Charts.line(chart("tpm"), labels, [{ name: "tokens", values: values(hour, "tokens"), color: "#6b46c1" }], { whole: true });

    const totals = hour.totals;
    document.querySelector('[data-total="requests"]').textContent = totals.requests;
    document.querySelector('[data-total="error_rate"]').textContent = C.rate(totals.error_rate);
    document.querySelector('[data-total="latency"]').textContent = C.ms(totals.p50_ms) + " / " + C.ms(totals.p95_ms);
    document.querySelector('[data-total="tokens"]').textContent = totals.tokens;

    const cells = function (name, label, r) {
      return [{ text: name, label: label }, { text: r.requests, cls: "num", label: "Requests" },
        { text: C.rate(r.error_rate), cls: "num", label: "Error rate" }, { text: C.ms(r.p50_ms), cls: "num", label: "p50" },
        { text: C.ms(r.p95_ms), cls: "num", label: "p95" }, { text: r.tokens, cls: "num", label: "Tokens" }];
    };
    C.replaceRows(document.querySelector("#by-provider tbody"),
      hour.by_provider.map(function (r) { return cells(r.provider, "Provider", r); }), "No requests in the last hour.", 6);
    C.replaceRows(document.querySelector("#by-model tbody"),
      hour.by_model.map(function (r) { return cells(r.provider + "/" + r.model, "Model", r); }), "No requests in the last hour.", 6);
    document.body.dataset.trafficRequests = String(totals.requests);
  }

  let latest = JSON.parse(source.textContent);
  draw(latest);
  window.addEventListener("resize", function () { draw(latest); });
  C.poll(async function () {
    const query = new URLSearchParams(new FormData(filters));
    latest = await C.feed(source.dataset.feed + "?" + query.toString());
    draw(latest);
  }, 5);
})();
