// The researcher page's two charts per experiment, drawn by Chart.js (bundled from npm).
// Only the parts used are registered, so the bundle carries only those.

import { BarController, BarElement, CategoryScale, Chart, LinearScale, Tooltip } from "chart.js";

Chart.register(BarController, BarElement, CategoryScale, LinearScale, Tooltip);
// For the browser console and the browser test: Chart.getChart(canvas) is a drawn chart.
globalThis.Chart = Chart;

const COLOUR = "#3b6ea8";

function barChart(canvas, { labels, data, label, horizontal = false, labelTicks = {} }) {
  const [counts, categories] = horizontal ? ["x", "y"] : ["y", "x"];
  return new Chart(canvas, {
    type: "bar",
    data: { labels, datasets: [{ label, data, backgroundColor: COLOUR }] },
    options: {
      animation: false, // drawn at once: nothing to wait for, the same picture every time
      maintainAspectRatio: false,
      indexAxis: horizontal ? "y" : "x",
      scales: {
        [counts]: { beginAtZero: true, ticks: { precision: 0 } },
        [categories]: { ticks: labelTicks },
      },
    },
  });
}

// Sessions per UTC day over the last 30 days (the `daily` figures, oldest first). The labels
// are the dates; the axis writes them as MM-DD, level.
export function dailySessionsChart(canvas, daily) {
  return barChart(canvas, {
    labels: daily.map((day) => day.date),
    data: daily.map((day) => day.sessions),
    label: "Sessions",
    labelTicks: { maxRotation: 0, callback(value) { return this.getLabelForValue(value).slice(5); } },
  });
}

// The level funnel: for each level, the sessions that reached at least that level.
export function levelFunnelChart(canvas, levels) {
  return barChart(canvas, {
    labels: levels.map((entry) => `Level ${entry.level}`),
    data: levels.map((entry) => entry.sessions),
    label: "Sessions that reached the level",
    horizontal: true,
  });
}
