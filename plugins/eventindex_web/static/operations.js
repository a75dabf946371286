/* The operations page (Supervisor's GUI): summary, in flight, reports, rates, datasets, obsolete / restore. */
(function () {
  "use strict";
  const { api, qs, $, el, clear, loading, showError, clearError, num, time, badge, link, renderTable, autoColumns,
    kv, chart, busy } = window.EI;

  const NO_SOURCE = "not known yet";  // datasets on their way in: their source is null
  const page = { offset: 0, limit: 100, total: 0, filters: {}, selected: null };

  /* ---------- summary, in flight, reports ---------- */
  async function loadOperations() {
    for (const id of ["by-state-wrap", "in-flight-wrap", "validation-wrap", "consistency-wrap"]) loading($("#" + id));
    let ops;
    try {
      ops = await api("/operations");
    } catch (e) {
      for (const id of ["by-state-wrap", "in-flight-wrap", "validation-wrap", "consistency-wrap"]) clear($("#" + id));
      showError(e, "Operations");
      return;
    }
    const byState = ops.by_state || [];
    const totals = byState.reduce((t, r) => ({ datasets: t.datasets + (Number(r.datasets) || 0),
      events: t.events + (Number(r.events) || 0) }), { datasets: 0, events: 0 });
    const table = renderTable($("#by-state-wrap"), [
      { key: "state", label: "state", render: (r) => badge(r.state) },
      { key: "source", label: "source", render: (r) => r.source ?? el("span", { class: "hint" }, NO_SOURCE) },
      { key: "datasets", label: "datasets", num: true },
      { key: "events", label: "events", num: true },
    ], byState, { testid: "by-state", rowTestid: "by-state-row", empty: "No datasets yet.",
      rowAttrs: (r) => ({ "data-state": r.state, "data-source": r.source }) });
    if (table && byState.length > 1) {
      table.tBodies[0].append(el("tr", { class: "total", "data-testid": "by-state-total" }, el("td", null, "total"),
        el("td"), el("td", { class: "num" }, num(totals.datasets)), el("td", { class: "num" }, num(totals.events))));
    }
    fillSelect($("#filter-source"), byState.map((r) => r.source));

    chart($("#chart-by-state"), {
      data: { values: byState.map((r) => ({ ...r, source: r.source ?? NO_SOURCE })) },
      mark: { type: "bar", tooltip: true },
      height: 180,
      encoding: {
        x: { field: "state", type: "nominal", title: "state", axis: { labelAngle: 0 },
          sort: [...new Set(byState.map((r) => r.state))] },
        y: { aggregate: "sum", field: "datasets", type: "quantitative", title: "datasets" },
        color: { field: "source", type: "nominal", title: "source" },
        tooltip: [{ field: "state" }, { field: "source" }, { field: "datasets", type: "quantitative", format: "," },
          { field: "events", type: "quantitative", format: "," }],
      },
    });

    const inFlight = ops.in_flight || [];
    renderTable($("#in-flight-wrap"), progressColumns(inFlight), inFlight, {
      testid: "in-flight", rowTestid: "in-flight-row", empty: "Nothing in flight, stuck or failed.",
      rowAttrs: (r) => ({ "data-name": r.dataset, "data-state": r.state }),
    });
    renderReports($("#validation-wrap"), ops.validation || [], "validation", "No validation reports.");
    renderReports($("#consistency-wrap"), ops.consistency || [], "consistency", "No consistency findings.");
  }

  function progressColumns(rows) {
    return autoColumns(rows, ["dataset", "state", "detail", "files_staged", "files_expected", "generation",
      "first_seen", "updated"], ["files_staged", "files_expected", "closed_files", "closed_events", "generation"])
      .map((c) => c.key === "state" ? { ...c, render: (r) => badge(r.state) }
        : c.key === "dataset" ? { ...c, class: "name", render: (r) => datasetButton(r.dataset) } : c);
  }

  function renderReports(container, rows, testid, empty) {
    const cols = autoColumns(rows, ["created", "run_at", "check_name", "dataset", "file", "problem", "detail",
      "count"], ["count"]).filter((c) => c.key !== "id")
      .map((c) => c.key === "dataset" ? { ...c, class: "name", render: (r) => datasetButton(r.dataset) } : c);
    renderTable(container, cols, rows, { testid, rowTestid: testid + "-row", empty });
  }

  function datasetButton(name, testid = "report-dataset-link") {
    if (!name) return "";
    return el("button", { type: "button", class: "link mono", "data-testid": testid, "data-name": name,
      onclick: () => showDetails(name) }, name);
  }

  function fillSelect(select, values) {
    const have = new Set([...select.options].map((o) => o.value));
    for (const v of values) {
      if (v === undefined || v === null || v === "" || have.has(String(v))) continue;
      have.add(String(v));
      select.append(el("option", { value: v }, v));
    }
  }

  /* ---------- rates ---------- */
  async function loadRates() {
    const bucket = $("#rates-bucket").value;
    const target = $("#chart-rates");
    loading(target);
    let rows;
    try {
      rows = await api("/rates" + qs({ bucket }));
    } catch (e) {
      clear(target);
      showError(e, "Ingestion rates");
      return;
    }
    if (!rows || rows.length === 0) {
      clear(target).append(el("div", { class: "empty", "data-testid": "rates-empty" }, "No loads yet."));
      return;
    }
    // Each bucket is a bar from its start to its end (x, x2) on a time axis one bucket wider on each side than the
    // data: a single bucket is a bar of its own width with distinct ticks, not a full-width bar labelled twice.
    const step = (bucket === "day" ? 24 : 1) * 3600e3;
    const values = rows.map((r) => ({ ...r, start: Date.parse(r.t), end: Date.parse(r.t) + step }));
    const domain = [Math.min(...values.map((v) => v.start)) - step, Math.max(...values.map((v) => v.end)) + step];
    const unit = bucket === "day" ? "yearmonthdate" : "yearmonthdatehours";
    const width = Math.max(280, (target.clientWidth || 800) - 90);
    const panel = (field, title, color) => ({
      width, height: 130,
      mark: { type: "bar", color, tooltip: true },
      encoding: {
        x: { field: "start", type: "temporal", title: null, scale: { domain }, axis: { tickMinStep: step } },
        x2: { field: "end" },
        y: { field, type: "quantitative", title },
        tooltip: [{ field: "start", type: "temporal", timeUnit: unit, title: bucket },
          { field, type: "quantitative", format: ",", title }],
      },
    });
    chart(target, {
      data: { values },
      vconcat: [panel("datasets", `datasets per ${bucket}`, "#017cee"), panel("events", `events per ${bucket}`,
        "#2e7d32")],
    });
  }

  /* ---------- datasets ---------- */
  function readFilters() {
    const f = $("#filters");
    return { state: f.state.value, source: f.source.value, project: f.project.value.trim(), type: f.type.value.trim() };
  }

  async function loadDatasets() {
    const wrap = $("#datasets-wrap");
    loading(wrap);
    const me = await window.EI.me();  // what the caller may do decides the action buttons
    page.rights = me && me.may ? me.may : null;
    let res;
    try {
      res = await api("/datasets" + qs({ ...page.filters, offset: page.offset, limit: page.limit }));
    } catch (e) {
      clear(wrap);
      $("#datasets-range").textContent = "";
      showError(e, "Datasets");
      return;
    }
    const rows = res.datasets || [];
    page.total = Number(res.total) || 0;
    page.offset = Number(res.offset) || 0;
    const first = rows.length ? page.offset + 1 : 0;
    $("#datasets-range").textContent = rows.length
      ? `${num(first)}-${num(page.offset + rows.length)} of ${num(page.total)}` : `0 of ${num(page.total)}`;
    $("#prev-page").disabled = page.offset <= 0;
    $("#next-page").disabled = page.offset + rows.length >= page.total;
    renderTable(wrap, [
      { key: "name", label: "dataset", class: "name", render: (r) => datasetButton(r.name, "dataset-link") },
      { key: "status", label: "status", render: (r) => badge(r.status) },
      { key: "source", label: "source" },
      { key: "project", label: "project" },
      { key: "run_number", label: "run", num: true, render: (r) => r.run_number ?? "" },
      { key: "stream", label: "stream" },
      { key: "datatype", label: "type" },
      { key: "version", label: "version" },
      { key: "nfiles", label: "files", num: true },
      { key: "nevents", label: "events", num: true },
      { key: "unique_events", label: "unique", num: true },
      { key: "duplicates", label: "duplicates", num: true },
      { key: "loaded_at", label: "loaded", render: (r) => time(r.loaded_at) },
      { key: "action", label: "", render: (r) => actionButton(r.name, r.status) },
    ], rows, { testid: "datasets", rowTestid: "dataset-row", empty: "No datasets match these filters.",
      rowAttrs: (r) => ({ "data-name": r.name, "data-status": r.status,
        class: r.name === page.selected ? "selected" : null }) });
  }

  function actionButton(name, status, prefix = "") {
    if (page.rights && !page.rights.change_datasets) return "";  // a viewer: no button the server would refuse
    if (status === "loaded") {
      return el("button", { type: "button", class: "small danger", "data-testid": prefix + "obsolete-button",
        "data-name": name,
        onclick: (ev) => retire(name, "obsolete", ev.currentTarget) }, "Declare obsolete");
    }
    if (status === "obsolete") {
      return el("button", { type: "button", class: "small", "data-testid": prefix + "restore-button", "data-name": name,
        onclick: (ev) => retire(name, "restore", ev.currentTarget) }, "Restore");
    }
    return "";
  }

  /* ---------- confirmation and obsolete / restore ---------- */
  function confirmDialog(action, name, hint) {
    const dlg = $("#confirm-dialog");
    $("#confirm-action").textContent = action;
    $("#confirm-name").textContent = name;
    $("#confirm-hint").textContent = hint || "";
    dlg.returnValue = "";
    return new Promise((resolve) => {
      dlg.addEventListener("close", () => resolve(dlg.returnValue === "confirm"), { once: true });
      dlg.showModal();
      $("#cancel").focus();
    });
  }

  async function retire(name, what, button) {
    const obsolete = what === "obsolete";
    const ok = await confirmDialog(obsolete ? "Declare this dataset obsolete?" : "Restore this dataset?", name,
      obsolete ? "It is hidden from queries and lookups, and kept with its history; it can be restored."
        : "It becomes visible to queries and lookups again.");
    if (!ok) return;
    clearError();
    await busy(button, async () => {
      try {
        const res = await api(`/datasets/${encodeURIComponent(name)}/${what}`, { method: "POST" });
        const notice = $("#notice");
        notice.textContent = res && res.changed === false
          ? `${name} was already ${res.status}.` : `${name} is now ${(res && res.status) || what}.`;
        notice.hidden = false;
      } catch (e) {
        if (e.status === 403) {
          showError(`${obsolete ? "Declare obsolete" : "Restore"} refused: you need edit access to ` +
            "eventindex_ingest in Airflow.");
        } else {
          showError(e, obsolete ? "Declare obsolete" : "Restore");
        }
        return;
      }
      await Promise.all([loadDatasets(), loadOperations(), page.selected === name ? showDetails(name) : null]);
    });
  }

  /* ---------- details ---------- */
  /** AMI's derived quantities: production status (and what it is made of), cross-section and filter efficiency,
   * lost lumi blocks, provenance and the file / event count history. */
  function amiBox(d) {
    const a = d.ami || {};
    const stat = (avg, lo, hi, unit) => avg === null || avg === undefined ? null
      : `${Number(avg).toPrecision(6)}${unit} (min ${Number(lo).toPrecision(6)}, max ${Number(hi).toPrecision(6)})`;
    const parts = a.detail || {};
    const lost = d.lost_lumi_blocks ? Object.entries(d.lost_lumi_blocks) : [];
    const prov = d.provenance || {};
    const counts = (d.history_counts || []).map((h) => `${time(h.at)}: ${num(h.nfiles)} files, ${num(h.nevents)} events`);
    return kv([
      ["production status", a.production_status ? badge(a.production_status) : null],
      ["task", parts.task ? `${parts.task.source}${parts.task.task_id ? " " + parts.task.task_id : ""}: ${parts.task.status}` : null],
      ["Rucio", parts.rucio ? `closed, ${num(parts.rucio.files)} files` : null],
      ["computed", a.computed_at ? `${time(a.computed_at)} after ${a.reason}` : null],
      ["cross-section", stat(a.cross_section_avg, a.cross_section_min, a.cross_section_max, " pb")],
      ["filter efficiency", stat(a.filter_efficiency_avg, a.filter_efficiency_min, a.filter_efficiency_max, "")],
      ["generation tasks", a.generation_tasks && a.generation_tasks.length ? a.generation_tasks.join(", ") : null],
      ["lost lumi blocks", lost.length ? lost.map(([run, lbs]) => `run ${run}: ${lbs.join(", ")}`).join("; ") : null],
      ["parents", prov.parents && prov.parents.length ? prov.parents.join(", ") : null],
      ["children", prov.children && prov.children.length ? prov.children.join(", ") : null],
      ["counts history", counts.length ? counts.join("; ") : null],
    ]);
  }

  async function showDetails(name) {
    page.selected = name;
    const panel = $("#dataset-details");
    const body = $("#details-body");
    panel.hidden = false;
    panel.dataset.name = name;
    $("#details-name").textContent = name;
    clear($("#details-action"));
    loading(body);
    for (const tr of document.querySelectorAll('[data-testid="dataset-row"]')) {
      tr.classList.toggle("selected", tr.dataset.name === name);
    }
    panel.scrollIntoView({ behavior: "smooth", block: "start" });
    let d;
    try {
      d = await api(`/datasets/${encodeURIComponent(name)}`);
    } catch (e) {
      clear(body).append(el("div", { class: "empty" }, "Could not load the dataset."));
      showError(e, name);
      return;
    }
    if (page.selected !== name) return;
    panel.dataset.status = d.status || "";
    $("#details-action").append(actionButton(d.name || name, d.status, "details-"));
    clear(body);
    const section = (title, testid, content) => el("section", { "data-testid": testid }, el("h3", null, title),
      content);

    body.append(section("Counts", "details-counts", kv([
      ["status", badge(d.status)], ["source", d.source], ["project", d.project], ["run", d.run_number],
      ["dsid", d.dsid], ["stream", d.stream], ["type", d.datatype], ["version", d.version],
      ["files", num(d.nfiles)], ["events", num(d.nevents)], ["unique events", num(d.unique_events)],
      ["duplicates", num(d.duplicates)], ["stages", Array.isArray(d.stages) ? d.stages.join(", ") : d.stages],
      ["SMKs", Array.isArray(d.smks) ? d.smks.join(", ") : d.smks],
      ["triggers", d.trigger_information === false ? "none: its events carry no trigger decisions" : null],
      ["menu missing", d.menu_missing && d.menu_missing.length ? "SMK " + d.menu_missing.join(", ") : null],
      ["loaded", time(d.loaded_at)], ["obsolete since", time(d.obsolete_at)],
    ])));

    body.append(section("AMI", "details-ami", amiBox(d)));

    const progress = d.progress;
    const progressBox = el("div");
    if (Array.isArray(progress)) {
      renderTable(progressBox, progressColumns(progress), progress, { testid: "progress-table", empty: "No progress." });
    } else if (progress && typeof progress === "object") {
      progressBox.append(kv(Object.entries(progress).map(([k, v]) => [k.replace(/_/g, " "),
        k === "state" ? badge(v) : /(_at|seen|updated)$/.test(k) ? time(v)
          : v !== null && typeof v === "object" ? JSON.stringify(v) : v])));
    } else {
      progressBox.append(el("div", { class: "empty" }, "No ingestion progress recorded."));
    }
    body.append(section("Progress", "details-progress", progressBox));

    const runsBox = el("div");
    renderTable(runsBox, [
      { key: "dag_id", label: "DAG" },
      { key: "run_id", label: "run", render: (r) => link(r.url, r.run_id, { "data-testid": "run-link",
        "data-dag-id": r.dag_id, "data-run-id": r.run_id }) },
      { key: "state", label: "state", render: (r) => badge(r.state) },
      { key: "start", label: "start", render: (r) => time(r.start) },
      { key: "end", label: "end", render: (r) => time(r.end) },
    ], d.runs || [], { testid: "runs-table", rowTestid: "run-row", empty: "No Airflow runs recorded." });
    body.append(section("Airflow runs", "details-runs", runsBox));

    const hist = el("div");
    renderTable(hist, [
      { key: "at", label: "at", render: (r) => time(r.at) }, { key: "action", label: "action" },
      { key: "load_id", label: "load id", class: "mono" }, { key: "replaced_load_id", label: "replaced", class: "mono" },
      { key: "nevents", label: "events", num: true },
    ], d.history || [], { testid: "history-table", rowTestid: "history-row", empty: "No load history." });
    body.append(section("Load history", "details-history", hist));

    const val = el("div");
    renderReports(val, d.validation_reports || [], "validation-table", "No validation reports.");
    body.append(section("Validation reports", "details-validation", val));
    const cons = el("div");
    renderReports(cons, d.consistency_reports || [], "consistency-table", "No consistency findings.");
    body.append(section("Consistency findings", "details-consistency", cons));

    const files = d.files || [];
    if (files.length) {
      const box = el("div");
      renderTable(box, [{ key: "guid", label: "GUID", class: "mono" }, { key: "lfn", label: "LFN", class: "name" },
        { key: "nevents", label: "events", num: true }], files.slice(0, 500), { testid: "files-table" });
      body.append(el("section", { "data-testid": "details-files" }, el("details", null,
        el("summary", null, `${num(files.length)} files` + (files.length > 500 ? " (first 500 shown)" : "")), box)));
    }
  }

  /* ---------- wiring ---------- */
  function refreshAll() {
    clearError();
    loadOperations();
    loadRates();
    loadDatasets();
    if (page.selected) showDetails(page.selected);
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("#filters").addEventListener("submit", (ev) => {
      ev.preventDefault();
      clearError();
      page.filters = readFilters();
      page.limit = Number($("#filter-limit").value) || 100;
      page.offset = 0;
      loadDatasets();
    });
    $("#filters").addEventListener("reset", () => setTimeout(() => {
      page.filters = {};
      page.limit = Number($("#filter-limit").value) || 100;
      page.offset = 0;
      loadDatasets();
    }));
    $("#prev-page").addEventListener("click", () => {
      page.offset = Math.max(0, page.offset - page.limit);
      loadDatasets();
    });
    $("#next-page").addEventListener("click", () => {
      page.offset += page.limit;
      loadDatasets();
    });
    $("#rates-bucket").addEventListener("change", loadRates);
    $("#refresh").addEventListener("click", refreshAll);
    $("#close-details").addEventListener("click", () => {
      page.selected = null;
      $("#dataset-details").hidden = true;
      for (const tr of document.querySelectorAll('tr.selected')) tr.classList.remove("selected");
    });
    $("#notice").addEventListener("click", (ev) => { ev.currentTarget.hidden = true; });
    page.limit = Number($("#filter-limit").value) || 100;
    refreshAll();
  });
})();
