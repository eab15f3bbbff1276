// Small charts on <canvas>, drawn here rather than by a charting library: the console ships no
// build step and loads nothing from another site, and two chart kinds need a hundred lines.
//   Charts.line(canvas, labels, [{name, values, color}], {unit, whole})   a time series (nulls leave gaps)
//   Charts.bars(canvas, labels, values, {color, unit, whole})             one bar per label
// `whole`: the values are counts, so the axis steps are whole numbers.
"use strict";

window.Charts = (function () {
  const INK = "#5f6b7a", GRID = "#e6e9ef", FONT = "11px system-ui, sans-serif";
  const PAD = { left: 52, right: 10, top: 10, bottom: 24 };

  // Size the canvas for the screen's pixel density; the drawing context in CSS pixels.
  function prepare(canvas) {
    const ratio = window.devicePixelRatio || 1;
    const width = canvas.clientWidth || 320;
    const height = Number(canvas.getAttribute("height")) || 180;
    if (!canvas.dataset.cssHeight) canvas.dataset.cssHeight = String(height);
    const cssHeight = Number(canvas.dataset.cssHeight);
    canvas.style.height = cssHeight + "px";
    canvas.width = Math.round(width * ratio);
    canvas.height = Math.round(cssHeight * ratio);
    const ctx = canvas.getContext("2d");
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, width, cssHeight);
    ctx.font = FONT;
    return { ctx: ctx, width: width, height: cssHeight };
  }

  // The axis top: four equal steps of a round size (1, 1.5, 2, 2.5, 3, 4, 5, 6 or 8 times a power of
  // ten), whole numbers when the values are counts.
  function niceMax(value, whole) {
    if (!(value > 0)) return whole ? 4 : 1;
    const rough = value / 4, power = Math.pow(10, Math.floor(Math.log10(rough)));
    let step = 10 * power;
    for (const m of [1, 1.5, 2, 2.5, 3, 4, 5, 6, 8]) if (rough <= m * power) { step = m * power; break; }
    if (whole) step = Math.max(1, Math.ceil(step));
    return step * 4;
  }

  function format(value) {
    if (value >= 1e6) return (value / 1e6).toFixed(1) + "M";
    if (value >= 1e3) return (value / 1e3).toFixed(1) + "k";
    return Number.isInteger(value) ? String(value) : String(Number(value.toFixed(value < 1 ? 3 : 1)));
  }

  function axes(box, top, labels, unit) {
    const ctx = box.ctx, plotW = box.width - PAD.left - PAD.right, plotH = box.height - PAD.top - PAD.bottom;
    ctx.strokeStyle = GRID;
    ctx.fillStyle = INK;
    ctx.lineWidth = 1;
    ctx.textAlign = "right";
    ctx.textBaseline = "middle";
    for (let i = 0; i <= 4; i++) {
      const y = PAD.top + plotH - (plotH * i) / 4;
      ctx.beginPath();
      ctx.moveTo(PAD.left, y + 0.5);
      ctx.lineTo(PAD.left + plotW, y + 0.5);
      ctx.stroke();
      ctx.fillText(format((top * i) / 4) + (unit || ""), PAD.left - 6, y);
    }
    ctx.textAlign = "center";
    ctx.textBaseline = "top";
    const every = Math.max(1, Math.ceil(labels.length / Math.max(1, Math.floor(plotW / 70))));
    labels.forEach(function (label, i) {
      if (i % every !== 0 && i !== labels.length - 1) return;
      const x = PAD.left + (labels.length === 1 ? plotW / 2 : (plotW * i) / (labels.length - 1));
      ctx.fillText(label, Math.min(Math.max(x, PAD.left + 15), PAD.left + plotW - 15), PAD.top + plotH + 6);
    });
    return { plotW: plotW, plotH: plotH };
  }

  // Top left: the newest minutes, where the data is, are on the right.
  function legend(box, series) {
    const ctx = box.ctx;
    let x = PAD.left + 6;
    ctx.textAlign = "left";
    ctx.textBaseline = "top";
    series.forEach(function (s) {
      ctx.fillStyle = s.color;
      ctx.fillText(s.name, x, PAD.top + 2);
      x += ctx.measureText(s.name).width + 14;
    });
  }

  function line(canvas, labels, series, options) {
    const box = prepare(canvas);
    const values = series.flatMap(function (s) { return s.values.filter(function (v) { return v !== null; }); });
    const opts = options || {};
    const top = niceMax(Math.max(0, ...values), opts.whole);
    const plot = axes(box, top, labels, opts.unit);
    const ctx = box.ctx, n = labels.length;
    series.forEach(function (s) {
      ctx.strokeStyle = s.color;
      ctx.lineWidth = 2;
      ctx.beginPath();
      let drawing = false;
      s.values.forEach(function (v, i) {
        if (v === null) { drawing = false; return; }
        const x = PAD.left + (n === 1 ? plot.plotW / 2 : (plot.plotW * i) / (n - 1));
        const y = PAD.top + plot.plotH - (plot.plotH * v) / top;
        if (drawing) ctx.lineTo(x, y); else ctx.moveTo(x, y);
        drawing = true;
      });
      ctx.stroke();
      ctx.fillStyle = s.color;  // a dot on each point: a minute alone between gaps is seen too
      s.values.forEach(function (v, i) {
        if (v === null) return;
        const x = PAD.left + (n === 1 ? plot.plotW / 2 : (plot.plotW * i) / (n - 1));
        ctx.beginPath();
        ctx.arc(x, PAD.top + plot.plotH - (plot.plotH * v) / top, v > 0 ? 2.5 : 1.2, 0, 2 * Math.PI);
        ctx.fill();
      });
    });
    if (series.length > 1) legend(box, series);
  }

  function bars(canvas, labels, values, options) {
    const box = prepare(canvas), opts = options || {};
    const top = niceMax(Math.max(0, ...values), opts.whole);
    const plot = axes(box, top, [], opts.unit);
    const ctx = box.ctx, n = Math.max(1, labels.length), slot = plot.plotW / n;
    const width = Math.max(2, Math.min(48, slot * 0.7));
    ctx.textAlign = "center";
    ctx.textBaseline = "top";
    const every = Math.max(1, Math.ceil(n / Math.max(1, Math.floor(plot.plotW / 70))));
    labels.forEach(function (label, i) {
      const x = PAD.left + slot * i + slot / 2;
      const h = (plot.plotH * values[i]) / top;
      ctx.fillStyle = opts.color || "#2d5bd7";
      ctx.fillRect(x - width / 2, PAD.top + plot.plotH - h, width, h);
      if (i % every === 0) {
        ctx.fillStyle = INK;
        const text = label.length > 14 ? label.slice(0, 13) + "…" : label;
        ctx.fillText(text, x, PAD.top + plot.plotH + 6);
      }
    });
  }

  return { line: line, bars: bars };
})();
