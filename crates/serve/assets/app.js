// kaq's search page: a query box with completion and inline errors, a histogram, top values and
// the matching events, all from the server's /api. Text from the logs is only ever set as
// textContent (never as HTML).
"use strict";

const $ = (id) => document.getElementById(id);
const q = $("q"), mirror = $("qmirror"), suggest = $("suggest"), errorBox = $("error");
const TOPS = [["user", "Users"], ["verb", "Verbs"], ["ns", "Namespaces"], ["ip", "Addresses"], ["code", "Codes"]];
const INTERVAL = { "": "1h", "-15m": "30s", "-1h": "1m", "-6h": "5m", "-24h": "30m", "-7d": "6h", custom: "1h" };
const ROWS = 200;
let fields = [];  // from /api/fields
let running = 0;  // queries in flight (the test waits for 0)
let generation = 0;

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v; else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
}

function svg(tag, attrs) {
  const e = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  return e;
}

// ---- talking to the server -------------------------------------------------------------------

function params(text) {
  const p = new URLSearchParams({ q: text });
  const r = $("range").value;
  if (r === "custom") {
    if ($("since").value.trim()) p.set("since", $("since").value.trim());
    if ($("until").value.trim()) p.set("until", $("until").value.trim());
  } else if (r) {
    p.set("since", r);
  }
  return p;
}

async function ask(text) {
  running++;
  try {
    let res;
    for (let tries = 0; ; tries++) {
      res = await fetch("api/query?" + params(text), { headers: { Accept: "application/x-ndjson" } });
      if (res.status !== 503 || tries >= 3 || !res.headers.get("retry-after")) break;
      await new Promise((ok) => setTimeout(ok, 1000 * Number(res.headers.get("retry-after"))));
    }
    const body = await res.text();
    if (!res.ok) {
      let err;
      try { err = JSON.parse(body); } catch (_) { err = { message: body || res.statusText }; }
      return { error: err };
    }
    const rows = body.split("\n").filter((l) => l).map((l) => JSON.parse(l));
    return { rows, cut: Number(res.headers.get("x-kaq-rows-cut") || 0), whole: res.headers.get("x-kaq-whole-events") === "true",
             columns: JSON.parse(res.headers.get("x-kaq-columns") || "[]") };
  } finally {
    running--;
  }
}

// ---- the query box: errors underlined, completion --------------------------------------------

function showError(err) {
  mirror.textContent = "";
  if (!err) { errorBox.hidden = true; errorBox.textContent = ""; mirror.append(q.value); return; }
  errorBox.hidden = false;
  errorBox.textContent = (err.code ? err.code + ": " : "") + (err.message || "error") +
    (err.hints && err.hints.length ? " — " + err.hints.join("; ") : "");
  const text = q.value;
  const s = err.span_utf16;
  if (!s) { mirror.append(text); return; }
  const start = Math.min(s.start, text.length), end = Math.min(s.end, text.length);
  const mark = el("mark", { class: start === end ? "empty" : "" }, text.slice(start, end) || "");
  mirror.append(text.slice(0, start), mark, text.slice(end));
}

// The word before the cursor: a field name being typed, or `field:` and a value's beginning.
function wordAtCursor() {
  const pos = q.selectionStart ?? q.value.length;
  const before = q.value.slice(0, pos);
  const m = before.match(/(-?)([A-Za-z_][\w.]*)(:?)([^\s()|]*)$/);
  if (!m) return null;
  return { start: pos - m[0].length + m[1].length, end: pos, field: m[2], colon: m[3] === ":", value: m[4] };
}

function candidates() {
  const w = wordAtCursor();
  if (!w) return [];
  if (w.colon) {
    const f = fields.find((f) => f.name === w.field || (f.aliases || []).includes(w.field));
    if (!f) return [];
    const pre = w.value.replace(/^"/, "").toLowerCase();
    return f.values.filter((v) => String(v.value).toLowerCase().startsWith(pre)).slice(0, 12)
      .map((v) => ({ text: w.field + ":" + quote(v.value), label: String(v.value), note: String(v.count), w }));
  }
  const pre = w.field.toLowerCase();
  if (!pre) return [];
  return fields.filter((f) => f.name.startsWith(pre) && f.name !== pre).slice(0, 12)
    .map((f) => ({ text: f.name + ":", label: f.name + ":", note: f.type, w }));
}

let active = 0;
let shown = [];

function renderSuggest() {
  shown = candidates();
  suggest.textContent = "";
  if (!shown.length || document.activeElement !== q) { suggest.hidden = true; return; }
  active = Math.min(active, shown.length - 1);
  shown.forEach((c, i) => {
    const li = el("li", { class: i === active ? "active" : "" }, el("span", {}, c.label), el("small", {}, c.note));
    li.addEventListener("mousedown", (e) => { e.preventDefault(); pick(c); });
    suggest.append(li);
  });
  suggest.hidden = false;
}

function pick(c) {
  const v = q.value;
  q.value = v.slice(0, c.w.start) + c.text + v.slice(c.w.end);
  const pos = c.w.start + c.text.length;
  q.setSelectionRange(pos, pos);
  active = 0;
  showError(null);
  renderSuggest();
}

q.addEventListener("input", () => { active = 0; showError(null); renderSuggest(); });
q.addEventListener("blur", () => { suggest.hidden = true; });
q.addEventListener("focus", renderSuggest);
q.addEventListener("keydown", (e) => {
  if (suggest.hidden || !shown.length) return;
  if (e.key === "ArrowDown") { active = (active + 1) % shown.length; renderSuggest(); e.preventDefault(); }
  else if (e.key === "ArrowUp") { active = (active + shown.length - 1) % shown.length; renderSuggest(); e.preventDefault(); }
  else if (e.key === "Tab") { pick(shown[active]); e.preventDefault(); }
  else if (e.key === "Escape") { suggest.hidden = true; }
});
q.addEventListener("scroll", () => { mirror.scrollLeft = q.scrollLeft; });

// A value as the query language reads it: bare when it can be, else in double quotes.
function quote(v) {
  const s = String(v);
  if (/^[^\s"()|\\:*]+(:[^\s"()|\\*]+)*$/.test(s) && !/^(AND|OR|NOT)$/i.test(s)) return s;
  return '"' + s.replace(/\\/g, "\\\\").replace(/"/g, '\\"') + '"';
}

// ---- results -----------------------------------------------------------------------------

const EVENT_COLUMNS = [
  ["time", (e) => e.requestReceivedTimestamp || ""],
  ["user", (e) => (e.user && e.user.username) || ""],
  ["verb", (e) => e.verb || ""],
  ["ns", (e) => (e.objectRef && e.objectRef.namespace) || ""],
  ["resource", (e) => (e.objectRef && (e.objectRef.resource + (e.objectRef.subresource ? "/" + e.objectRef.subresource : ""))) || ""],
  ["name", (e) => (e.objectRef && e.objectRef.name) || ""],
  ["code", (e) => (e.responseStatus && e.responseStatus.code) ?? ""],
  ["ip", (e) => (e.sourceIPs && e.sourceIPs[0]) || ""],
  ["uri", (e) => e.requestURI || ""],
];

function renderRows(ans) {
  const thead = $("rows").tHead, tbody = $("rows").tBodies[0];
  thead.textContent = ""; tbody.textContent = "";
  const cols = ans.whole ? EVENT_COLUMNS.map(([n, f]) => [n, f]) : ans.columns.map((c) => [c, (r) => r[c]]);
  thead.append(el("tr", {}, ...cols.map(([n]) => el("th", {}, n))));
  for (const r of ans.rows) {
    tbody.append(el("tr", {}, ...cols.map(([, f]) => {
      let v = f(r);
      if (v === null || v === undefined) v = "";
      if (typeof v === "object") v = JSON.stringify(v);
      return el("td", { title: String(v) }, String(v));
    })));
  }
  $("rowcount").textContent = ans.rows.length + (ans.rows.length >= ROWS ? " shown (the first " + ROWS + ")" : "");
}

function renderChart(rows) {
  const c = $("chart");
  c.textContent = "";
  const w = c.clientWidth || 800, h = c.clientHeight || 120, pad = 16;
  if (!rows.length) {
    const t = svg("text", { x: 8, y: 20 }); t.textContent = "no matches"; c.append(t); return;
  }
  const max = Math.max(...rows.map((r) => r.count));
  const bw = Math.min((w - 2) / rows.length, 48);
  rows.forEach((r, i) => {
    const bh = max ? Math.max(1, (r.count / max) * (h - pad - 4)) : 0;
    const rect = svg("rect", { class: "bar", x: 1 + i * bw, y: h - pad - bh, width: Math.max(1, bw - 1), height: bh });
    const tip = svg("title", {}); tip.textContent = r.time + ": " + r.count; rect.append(tip);
    c.append(rect);
  });
  const first = svg("text", { x: 2, y: h - 3 }); first.textContent = rows[0].time; c.append(first);
  const last = svg("text", { x: w - 2, y: h - 3, "text-anchor": "end" }); last.textContent = rows[rows.length - 1].time; c.append(last);
  const total = rows.reduce((a, r) => a + r.count, 0);
  $("summary").textContent = "— " + total + " matches";
}

function renderTop(field, title, rows) {
  const box = el("div", { class: "top", "data-field": field }, el("h2", {}, title));
  const ol = el("ol");
  const max = Math.max(1, ...rows.map((r) => r.count));
  for (const r of rows) {
    const v = r[field];
    const li = el("li", { title: "add " + field + ":" + v + " to the query" },
      el("span", { class: "v" }, v === null ? "(none)" : String(v)), el("span", { class: "n" }, r.count));
    li.append(el("span", { class: "bar" }));
    li.lastChild.style.width = (100 * r.count / max) + "%";
    if (v !== null) li.addEventListener("click", () => addTerm(field, v));
    ol.append(li);
  }
  if (!rows.length) ol.append(el("li", { class: "muted" }, "—"));
  box.append(ol);
  return box;
}

function addTerm(field, value) {
  const term = field + ":" + quote(value);
  const cur = q.value.trim();
  const [filter, ...rest] = cur.split("|");
  const f = filter.trim();
  q.value = (f && f !== "*" ? f + " " : "") + term + (rest.length ? " |" + rest.join("|") : "");
  run();
}

async function run() {
  const gen = ++generation;
  suggest.hidden = true;
  const text = q.value.trim() || "*";
  const filter = text.split("|")[0].trim() || "*";
  const piped = text.includes("|");
  const interval = INTERVAL[$("range").value] || "1h";
  const main = ask(text + " | head " + ROWS);
  const chart = piped ? null : ask(filter + " | timeline " + interval);
  const tops = piped ? [] : TOPS.map(([f]) => ask(filter + " | top 5 " + f));
  const ans = await main;
  if (gen !== generation) return;
  if (ans.error) { showError(ans.error); return; }
  showError(null);
  renderRows(ans);
  history.replaceState(null, "", "?" + new URLSearchParams({ q: text }));
  $("chart-panel").hidden = piped;
  $("tops").hidden = piped;
  if (piped) return;
  const [c, ...t] = await Promise.all([chart, ...tops]);
  if (gen !== generation) return;
  if (!c.error) renderChart(c.rows);
  const box = $("tops");
  box.textContent = "";
  TOPS.forEach(([f, title], i) => box.append(renderTop(f, title, t[i].error ? [] : t[i].rows)));
}

$("search").addEventListener("submit", (e) => { e.preventDefault(); run(); });
$("range").addEventListener("change", () => { $("custom").hidden = $("range").value !== "custom"; run(); });

async function start() {
  running++;
  try {
    const f = await fetch("api/fields").then((r) => r.json());
    fields = f.fields || [];
  } catch (_) { fields = []; }
  try {
    const a = await fetch("api/alerts").then((r) => r.json());
    const box = $("alerts");
    box.textContent = "";
    const show = (x) => {
      const group = Object.entries(x.group || {}).map(([k, v]) => `${k}=${v}`).join(" ");
      box.append(el("p", { class: "alert " + x.severity },
        el("b", {}, `${x.severity} ${x.rule}`), ` ${group} ×${x.count} · ${x.first} → ${x.last}`));
    };
    // Fired as events arrived (the server's rules, as kaq watch runs them), then the pack over
    // the last 24 hours.
    if (a.live && a.live.alerts.length) {
      box.append(el("p", { class: "muted" }, `fired as events arrived: ${a.live.fired}`));
      a.live.alerts.slice(0, 20).forEach(show);
      box.append(el("p", { class: "muted" }, "the built-in pack over the last 24 hours:"));
    }
    if (!a.alerts.length) box.append(el("p", { class: "muted" }, a.note || "no alerts"));
    a.alerts.forEach(show);
  } catch (_) { /* alerts are optional */ }
  finally { running--; }
  const given = new URLSearchParams(location.search).get("q");
  if (given) { q.value = given; run(); }
}

window.kaqBusy = () => running > 0;
start();
