// The usage page: spend and tokens of the chosen range as bar charts (the data is in the page).
"use strict";

(function () {
  const source = document.getElementById("usage-data");
  if (!source) return;
  const data = JSON.parse(source.textContent);
  function draw() {
    Charts.bars(document.querySelector('canvas[data-chart="cost"]'), data.labels, data.cost, { color: "#2d5bd7" });
    Charts.bars(document.querySelector('canvas[data-chart="tokens"]'), data.labels, data.tokens, { color: "#6b46c1", whole: true });
  }
  draw();
  window.addEventListener("resize", draw);
})();
