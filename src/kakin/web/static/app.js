// kakin dashboard: the few behaviours pages need, kept out of the HTML (CSP: scripts from 'self' only).
"use strict";

document.addEventListener("DOMContentLoaded", function () {
  // The organisation picker shows the chosen organisation at once.
  document.querySelectorAll("select.autosubmit").forEach(function (select) {
    select.addEventListener("change", function () { select.form.submit(); });
  });
  var upload = document.getElementById("bill-upload");
  if (upload) upload.addEventListener("submit", function (event) { event.preventDefault(); importBill(upload); });
  // An invoice's "Print" button: the browser's print dialog (the print stylesheet hides the rest).
  document.querySelectorAll("button.print-page").forEach(function (button) {
    button.addEventListener("click", function () { window.print(); });
  });
  var chart = document.getElementById("chart");
  if (chart && window.uPlot) drawStacked(chart, JSON.parse(chart.dataset.chart));
});

var COLOURS = ["#2f6db5", "#e0822b", "#3a9a5b", "#c23b3b", "#8159b3", "#8c6d3f", "#7f7f7f"];

// Stacked bars: each series is drawn at the running total of the ones below it, tallest
// first, so every bar shows its share. Times are the organisation's, not the browser's.
function drawStacked(element, data) {
  var n = data.x.length;
  var running = new Array(n).fill(0);
  var stacked = data.series.map(function (s) {
    return s.values.map(function (v, i) { running[i] += v; return running[i]; });
  });
  var bars = uPlot.paths.bars({ size: [0.7, 60] });
  var series = [{}];
  var values = [data.x];
  for (var i = stacked.length - 1; i >= 0; i--) {
    series.push({
      label: data.series[i].label,
      fill: COLOURS[i % COLOURS.length],
      stroke: COLOURS[i % COLOURS.length],
      paths: bars,
      points: { show: false },
      value: (function (raw) {
        return function (u, v, si, idx) { return idx == null ? "" : String(raw[idx]); };
      })(data.series[i].values),
    });
    values.push(stacked[i]);
  }
  var format = uPlot.fmtDate(data.by === "day" ? "{M}/{D}" : "{HH}:{mm}");
  var label = function (ts) { return format(uPlot.tzDate(new Date(ts * 1e3), data.timezone)); };
  var width = function () { return Math.max(280, element.clientWidth || 600); };
  var plot = new uPlot({
    width: width(),
    height: 280,
    tzDate: function (ts) { return uPlot.tzDate(new Date(ts * 1e3), data.timezone); },
    scales: { x: { time: true, distr: 2 } },  // one slot per day or hour, quiet ones included
    axes: [{ values: function (u, splits) { return splits.map(label); } }, { label: data.unit, size: 70 }],
    legend: { live: true },
    series: series,
  }, values, element);
  window.addEventListener("resize", function () { plot.setSize({ width: width(), height: 280 }); });
}

// A provider's export is sent as it is (the request body), then the page shows that provider.
function importBill(form) {
  var status = document.getElementById("upload-status");
  var file = form.querySelector("input[type=file]").files[0];
  if (!file) { status.textContent = form.dataset.nofile; return; }
  var provider = form.querySelector("select[name=provider]").value;
  var query = new URLSearchParams({ provider: provider, filename: file.name });
  var url = form.getAttribute("action") + (form.getAttribute("action").indexOf("?") < 0 ? "?" : "&") + query;
  status.className = "";
  status.textContent = "…";
  fetch(url, { method: "POST", body: file, credentials: "same-origin", headers: { "content-type": "application/octet-stream" } })
    .then(function (response) { return response.json().then(function (body) { return [response.ok, body]; }); })
    .then(function (answer) {
      if (answer[0]) { window.location.assign(answer[1].next); return; }
      status.className = "error";
      status.textContent = answer[1].error;
    });
}
