// Shared by every console page: copy buttons, confirmations, and the JSON feeds' polling.
"use strict";

window.Console = (function () {
  const body = document.body;

  // GET a feed (same origin, the session cookie); a signed-out session goes to the sign-in page.
  async function feed(url) {
    const response = await fetch(url, { credentials: "same-origin", headers: { "Accept": "application/json" } });
    if (response.status === 401) {
      window.location.assign(body.dataset.signIn + "?expired=1&next=" + encodeURIComponent(window.location.pathname + window.location.search));
      throw new Error("signed out");
    }
    if (!response.ok) throw new Error("feed answered " + response.status);
    return response.json();
  }

  // Call `refresh` every `seconds` while the page is visible (errors are kept quiet: the next poll retries).
  function poll(refresh, seconds) {
    const tick = function () {
      if (document.visibilityState === "visible") refresh().catch(function () {});
    };
    return window.setInterval(tick, seconds * 1000);
  }

  // One table row from a list of cell texts ({text, cls, label}); textContent only: never HTML.
  function row(cells) {
    const tr = document.createElement("tr");
    cells.forEach(function (cell) {
      const td = document.createElement("td");
      td.textContent = cell.text;
      if (cell.cls) td.className = cell.cls;
      if (cell.label !== undefined) td.dataset.label = cell.label;
      tr.appendChild(td);
    });
    return tr;
  }

  function replaceRows(tbody, rows, empty, columns) {
    tbody.replaceChildren();
    if (!rows.length) {
      tbody.appendChild(row([{ text: empty }])).firstChild.colSpan = columns;
      return;
    }
    rows.forEach(function (cells) { tbody.appendChild(row(cells)); });
  }

  const ms = function (v) { return v === null || v === undefined ? "–" : Math.round(v) + " ms"; };
  const rate = function (v) { return v === null || v === undefined ? "–" : (v * 100).toFixed(1) + "%"; };

  document.addEventListener("click", function (event) {
    const button = event.target.closest("[data-copy]");
    if (!button) return;
    const field = document.querySelector(button.dataset.copy);
    field.select();
    const done = function () { button.textContent = "Copied"; };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(field.value).then(done, function () { document.execCommand("copy"); done(); });
    } else {
      document.execCommand("copy");
      done();
    }
  });

  document.addEventListener("submit", function (event) {
    const question = event.target.dataset.confirm;
    if (question && !window.confirm(question)) event.preventDefault();
  });

  return { feed: feed, poll: poll, row: row, replaceRows: replaceRows, ms: ms, rate: rate };
})();
