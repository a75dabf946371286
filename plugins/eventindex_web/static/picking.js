/* The Event Picking Server page: submit a request (file upload), the list of requests, one request's details. */
(function () {
  "use strict";
  const { api, qs, $, el, clear, loading, showError, clearError, num, time, badge, link, renderTable, kv, busy } =
    window.EI;

  const DONE = new Set(["done", "failed"]);  // a request's final states (planned -> extracted -> done | failed)
  const RUN_ACTIVE = new Set(["queued", "running", "scheduled", "restarting", "up_for_retry"]);
  const OPTIONAL = ["project", "stream", "version", "output", "max_events"];  // left out when empty
  const REFRESH_MS = 5000;
  const state = { rows: [], selected: null, detail: null, timer: null, notFound: 0, submitted: null };

  /* ---------- submit ---------- */
  async function submit(ev) {
    ev.preventDefault();
    clearError();
    const form = ev.currentTarget;
    const file = form.events.files[0];
    if (!file) {
      showError("Choose a file of 'run event' lines first.");
      return;
    }
    const data = new FormData(form);
    for (const name of OPTIONAL) {
      if (String(data.get(name) ?? "").trim() === "") data.delete(name);
    }
    const result = $("#pick-result");
    result.hidden = true;
    let res;
    try {
      res = await busy($("#pick-submit"), () => api("/picks", { method: "POST", body: data }));
    } catch (e) {
      if (e.status === 403) {
        showError("Submitting refused: you need the right to trigger eventindex_pick in Airflow" +
          (e.message && e.message !== "Forbidden" ? ` (${e.message})` : "") + ".");
      } else {
        showError(e, "Request refused");
      }
      return;
    }
    clear(result).append("Request ", el("strong", { class: "mono", "data-testid": "pick-request-id" }, res.request_id),
      " submitted", ...(res.state ? [" (", badge(res.state), ")"] : []),
      res.events !== undefined ? ` with ${num(res.events)} events` : "", ": ",
      link(res.run_url, "open its run in Airflow", { "data-testid": "pick-run-link" }), ".");
    result.hidden = false;
    state.submitted = res;
    await loadPicks();
    await showPick(res.request_id);  // before the caller's schedule(): the new request keeps the page polling
  }

  /* ---------- list ---------- */
  async function loadPicks(quiet) {
    const wrap = $("#picks-wrap");
    if (!quiet && !state.rows.length) loading(wrap);
    let rows;
    try {
      rows = await api("/picks" + qs({ limit: 50 }));
    } catch (e) {
      if (!quiet || e.status === 401) showError(e, "Requests");
      if (!state.rows.length) clear(wrap);
      return;
    }
    state.rows = Array.isArray(rows) ? rows : [];
    renderTable(wrap, [
      { key: "request_id", label: "request", class: "mono", render: (r) => el("button", { type: "button",
        class: "link mono", "data-testid": "pick-link", "data-id": r.request_id,
        onclick: () => showPick(r.request_id).then(schedule) }, r.request_id) },
      { key: "created", label: "created", render: (r) => time(r.created) },
      { key: "state", label: "state", render: (r) => badge(r.state) },
      { key: "requested", label: "requested", num: true },
      { key: "found", label: "found", num: true },
      { key: "missing", label: "missing", num: true },
      { key: "output_dataset", label: "output dataset", class: "mono" },
      { key: "error", label: "error", render: (r) => r.error || "" },
      { key: "run_url", label: "run", render: (r) => link(r.run_url, "run", { "data-testid": "pick-row-run-link" }) },
    ], state.rows, { testid: "picks-table", rowTestid: "pick-row", empty: "No picking requests yet.",
      rowAttrs: (r) => ({ "data-id": r.request_id, "data-state": r.state,
        class: r.request_id === state.selected ? "selected" : null }) });
  }

  /* ---------- details ---------- */
  async function showPick(id, quiet) {
    if (state.selected !== id) state.notFound = 0;
    state.selected = id;
    const panel = $("#pick-details");
    const body = $("#pick-details-body");
    panel.hidden = false;
    panel.dataset.id = id;
    $("#details-request-id").textContent = id;
    for (const tr of document.querySelectorAll('[data-testid="pick-row"]')) {
      tr.classList.toggle("selected", tr.dataset.id === id);
    }
    if (!quiet) {
      loading(body);
      panel.scrollIntoView({ behavior: "smooth", block: "start" });
    }
    let d;
    try {
      d = await api(`/picks/${encodeURIComponent(id)}`);
    } catch (e) {
      if (state.selected !== id) return;
      if (e.status === 404 && state.submitted && state.submitted.request_id === id && state.notFound < 60) {
        state.notFound += 1;  // just submitted: its row appears once the run has started planning
        state.detail = { request_id: id, state: state.submitted.state || "queued", pending: true };
        clear(body).append(el("p", { class: "loading", "data-testid": "pick-pending" },
          "Waiting for the run to start planning the request…"));
        schedule();
        return;
      }
      state.detail = null;
      clear(body).append(el("div", { class: "empty" }, "Could not load the request."));
      showError(e, `Request ${id}`);
      return;
    }
    if (state.selected !== id) return;
    state.detail = d;
    renderDetails(body, d);
  }

  function renderDetails(body, d) {
    clear(body);
    const summary = d.summary && typeof d.summary === "object" ? d.summary : {};
    const params = d.params && typeof d.params === "object" ? d.params : {};
    const run = d.run || {};
    const section = (title, testid, ...content) => el("section", { "data-testid": testid }, el("h3", null, title),
      ...content);
    const span = (testid, v) => el("span", { "data-testid": testid }, v);

    body.append(section("Status", "details-status", kv([
      ["state", span("pick-state", badge(d.state))],
      ["run", span("run-state", [badge(run.state), " ", link(run.url || d.run_url, "open in Airflow",
        { "data-testid": "details-run-link" })])],
      ["run started", time(run.start)], ["run ended", time(run.end)],
      ["run note", run.note ? el("div", { "data-testid": "run-note" }, window.EI.markdown(run.note)) : null],
      ["created", time(d.created)],
      ["requested", num(d.requested)],
      ["found", span("pick-found", num(d.found ?? summary.found))],
      ["missing", span("pick-missing", num(d.missing ?? summary.missing))],
      ["duplicates", num(summary.duplicates)],
      ["error", d.error || summary.error],
      ["parameters", Object.entries(params).filter(([k, v]) => !["events", "events_uri"].includes(k) &&
        v !== null && v !== "").map(([k, v]) => `${k}=${v}`).join("  ")],
    ])));

    const files = Array.isArray(summary.files) ? summary.files : [];
    // each output file is a download through the app (GET /picks/<id>/files/<name>, with the caller's session),
    // not a path on the server
    const download = (f) => el("a", { href: `${window.EI.API}/picks/${encodeURIComponent(d.request_id)}/files/` +
      encodeURIComponent(String(f)), download: String(f), "data-testid": "output-file-link" }, String(f));
    body.append(section("Output", "details-output",
      kv([["dataset", span("output-dataset", d.output_dataset || summary.output_dataset || "")],
        ["RSE", summary.output_rse], ["backend", summary.backend],
        ["input files", num(summary.input_files)]]),
      files.length
        ? el("ul", { "data-testid": "output-files", class: "mono" }, files.map((f) => el("li", null, download(f))))
        : el("div", { class: "empty", "data-testid": "output-files-empty" }, DONE.has(d.state) ? "No output files."
          : "No output files yet.")));

    const missing = Array.isArray(summary.missing_events) ? summary.missing_events : [];
    if (missing.length || Number(d.missing) > 0) {
      const box = el("div");
      renderTable(box, [
        { key: "run", label: "run", num: true, render: (r) => String(r.run ?? r.run_number ?? "") },
        { key: "event", label: "event", num: true, render: (r) => String(r.event ?? r.event_number ?? "") },
        { key: "reason", label: "reason" },
      ], missing, { testid: "missing-events", rowTestid: "missing-event",
        empty: "The missing events are listed once the request is planned." });
      const more = Number(d.missing) > missing.length && missing.length
        ? el("p", { class: "hint" }, `The first ${num(missing.length)} of ${num(d.missing)} missing events.`) : null;
      body.append(section("Missing events", "details-missing", box, more));
    }

    const tasksBox = el("div");
    renderTable(tasksBox, [
      { key: "task_id", label: "task", class: "mono" },
      { key: "map_index", label: "map index", num: true,
        render: (r) => (r.map_index === undefined || r.map_index === null || r.map_index < 0 ? "" : String(r.map_index)) },
      { key: "state", label: "state", render: (r) => badge(r.state) },
      { key: "try_number", label: "try", num: true },
      { key: "start", label: "start", render: (r) => time(r.start) },
      { key: "end", label: "end", render: (r) => time(r.end) },
      { key: "log_url", label: "log", render: (r) => link(r.log_url, "log", { "data-testid": "log-link" }) },
    ], d.tasks || [], { testid: "tasks-table", rowTestid: "task-row", empty: "No tasks yet.",
      rowAttrs: (r) => ({ "data-task-id": r.task_id, "data-state": r.state }) });
    body.append(section("Tasks", "details-tasks", tasksBox));

    const failed = d.failed_steps || [];
    if (failed.length) {
      body.append(section("Failed steps", "failed-steps", ...failed.map((f) => el("div",
        { class: "error", "data-testid": "failed-step", "data-task-id": f.task_id },
        el("strong", { class: "mono" }, f.task_id + (f.map_index >= 0 ? `[${f.map_index}]` : "")), ": ",
        f.error ? String(f.error) : "no error text recorded, see its log", " ",
        link(f.log_url, "(log)", { "data-testid": "failed-step-log" })))));
    }
  }

  /* ---------- auto-refresh every 5 s while a request is unfinished ---------- */
  function active() {
    const detail = state.detail;
    const detailActive = detail && (detail.pending || !DONE.has(detail.state) ||
      (detail.run && RUN_ACTIVE.has(detail.run.state)));
    // a request left unfinished for a day (its run died before recording the outcome) stops the polling
    const recent = (r) => !r.created || Date.now() - Date.parse(r.created) < 86400e3;
    return state.rows.some((r) => !DONE.has(r.state) && recent(r)) || Boolean(detailActive && recent(detail));
  }

  function schedule() {
    clearTimeout(state.timer);
    const on = active();
    $("#picks-autorefresh").hidden = !on;
    if (on) state.timer = setTimeout(tick, REFRESH_MS);
  }

  async function tick() {
    if (document.hidden) {  // a background tab polls nobody; it refreshes when shown again
      state.timer = null;
      return;
    }
    await loadPicks(true);
    if (state.selected) await showPick(state.selected, true);
    schedule();
  }

  async function refresh() {
    clearError();
    await loadPicks();
    if (state.selected) await showPick(state.selected, true);
    schedule();
  }

  /** A caller who may not trigger eventindex_pick gets the form disabled and told why, not a refusal after
   *  filling it in. */
  async function applyRights() {
    const me = await window.EI.me();
    if (!me || !me.may || me.may.submit_picks) return;
    $("#pick-submit").disabled = true;
    const why = $("#pick-not-allowed");
    why.textContent = `${me.name} may not submit picking requests: it needs the right to trigger eventindex_pick ` +
      "in Airflow (ask an administrator). The requests below can still be followed.";
    why.hidden = false;
  }

  document.addEventListener("DOMContentLoaded", () => {
    applyRights();
    $("#pick-form").addEventListener("submit", async (ev) => {
      await submit(ev);
      schedule();
    });
    $("#picks-refresh").addEventListener("click", refresh);
    $("#close-pick-details").addEventListener("click", () => {
      state.selected = null;
      state.detail = null;
      $("#pick-details").hidden = true;
      for (const tr of document.querySelectorAll("tr.selected")) tr.classList.remove("selected");
      schedule();
    });
    document.addEventListener("visibilitychange", () => {
      if (!document.hidden && !state.timer) tick();
    });
    const wanted = new URLSearchParams(location.search).get("request");
    refresh().then(() => {
      if (wanted) showPick(wanted).then(schedule);
    });
  });
})();
