// The overview's chart: Chart.js draws it from the JSON block its canvas names (data-chart-data), so no
// script is inline (CSP). The same figures are in the table beside it; a chart is destroyed before htmx
// swaps its canvas out (a new range, a panel loaded again).
(function () {
  var COLORS = {admin: "#1f5fbf", sweep: "#7c3aed", dunning: "#b45309", bulk: "#067647"};

  function draw(root) {
    if (!window.Chart || !root || !root.querySelectorAll) return;
    root.querySelectorAll("canvas[data-chart-data]").forEach(function (canvas) {
      if (window.Chart.getChart(canvas)) return;
      var source = document.getElementById(canvas.getAttribute("data-chart-data"));
      if (!source) return;
      var figures = JSON.parse(source.textContent);
      new window.Chart(canvas, {
        type: "bar",
        data: {
          labels: figures.labels,
          datasets: figures.series.map(function (s) {
            var color = COLORS[s.source] || "#5b6475", solid = s.measure === "suspended";
            return {label: s.label, data: s.data, stack: s.measure, borderColor: color, borderWidth: solid ? 0 : 1,
                    backgroundColor: solid ? color : color + "55"};
          })
        },
        options: {
          responsive: true, maintainAspectRatio: false, animation: false,
          interaction: {mode: "index", intersect: false},
          scales: {x: {stacked: true, ticks: {maxTicksLimit: 12}},
                   y: {stacked: true, beginAtZero: true, ticks: {precision: 0}}},
          plugins: {legend: {position: "bottom", labels: {boxWidth: 12}}}
        }
      });
    });
  }

  function destroy(root) {
    if (!window.Chart || !root || !root.querySelectorAll) return;
    root.querySelectorAll("canvas[data-chart-data]").forEach(function (canvas) {
      var chart = window.Chart.getChart(canvas);
      if (chart) chart.destroy();
    });
  }

  document.addEventListener("DOMContentLoaded", function () { draw(document); });
  document.addEventListener("htmx:load", function (evt) { draw(evt.detail.elt); });
  document.addEventListener("htmx:historyRestore", function () { draw(document); });
  document.addEventListener("htmx:beforeSwap", function (evt) {
    if (evt.detail.shouldSwap) destroy(evt.detail.target);
  });
})();
