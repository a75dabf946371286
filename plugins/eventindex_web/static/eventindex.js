/* EventIndex pages: shared helpers (global `EI`). No build step, no framework: plain DOM and fetch.
 * The REST API is /eventindex/api/v1 (plugins/eventindex_web/API.md); authentication is Airflow's `_token` cookie,
 * sent with same-origin reads. Writes (POST ...) must carry it as `Authorization: Bearer`: the server refuses the
 * cookie alone on writes, so that another site's page cannot write as the logged-in user (CSRF); only this page's
 * script can read the cookie and put it into a header. Charts use the vendored Vega-Lite (global `vegaEmbed`). */
(function (global) {
  "use strict";

  const API = "/eventindex/api/v1";
  const NF = new Intl.NumberFormat("en-US");

  /** An API error: the server's `detail`, and the HTTP status. */
  class ApiError extends Error {
    constructor(message, status) {
      super(message);
      this.name = "ApiError";
      this.status = status;
    }
  }

  /** The text of a FastAPI `detail`: a string, or a list of validation errors. */
  function detailText(detail) {
    if (detail == null) return "";
    if (typeof detail === "string") return detail;
    if (Array.isArray(detail)) {
      return detail.map((d) => {
        if (d && typeof d === "object") {
          const where = Array.isArray(d.loc) ? d.loc.filter((x) => x !== "query" && x !== "body").join(".") : "";
          return (where ? where + ": " : "") + (d.msg || JSON.stringify(d));
        }
        return String(d);
      }).join("; ");
    }
    return JSON.stringify(detail);
  }

  /** fetch(`/eventindex/api/v1${path}`) -> the JSON answer; throws ApiError with the server's detail on non-2xx.
   *  A 401 also shows "Log in to Airflow first" (with a link to /) in the page's error element. */
  async function api(path, opts = {}) {
    let res;
    const method = String(opts.method || "GET").toUpperCase();
    const headers = { Accept: "application/json", ...(opts.headers || {}) };
    if (method !== "GET" && method !== "HEAD") {
      const t = token();
      if (t) headers.Authorization = "Bearer " + t;
    }
    try {
      res = await fetch(API + path, { credentials: "same-origin", ...opts, headers });
    } catch (e) {
      throw new ApiError("the EventIndex API cannot be reached: " + e.message, 0);
    }
    const type = res.headers.get("content-type") || "";
    let body = null;
    if (res.status !== 204) {
      body = type.includes("json") ? await res.json().catch(() => null) : await res.text().catch(() => "");
    }
    if (res.status === 401) {
      showLogin();
      throw new ApiError("Log in to Airflow first", 401);
    }
    if (!res.ok) {
      let msg = body && typeof body === "object" ? detailText(body.detail) : String(body || "").slice(0, 300);
      if (!msg) msg = `${res.status} ${res.statusText}`;
      throw new ApiError(msg, res.status);
    }
    return body;
  }

  /** Airflow's login token (the `_token` cookie its login page sets), for the Authorization header of writes. */
  function token() {
    const m = document.cookie.match(/(?:^|;\s*)_token=([^;]*)/);
    return m ? decodeURIComponent(m[1]) : null;
  }

  /** Who the caller is and what they may do (GET /me, asked once per page): {name, role, may: {read,
   *  change_datasets, submit_picks}}, or null when it cannot be told (the server still refuses what is not allowed). */
  let meOnce = null;
  function me() {
    if (!meOnce) meOnce = api("/me").catch(() => null);
    return meOnce;
  }

  /** A run note's Markdown as DOM nodes, never as HTML: paragraphs, "- " list items, **bold** and `code`; anything
   *  else stays text as written (the note is user-influenced: no innerHTML). */
  function markdown(text) {
    const box = el("div", { class: "md" });
    let list = null;
    const inline = (line) => line.split(/(\*\*[^*]+\*\*|`[^`]+`)/).filter((x) => x !== "").map((part) =>
      /^\*\*[^*]+\*\*$/.test(part) ? el("strong", null, part.slice(2, -2))
        : /^`[^`]+`$/.test(part) ? el("code", null, part.slice(1, -1)) : part);
    for (const raw of String(text ?? "").split("\n")) {
      const item = raw.match(/^\s*[-*]\s+(.*)$/);
      if (item) {
        if (!list) box.append(list = el("ul"));
        list.append(el("li", null, inline(item[1])));
      } else if (raw.trim()) {
        list = null;
        box.append(el("p", null, inline(raw)));
      }
    }
    return box;
  }

  /** URLSearchParams from an object: arrays repeat the key, empty values are left out. */
  function qs(params) {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(params || {})) {
      for (const x of Array.isArray(v) ? v : [v]) {
        if (x === undefined || x === null || String(x).trim() === "") continue;
        q.append(k, String(x).trim());
      }
    }
    const s = q.toString();
    return s ? "?" + s : "";
  }

  /* ---- DOM ---- */
  const $ = (sel, root = document) => root.querySelector(sel);

  /** el("td", {class: "num", dataset: {testid: "x"}}, child, ...): children are nodes or text. */
  function el(tag, attrs, ...children) {
    const n = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === "class") n.className = v;
      else if (k === "text") n.textContent = v;
      else if (k === "dataset") Object.assign(n.dataset, v);
      else if (k.startsWith("on") && typeof v === "function") n.addEventListener(k.slice(2), v);
      else n.setAttribute(k, v === true ? "" : v);
    }
    for (const c of children.flat(Infinity)) {
      if (c === undefined || c === null || c === false) continue;
      n.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return n;
  }

  function clear(node) {
    while (node.firstChild) node.removeChild(node.firstChild);
    return node;
  }

  function loading(node, text = "Loading…") {
    clear(node).append(el("div", { class: "loading", "data-testid": "loading" }, text));
  }

  /* ---- the page's error element (data-testid="error") ---- */
  function errorBox() {
    return document.querySelector('[data-testid="error"]');
  }

  function showError(err, prefix) {
    const box = errorBox();
    if (!box) return;
    if (err && err.status === 401) return showLogin();
    const msg = err instanceof Error ? err.message : String(err);
    clear(box).append(prefix ? `${prefix}: ${msg}` : msg);
    box.hidden = false;
    box.scrollIntoView({ block: "nearest" });
  }

  function showLogin() {
    const box = errorBox();
    if (!box) return;
    clear(box).append("Log in to Airflow first: ", el("a", { href: "/", target: "_top", "data-testid": "login-link" },
      "open Airflow and log in"), ", then reload this page.");
    box.hidden = false;
  }

  function clearError() {
    const box = errorBox();
    if (box) { clear(box); box.hidden = true; }
  }

  /* ---- formatting ---- */
  function num(n) {
    if (n === undefined || n === null || n === "") return "";
    const x = Number(n);
    return Number.isFinite(x) ? NF.format(x) : String(n);
  }

  function time(t) {
    if (!t) return "";
    return String(t).replace("T", " ").replace(/(\.\d+)?(Z|[+-]\d\d:?\d\d)?$/, "").slice(0, 19);
  }

  function badge(state) {
    if (state === undefined || state === null || state === "") return "";
    const s = String(state);
    return el("span", { class: "badge s-" + s.replace(/[^a-z0-9_]/gi, "_").toLowerCase(), "data-state": s }, s);
  }

  /** A link that leaves the iframe (Airflow UI pages) or opens a download. */
  function link(href, text, attrs = {}) {
    if (!href) return text || "";
    return el("a", { href, target: "_top", ...attrs }, text || href);
  }

  /* ---- tables ---- */
  /** renderTable(container, columns, rows, opts): columns [{key, label, num, render(row) -> node|text, class}];
   *  opts: testid (of the table), rowTestid, rowAttrs(row) -> attrs, empty (text), onRow(row, tr). */
  function renderTable(container, columns, rows, opts = {}) {
    clear(container);
    if (!rows || rows.length === 0) {
      container.append(el("div", { class: "empty", "data-testid": opts.testid ? opts.testid + "-empty" : "empty" },
        opts.empty || "Nothing to show."));
      return null;
    }
    const thead = el("thead", null, el("tr", null, columns.map((c) =>
      el("th", { class: c.num ? "num" : null, scope: "col" }, c.label ?? c.key))));
    const tbody = el("tbody");
    for (const row of rows) {
      const attrs = { "data-testid": opts.rowTestid, ...(opts.rowAttrs ? opts.rowAttrs(row) : {}) };
      const tr = el("tr", attrs, columns.map((c) => {
        let v = c.render ? c.render(row) : row[c.key];
        if (!c.render && c.num) v = num(v);
        else if (!c.render && v !== null && typeof v === "object") v = JSON.stringify(v);
        return el("td", { class: [c.num ? "num" : "", c.class || ""].join(" ").trim() || null,
          "data-col": c.key }, v);
      }));
      if (opts.onRow) opts.onRow(row, tr);
      tbody.append(tr);
    }
    const table = el("table", { class: "data", "data-testid": opts.testid }, thead, tbody);
    container.append(el("div", { class: "table-wrap" }, table));
    return table;
  }

  /** Columns for rows of unknown shape: `preferred` first (when present), then the others. */
  function autoColumns(rows, preferred = [], numeric = []) {
    const keys = [];
    for (const r of rows || []) for (const k of Object.keys(r)) if (!keys.includes(k)) keys.push(k);
    const order = [...preferred.filter((k) => keys.includes(k)), ...keys.filter((k) => !preferred.includes(k))];
    return order.map((k) => ({
      key: k, label: k.replace(/_/g, " "), num: numeric.includes(k),
      render: /(^|_)(at|created|updated|start|end|first_seen)$/.test(k) ? (r) => time(r[k]) : undefined,
    }));
  }

  function kv(pairs) {
    return el("dl", { class: "kv" }, pairs.filter(([, v]) => v !== undefined && v !== null && v !== "")
      .map(([k, v]) => [el("dt", null, k), el("dd", { "data-key": k }, v)]));
  }

  /* ---- charts (vendored Vega-Lite) ---- */
  async function chart(container, spec) {
    clear(container);
    if (typeof global.vegaEmbed !== "function") {
      container.append(el("div", { class: "empty" }, "Charts unavailable: the Vega-Lite scripts did not load."));
      return null;
    }
    const composite = ["vconcat", "hconcat", "concat", "facet", "repeat"].some((k) => k in spec);
    const full = {
      $schema: "https://vega.github.io/schema/vega-lite/v6.json",
      ...(composite ? {} : { width: "container" }),
      config: { font: "system-ui, sans-serif", axis: { labelFontSize: 11, titleFontSize: 12 },
        legend: { labelFontSize: 11 }, view: { stroke: null } },
      ...spec,
    };
    try {
      const res = await global.vegaEmbed(container, full, { actions: false, renderer: "svg" });
      return res.view;
    } catch (e) {
      container.append(el("div", { class: "empty" }, "Chart failed: " + e.message));
      return null;
    }
  }

  /** Disable a button while an async action runs. */
  async function busy(button, fn) {
    if (button) button.disabled = true;
    try {
      return await fn();
    } finally {
      if (button) button.disabled = false;
    }
  }

  global.EI = { API, ApiError, api, token, me, markdown, qs, $, el, clear, loading, showError, showLogin, clearError,
    num, time, badge, link, renderTable, autoColumns, kv, chart, busy, detailText };
})(typeof window !== "undefined" ? window : globalThis);
