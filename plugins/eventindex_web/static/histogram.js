/* The queries page's histogram panel: /histogram over the shared selection (EI.querySelection, set by queries.js),
   drawn as a Vega-Lite bar chart over the bin edges (1-D) or a heatmap (2-D). The answer is `eventindex histogram
   --json`'s, so the command shown under the chart reproduces it. */
(function () {
  "use strict";
  const { api, qs, $, el, clear, loading, showError, clearError, num, chart, busy } = window.EI;

  const fmt = (v, weighted) => (weighted ? Number(v).toLocaleString(undefined, { maximumSignificantDigits: 4 })
    : num(v));

  /** The panel's fields as query parameters: one column (or two), bins and range per axis, weight. */
  function params() {
    const column = [$("#histogram-column").value, $("#histogram-column-y").value].filter(Boolean);
    const bins = String($("#histogram-bins").value || "").split(/[\s,;]+/).filter(Boolean);
    const range = [$("#histogram-range").value, $("#histogram-range-y").value].map((s) => s.replace(/\s+/g, ""))
      .filter(Boolean);
    return { column, bins: bins.length ? bins : ["50"], range, weight: $("#histogram-weight").checked ? "true" : "" };
  }

  function plot(target, h) {
    const xTitle = h.columns[0];
    const yTitle = h.weighted ? "weighted events" : "events";
    if (h.columns.length === 1) {
      const edges = h.edges[0];
      const values = h.counts.map((c, i) => ({ lo: edges[i], hi: edges[i + 1], count: c }));
      return chart(target, {
        data: { values },
        height: 240,
        mark: { type: "bar", tooltip: true, color: "#017cee", binSpacing: 0 },
        encoding: {
          x: { field: "lo", type: "quantitative", title: xTitle, scale: { domain: [edges[0], edges[edges.length - 1]],
            nice: false, zero: false } },
          x2: { field: "hi" },
          y: { field: "count", type: "quantitative", title: yTitle, scale: { zero: true } },
          y2: { datum: 0 },
          tooltip: [{ field: "lo", title: "from" }, { field: "hi", title: "to" },
            { field: "count", type: "quantitative", title: yTitle, format: "," }],
        },
      });
    }
    const [xe, ye] = h.edges;
    const values = h.counts.flatMap((row, i) => row.map((c, j) => ({ x: xe[i], x2: xe[i + 1], y: ye[j], y2: ye[j + 1],
      count: c })));
    return chart(target, {
      data: { values },
      height: 260,
      mark: { type: "rect", tooltip: true },
      encoding: {
        x: { field: "x", type: "quantitative", title: xTitle, scale: { domain: [xe[0], xe[xe.length - 1]], nice: false,
          zero: false } },
        x2: { field: "x2" },
        y: { field: "y", type: "quantitative", title: h.columns[1], scale: { domain: [ye[0], ye[ye.length - 1]],
          nice: false, zero: false } },
        y2: { field: "y2" },
        color: { field: "count", type: "quantitative", title: yTitle, scale: { scheme: "viridis" } },
        tooltip: [{ field: "x", title: xTitle + " from" }, { field: "y", title: h.columns[1] + " from" },
          { field: "count", type: "quantitative", title: yTitle, format: "," }],
      },
    });
  }

  async function histogram() {
    clearError();
    const target = $("#chart-histogram");
    const summary = $("#histogram-entries");
    loading(target, "Filling…");
    summary.textContent = "";
    delete summary.dataset.entries;
    $("#histogram-command").hidden = true;
    let h;
    try {
      h = await busy($("#histogram-button"), () => api("/histogram" + qs({ ...params(), ...window.EI.querySelection() })));
    } catch (e) {
      clear(target);
      showError(e, "Histogram");
      return;
    }
    summary.dataset.entries = String(h.entries);
    const flows = h.columns.map((c, i) => `${c}: underflow ${fmt(h.underflow[i], h.weighted)}, overflow ` +
      `${fmt(h.overflow[i], h.weighted)}`).join("; ");
    summary.textContent = `${num(h.entries)} events filled${h.limited ? ` (stopped at the limit, ${num(h.limit)})` : ""}` +
      `; ${flows}${h.missing ? `; ${num(h.missing)} without a value, not filled` : ""}.`;
    if (!h.entries) {
      clear(target).append(el("div", { class: "empty", "data-testid": "histogram-empty" }, "No events selected."));
    } else {
      await plot(target, h);
    }
    const cmd = $("#histogram-command");
    cmd.textContent = h.command;
    cmd.hidden = false;
  }

  document.addEventListener("DOMContentLoaded", () => {
    const second = $("#histogram-column-y");  // the 2nd axis offers the same columns as the first, or none
    for (const option of $("#histogram-column").options) {
      second.append(new Option(option.textContent, option.value));
    }
    $("#histogram-button").addEventListener("click", histogram);
  });
})();
