// The providers page: the table refreshed from /console/api/providers every 5 s.
"use strict";

(function () {
  const table = document.getElementById("providers");
  if (!table) return;
  const C = window.Console;

  function cells(d) {
    const hour = d.last_hour || {};
    const error = d.last_error;
    return [
      { text: d.id + (d.kind !== d.id ? " (" + d.kind + ")" : ""), label: "Deployment" },
      { text: d.state.replace("_", " "), label: "State" },
      { text: d.circuit.replace("_", " ") + (d.circuit_open_workers ? " (" + d.circuit_open_workers + " open)" : ""), label: "Circuit" },
      { text: C.ms(d.latency_p50_ms), cls: "num", label: "p50 (window)" },
      { text: C.rate(d.error_rate) + " of " + d.requests, cls: "num", label: "Errors (window)" },
      { text: hour.requests || 0, cls: "num", label: "Requests (1 h)" },
      { text: C.rate(hour.error_rate), cls: "num", label: "Error rate (1 h)" },
      { text: C.ms(hour.p50_ms) + " / " + C.ms(hour.p95_ms), cls: "num", label: "p50 / p95 (1 h)" },
      { text: error ? ((error.status || "") + " " + error.message + " " + error.at).trim() : "–", cls: "message", label: "Last error" },
    ];
  }

  C.poll(async function () {
    const snapshot = await C.feed(table.dataset.feed);
    const tbody = table.querySelector("tbody");
    C.replaceRows(tbody, snapshot.data.map(cells), "No provider is configured.", 9);
    // the state as a badge, as the server renders it
    snapshot.data.forEach(function (d, i) {
      const cell = tbody.rows[i] && tbody.rows[i].cells[1];
      if (!cell) return;
      const badge = document.createElement("span");
      badge.className = "badge state-" + d.state;
      badge.textContent = cell.textContent;
      cell.replaceChildren(badge);
    });
  }, 5);
})();
