/* The queries page: lookup, and count / overlaps / events per run or lumi block / download of a selection. */
(function () {
  "use strict";
  const { API, api, qs, $, el, clear, loading, showError, clearError, num, renderTable, chart, busy } = window.EI;

  const MAX_ROWS = 1000000;  // the server's default and maximum rows per download (X-Row-Limit)
  const STAGE_ORDER = ["RAW", "ESD", "AOD", "DAOD_PHYS", "DAOD_PHYSLITE"];
  let perLumiRows = null;  // the last answer of /events-per?by=lumi_block, re-plotted per run without a new request

  const tokens = (text) => String(text || "").split(/[\s,;]+/).map((s) => s.trim()).filter(Boolean);

  /** Trigger names (comma-separated), or one expression when the text has and / or / not / parentheses. */
  const triggers = (text) => /[()&|!]|\b(and|or|not)\b/i.test(text) ? [text.trim()] : tokens(text);
  /** A datetime-local value read as UTC, in seconds since the epoch ("" when empty). */
  const epoch = (value) => value ? String(Math.floor(Date.parse(value + "Z") / 1000)) : "";

  /** The selection form as query parameters (run, lumi, bcid, period and trigger repeated). */
  function selection() {
    const f = $("#selection-form");
    return {
      project: f.project.value, run: tokens(f.run.value), period: tokens(f.period.value), lumi: tokens(f.lumi.value),
      bcid: tokens(f.bcid.value), stream: f.stream.value, type: f.type.value, version: f.version.value,
      dataset: f.dataset.value, trigger: triggers(f.trigger.value), since: epoch(f.since.value),
      until: epoch(f.until.value),
    };
  }

  window.EI.querySelection = selection;  // the shared form, for the histogram panel (static/histogram.js)

  function stageKey(s) {
    const i = STAGE_ORDER.indexOf(s);
    return i >= 0 ? String(i).padStart(2, "0") : (s.startsWith("DAOD") ? "50" : "90") + s;
  }

  /* ---------- lookup ---------- */
  async function lookup(ev) {
    ev.preventDefault();
    clearError();
    const f = ev.currentTarget;
    const run = f.run.value.trim();
    const event = f.event.value.trim();
    const summary = $("#lookup-summary");
    const result = $("#lookup-result");
    loading(result, "Looking up…");
    summary.textContent = "";
    let records;
    try {
      records = await busy($("#lookup-submit"), () => api("/lookup" + qs({ run, event, project: f.project.value,
        type: f.type.value, version: f.version.value })));
    } catch (e) {
      clear(result);
      if (e.status === 404) {
        summary.textContent = e.message || `Event ${run} ${event} is not in the catalogue.`;
        return;
      }
      showError(e, "Lookup");
      return;
    }
    records = Array.isArray(records) ? records : [];
    summary.textContent = records.length
      ? `Run ${run} event ${event}: ${num(records.length)} record${records.length === 1 ? "" : "s"}.`
      : `Event ${run} ${event} is not in the catalogue (with these options).`;
    const formats = [...new Set(records.flatMap((r) => Object.keys(r.refs || {})))]
      .sort((a, b) => stageKey(a).localeCompare(stageKey(b)));
    const columns = [
      { key: "dataset", label: "dataset", class: "name mono" },
      { key: "lumi_block", label: "lumi block", num: true },
      ...formats.flatMap((fmt) => [
        { key: fmt + "_guid", label: `${fmt} GUID`, class: "mono", render: (r) => (r.refs?.[fmt]?.guid) ?? "" },
        { key: fmt + "_oid", label: `${fmt} entry`, num: true, render: (r) => num(r.refs?.[fmt]?.oid) },
      ]),
    ];
    renderTable(result, columns, records, { testid: "lookup-table", rowTestid: "lookup-row",
      rowAttrs: (r) => ({ "data-dataset": r.dataset }), empty: "No records." });
  }

  /* ---------- count ---------- */
  async function count() {
    clearError();
    const out = $("#count-result");
    loading(out, "Counting…");
    try {
      const res = await busy($("#count-button"), () => api("/count" + qs(selection())));
      out.dataset.count = String(res.count);
      out.textContent = num(res.count);
    } catch (e) {
      clear(out);
      delete out.dataset.count;
      showError(e, "Count");
    }
  }

  /* ---------- overlaps ---------- */
  async function overlaps() {
    clearError();
    const target = $("#chart-overlaps");
    const tableBox = $("#overlaps-result");
    loading(target, "Computing overlaps…");
    clear(tableBox);
    const streams = tokens($("#overlap-streams").value).join(",");
    const triggers = tokens($("#overlap-triggers").value).join(",");
    let res;
    try {
      res = await busy($("#overlaps-button"), () => api("/overlaps" + qs({ ...selection(), streams, triggers })));
    } catch (e) {
      clear(target);
      showError(e, "Overlaps");
      return;
    }
    const labels = (res.labels || []).map(String);
    const matrix = res.matrix || [];
    if (!labels.length) {
      clear(target).append(el("div", { class: "empty" }, "Nothing to compare."));
      return;
    }
    const cells = [];
    labels.forEach((a, i) => labels.forEach((b, j) => cells.push({ a, b, n: Number(matrix[i]?.[j]) || 0 })));
    const max = Math.max(1, ...cells.map((c) => c.n));
    const longest = Math.max(...labels.map((l) => l.length));
    const side = Math.max(160, Math.min(labels.length * 90, (target.clientWidth || 800) - 8 * longest - 40));
    const axis = { labelLimit: 260, labelFontSize: 11 };
    chart(target, {
      data: { values: cells },
      width: side, height: side,
      encoding: {
        x: { field: "b", type: "nominal", sort: labels, title: null, axis: { ...axis, orient: "top", labelAngle: -30 } },
        y: { field: "a", type: "nominal", sort: labels, title: null, axis },
      },
      layer: [
        { mark: { type: "rect", tooltip: true }, encoding: {
          color: { field: "n", type: "quantitative", title: "events", scale: { scheme: "blues", domainMin: 0 } },
          tooltip: [{ field: "a", title: "row" }, { field: "b", title: "column" },
            { field: "n", type: "quantitative", format: ",", title: "shared events" }] } },
        { mark: { type: "text", fontSize: 12 }, encoding: {
          text: { field: "n", type: "quantitative", format: "," },
          color: { condition: { test: `datum.n > ${max / 2}`, value: "white" }, value: "#1f2933" } } },
      ],
    });
    renderTable(tableBox, [
      { key: "label", label: "", class: "mono" },
      ...labels.map((l, j) => ({ key: "c" + j, label: l, num: true, render: (r) => num(r.values[j]) })),
    ], labels.map((label, i) => ({ label, values: matrix[i] || [] })), { testid: "overlaps-table",
      rowTestid: "overlaps-row" });
  }

  /* ---------- trigger name suggestions ---------- */
  const SUGGESTIONS = 100;  // options in the datalist at most
  const asked = new Map();  // lower-cased word -> Promise of the names holding it (GET /triggers?like=), once each
  let suggestTimer = null;

  /** The trigger name being typed in a field (the letters, digits and _ before the caret), and the text around. */
  function wordAtCaret(input) {
    const at = input.selectionStart ?? input.value.length;
    const before = input.value.slice(0, at);
    const word = /[A-Za-z0-9_]*$/.exec(before)[0];
    return { head: before.slice(0, before.length - word.length), word, tail: input.value.slice(at) };
  }

  /** Fill the shared datalist with the catalogue's names holding the word being typed (those it begins first,
   *  shortest first), each option the field's whole text with that word completed: a comma list or an expression
   *  keeps what is around the word. */
  async function suggest(input) {
    const list = $("#trigger-names");
    const { head, word, tail } = wordAtCaret(input);
    if (word.length < 2 || /^(and|or|not)$/i.test(word)) {
      clear(list);
      return;
    }
    const key = word.toLowerCase();
    if (!asked.has(key)) asked.set(key, api("/triggers" + qs({ like: word })).catch(() => []));
    const names = (await asked.get(key)).map((t) => t.name);
    if (wordAtCaret(input).word !== word) return;  // typed on meanwhile: a newer call fills the list
    const rank = (n) => [n.toLowerCase().startsWith(key) ? 0 : 1, n.length];
    names.sort((a, b) => rank(a)[0] - rank(b)[0] || rank(a)[1] - rank(b)[1] || a.localeCompare(b));
    clear(list);
    for (const name of names.slice(0, SUGGESTIONS)) list.append(el("option", { value: head + name + tail }));
  }

  function suggestSoon(ev) {
    clearTimeout(suggestTimer);
    suggestTimer = setTimeout(() => suggest(ev.target), 150);
  }

  /* ---------- events per run / lumi block ---------- */
  async function perRun() {
    clearError();
    const target = $("#chart-per-run");
    loading(target);
    let rows;
    try {
      rows = await busy($("#per-run-button"), () => api("/events-per" + qs({ by: "run", ...selection() })));
    } catch (e) {
      clear(target);
      showError(e, "Events per run");
      return;
    }
    if (!rows || !rows.length) {
      clear(target).append(el("div", { class: "empty", "data-testid": "per-run-empty" }, "No events selected."));
      return;
    }
    chart(target, {
      data: { values: rows },
      height: 220,
      mark: { type: "bar", tooltip: true, color: "#017cee" },
      encoding: {
        x: { field: "run_number", type: "ordinal", title: "run", axis: { labelOverlap: true, labelAngle: -45 } },
        y: { field: "events", type: "quantitative", title: "events" },
        tooltip: [{ field: "run_number", title: "run" }, { field: "events", type: "quantitative", format: "," }],
      },
    });
  }

  async function perLumi() {
    clearError();
    const target = $("#chart-per-lumi");
    loading(target);
    try {
      perLumiRows = await busy($("#per-lumi-button"), () => api("/events-per" + qs({ by: "lumi_block",
        ...selection() })));
    } catch (e) {
      clear(target);
      showError(e, "Events per lumi block");
      return;
    }
    const select = $("#per-lumi-run");
    const keep = select.value;
    const runs = [...new Set((perLumiRows || []).map((r) => r.run_number))].sort((a, b) => a - b);
    while (select.options.length > 1) select.remove(1);
    for (const r of runs) select.append(el("option", { value: r }, String(r)));
    select.value = runs.map(String).includes(keep) ? keep : (runs.length === 1 ? String(runs[0]) : "");
    select.disabled = runs.length === 0;
    plotLumi();
  }

  function plotLumi() {
    const target = $("#chart-per-lumi");
    const run = $("#per-lumi-run").value;
    const rows = (perLumiRows || []).filter((r) => !run || String(r.run_number) === run);
    if (!rows.length) {
      clear(target).append(el("div", { class: "empty", "data-testid": "per-lumi-empty" }, "No events selected."));
      return;
    }
    const tooltip = [{ field: "run_number", title: "run" }, { field: "lumi_block", title: "lumi block" },
      { field: "events", type: "quantitative", format: "," }];
    chart(target, {
      data: { values: rows },
      height: 220,
      mark: { type: "bar", tooltip: true, ...(run ? { color: "#2e7d32" } : {}) },
      encoding: {
        x: { field: "lumi_block", type: "quantitative", title: "lumi block", bin: false,
          axis: { format: "d", tickMinStep: 1 } },
        y: { field: "events", type: "quantitative", title: "events", stack: true },
        ...(run ? {} : { color: { field: "run_number", type: "nominal", title: "run" } }),
        tooltip,
      },
    });
  }

  /* ---------- download ---------- */
  function updateDownloads() {
    const columns = tokens($("#download-columns").value).join(",");
    const limitInput = $("#download-limit");
    let limit = limitInput.value.trim();
    if (limit && Number(limit) > MAX_ROWS) limit = String(MAX_ROWS);
    for (const format of ["csv", "parquet", "json"]) {
      const a = $("#download-" + format);
      a.href = API + "/select" + qs({ ...selection(), columns, format, limit });
      a.setAttribute("download", `eventindex-selection.${format}`);
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("#lookup-form").addEventListener("submit", lookup);
    $("#selection-form").addEventListener("submit", (ev) => { ev.preventDefault(); count(); });
    $("#selection-form").addEventListener("input", updateDownloads);
    $("#selection-form").addEventListener("reset", () => setTimeout(updateDownloads));
    $("#download-columns").addEventListener("input", updateDownloads);
    $("#download-limit").addEventListener("input", updateDownloads);
    $("#count-button").addEventListener("click", count);
    $("#overlaps-button").addEventListener("click", overlaps);
    $("#per-run-button").addEventListener("click", perRun);
    $("#per-lumi-button").addEventListener("click", perLumi);
    $("#per-lumi-run").addEventListener("change", plotLumi);
    for (const field of ["#sel-triggers", "#overlap-triggers"]) {
      $(field).addEventListener("input", suggestSoon);
      $(field).addEventListener("focus", suggestSoon);  // the datalist is shared: fill it for the field in use
    }
    updateDownloads();
  });
})();
