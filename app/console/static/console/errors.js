// The recent errors page: the table refreshed from /console/api/errors every 5 s.
"use strict";

(function () {
  const table = document.getElementById("errors");
  if (!table) return;
  const C = window.Console;

  C.poll(async function () {
    const answer = await C.feed(table.dataset.feed);
    C.replaceRows(table.querySelector("tbody"), answer.data.map(function (e) {
      return [{ text: e.time, label: "Time" }, { text: e.request_id, label: "Request id" }, { text: e.route, label: "Route" },
        { text: e.upstream || "–", label: "Upstream" }, { text: e.status, cls: "num", label: "Status" },
        { text: e.message || "–", cls: "message", label: "Message" }];
    }), "No failed requests recorded.", 6);
  }, 5);
})();
