// The consumer-api console: pages drawn from the server's own HTTP API. No framework, no
// build step; charts are SVG drawn here. The API key (when the server has keys) lives in
// this tab's sessionStorage only.
"use strict";

const KEY_STORE = "consumer-api-key";
const main = document.getElementById("main");

// -- formatting -----------------------------------------------------------------------------

const fmt = {
  count(n) {
    if (n == null) return "–";
    const abs = Math.abs(n);
    if (abs >= 1e9) return (n / 1e9).toFixed(1) + " G";
    if (abs >= 1e6) return (n / 1e6).toFixed(1) + " M";
    if (abs >= 1e4) return (n / 1e3).toFixed(1) + " k";
    return Number.isInteger(n) ? n.toLocaleString() : n.toFixed(1);
  },
  rate(n) { return n == null ? "–" : fmt.count(n) + "/s"; },
  bytes(n) {
    if (n == null) return "unknown";
    const units = ["B", "KB", "MB", "GB", "TB"];
    let i = 0;
    while (n >= 1000 && i < units.length - 1) { n /= 1000; i += 1; }
    return (i ? n.toFixed(1) : String(n)) + " " + units[i];
  },
  setting(name, value) {  // a topic setting by its unit: *_ms a duration, *_bytes a size
    if (value === -1) return "no limit";
    if (name.endsWith("_bytes")) return fmt.bytes(value);
    if (name.endsWith("_ms")) {
      const units = [[86400000, "days"], [3600000, "hours"], [60000, "minutes"], [1000, "seconds"]];
      const [size, unit] = units.find(([u]) => value >= u) || [1, "ms"];
      return `${Number((value / size).toFixed(1))} ${unit}`;
    }
    return fmt.count(value);
  },
  time(ms) {  // the browser's time zone; UTC on hover
    const d = new Date(ms);
    return el("time", { datetime: d.toISOString(), title: d.toISOString().replace("T", " ").replace(".000Z", " UTC") },
      d.toLocaleTimeString());
  },
};

// -- the DOM ----------------------------------------------------------------------------------

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (value !== false && value != null) node.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child != null) node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

function show(...nodes) {
  main.replaceChildren(...nodes);
}

function errorBox(error) {
  return el("div", { class: "error", role: "alert" }, error.message);
}

// -- the API ----------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, body) {
    super(body && body.error ? `${body.error} (${body.code}, HTTP ${status})` : `HTTP ${status}`);
    this.status = status;
    this.code = body && body.code;
  }
}

async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  const key = sessionStorage.getItem(KEY_STORE);
  if (key) headers.Authorization = `Bearer ${key}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const resp = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await resp.text();
  const parsed = text ? JSON.parse(text) : null;
  if (resp.status === 401) {
    document.getElementById("key-button").hidden = false;
    askForKey();
    throw new ApiError(401, parsed);
  }
  if (!resp.ok) {
    const error = new ApiError(resp.status, parsed);
    if (resp.status === 403) error.message = `This API key may not do that: ${error.message}`;
    throw error;
  }
  return parsed;
}

function askForKey() {
  const dialog = document.getElementById("key-dialog");
  if (!dialog.open) dialog.showModal();
}

function setUpKeyDialog() {
  const dialog = document.getElementById("key-dialog");
  const input = document.getElementById("key-input");
  document.getElementById("key-form").addEventListener("submit", () => {
    sessionStorage.setItem(KEY_STORE, input.value.trim());
    input.value = "";
    route();
  });
  document.getElementById("key-cancel").addEventListener("click", () => dialog.close());
  document.getElementById("key-button").addEventListener("click", askForKey);
  if (sessionStorage.getItem(KEY_STORE)) document.getElementById("key-button").hidden = false;
}

// -- charts -----------------------------------------------------------------------------------

function lineChart(title, samples, series) {
  // series: [{name, cls, value(sample)}]; x is sample.time_ms
  const width = 600, height = 180, pad = 30;
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.setAttribute("preserveAspectRatio", "none");
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", title);
  if (samples.length < 2) {
    return el("figure", { class: "chart" }, el("figcaption", {}, title),
      el("p", { class: "muted" }, "Not enough history yet: a sample is taken every 10 s."));
  }
  const box = el("figure", { class: "chart" }, el("figcaption", {}, title), svg);
  const t0 = samples[0].time_ms, t1 = samples[samples.length - 1].time_ms;
  const top = Math.max(1, ...series.flatMap((s) => samples.map(s.value)));
  const x = (t) => pad + ((t - t0) / Math.max(1, t1 - t0)) * (width - 2 * pad);
  const y = (v) => height - pad - (v / top) * (height - 2 * pad);
  const ns = "http://www.w3.org/2000/svg";
  const axis = document.createElementNS(ns, "path");
  axis.setAttribute("d", `M${pad},${pad} V${height - pad} H${width - pad}`);
  axis.setAttribute("stroke", "#999");
  axis.setAttribute("fill", "none");
  svg.append(axis);
  const legend = el("div", { class: "legend" }, el("span", { class: "muted" }, `top of the chart: ${fmt.count(top)}`));
  for (const s of series) {
    const line = document.createElementNS(ns, "polyline");
    line.setAttribute("points", samples.map((p) => `${x(p.time_ms).toFixed(1)},${y(s.value(p)).toFixed(1)}`).join(" "));
    line.setAttribute("fill", "none");
    line.setAttribute("stroke", s.color || (s.cls === "out" ? "#1b8a4b" : "#2456c7"));
    line.setAttribute("stroke-width", "2");
    line.setAttribute("class", `series ${s.cls}`);
    svg.append(line);
    legend.append(el("span", { class: s.cls, style: s.color ? `color: ${s.color}` : null }, "■ ", s.name));
  }
  box.append(legend);
  return box;
}

// -- pages ------------------------------------------------------------------------------------

async function overviewPage() {
  const [topics, groups, history, live] = await Promise.all([
    api("GET", "/api/topics"), api("GET", "/api/consumer-groups"), api("GET", "/api/metrics/history"),
    api("GET", "/api/consumers"),
  ]);
  const samples = history.samples;
  const last = samples[samples.length - 1] || {};
  const lagOf = (g) => (last.groups && last.groups[g.group_id] ? last.groups[g.group_id].lag : null);
  const partitions = topics.topics.reduce((n, t) => n + t.partitions.length, 0);
  const records = topics.topics.reduce((n, t) => n + t.partitions.reduce((m, p) => m + p.high_watermark - p.log_start_offset, 0), 0);
  const bytes = sizeOf(await describeAll(topics.topics));
  const card = (label, value) => el("div", { class: "card" }, el("div", { class: "value" }, value), el("div", { class: "label" }, label));
  show(
    el("h1", {}, "Overview"),
    el("div", { class: "cards" },
      card("topics", fmt.count(topics.topics.length)),
      card("partitions", fmt.count(partitions)),
      card("records kept", fmt.count(records)),
      card("on disk", fmt.bytes(bytes)),
      card("records in", fmt.rate(last.records_in)),
      card("records out", fmt.rate(last.records_out)),
      card("live sessions", fmt.count(live.sessions.length)),
      card("waiting polls", fmt.count(live.sessions.filter((x) => x.waiting).length)),
      card("consumer groups", fmt.count(groups.groups.length))),
    lineChart("Records per second, last hour", samples, [
      { name: "produced", cls: "in", value: (s) => s.records_in },
      { name: "consumed", cls: "out", value: (s) => s.records_out }]),
    lineChart("Lag per group, last hour", samples, groups.groups.slice(0, PALETTE.length).map((g, i) => ({
      name: g.group_id, cls: "lag", color: PALETTE[i],
      value: (x) => (x.groups[g.group_id] ? x.groups[g.group_id].lag : 0) }))),
    el("h2", {}, "Consumer groups"),
    groups.groups.length ? el("table", {},
      el("thead", {}, el("tr", {}, el("th", {}, "group"), el("th", {}, "state"), el("th", { class: "num" }, "members"), el("th", { class: "num" }, "lag"))),
      el("tbody", {}, groups.groups.map((g) => el("tr", {},
        el("td", {}, el("a", { href: `#/groups/${enc(g.group_id)}` }, g.group_id)), el("td", {}, g.state),
        el("td", { class: "num" }, g.members.length), el("td", { class: "num" }, fmt.count(lagOf(g)))))))
      : el("p", { class: "muted" }, "No consumer groups yet."),
    samples.length ? el("p", { class: "muted" }, "Last sample at ", fmt.time(last.time_ms), ".") : null);
}

//: colours of the series of one chart (the first groups get a line each)
const PALETTE = ["#2456c7", "#b3261e", "#1b8a4b", "#8a5a00", "#6b3fa0", "#00798c", "#c2185b", "#455a64"];

const topicSort = { column: "name", descending: false };

function describeAll(topics) {
  return Promise.all(topics.map((t) => api("GET", `/api/topics/${enc(t.name)}`)));
}

function sizeOf(described) {
  // bytes stored by these topics; null when the store does not tell (Kafka)
  const sizes = described.flatMap((t) => t.partitions.map((p) => p.size_bytes));
  return sizes.some((b) => b == null) ? null : sizes.reduce((a, b) => a + b, 0);
}

async function topicsPage() {
  const [{ topics }, history] = await Promise.all([api("GET", "/api/topics"), api("GET", "/api/metrics/history")]);
  const last = history.samples[history.samples.length - 1];
  const described = new Map((await describeAll(topics)).map((t) => [t.name, t]));
  const rows = topics.map((t) => ({
    name: t.name,
    partitions: t.partitions.length,
    records: t.partitions.reduce((n, p) => n + p.high_watermark - p.log_start_offset, 0),
    rate: last && last.topics[t.name] ? last.topics[t.name].records_in : null,
    size: described.has(t.name) ? sizeOf([described.get(t.name)]) : null,
  }));
  const filter = el("input", { type: "search", placeholder: "filter by name", "aria-label": "filter topics by name" });
  const tbody = el("tbody");
  const draw = () => {
    const shown = rows.filter((r) => r.name.includes(filter.value.trim()))
      .sort((a, b) => {
        const [x, y] = [a[topicSort.column], b[topicSort.column]];
        const order = x < y ? -1 : x > y ? 1 : 0;
        return topicSort.descending ? -order : order;
      });
    tbody.replaceChildren(...(shown.length ? shown.map((r) => el("tr", {},
      el("td", {}, el("a", { href: `#/topics/${enc(r.name)}` }, r.name)), el("td", { class: "num" }, r.partitions),
      el("td", { class: "num" }, fmt.bytes(r.size)),
      el("td", { class: "num" }, fmt.count(r.records)), el("td", { class: "num" }, fmt.rate(r.rate)),
      el("td", {}, el("button", { type: "button", class: "danger", "aria-label": `delete topic ${r.name}`, onclick: () => deleteTopic(r.name) }, "Delete"))))
      : [el("tr", {}, el("td", { colspan: 6, class: "muted" }, topics.length ? "No topic matches." : "No topics yet: create one above."))]));
  };
  filter.addEventListener("input", draw);
  const header = (column, label, cls) => el("th", { class: cls, "aria-sort": topicSort.column === column ? (topicSort.descending ? "descending" : "ascending") : "none" },
    el("button", { type: "button", onclick: () => { topicSort.descending = topicSort.column === column && !topicSort.descending; topicSort.column = column; topicsPage().catch(failed); } }, label));
  const name = el("input", { name: "name", required: true, pattern: "[A-Za-z0-9._\\-]{1,249}", "aria-label": "topic name" });
  const count = el("input", { name: "partitions", type: "number", min: 1, max: 1024, value: 1, required: true, "aria-label": "partitions" });
  const status = el("p", { role: "status" });
  const create = el("form", { class: "toolbar", onsubmit: async (event) => {
    event.preventDefault();
    try {
      await api("POST", "/api/topics", { name: name.value, partitions: Number(count.value) });
      await topicsPage();
    } catch (error) { status.replaceChildren(errorBox(error)); }
  } }, el("label", {}, "New topic", name), el("label", {}, "Partitions", count), el("button", { type: "submit" }, "Create"));
  show(el("h1", {}, "Topics"), create, status, el("div", { class: "toolbar" }, filter),
    el("table", {}, el("thead", {}, el("tr", {}, header("name", "topic"), header("partitions", "partitions", "num"),
      header("size", "size", "num"), header("records", "records", "num"), header("rate", "records in", "num"), el("th", {}, ""))), tbody));
  draw();
}

async function deleteTopic(name) {
  const typed = window.prompt(`Delete topic "${name}" and every record in it? Type its name to confirm.`);
  if (typed !== name) return;
  try {
    await api("DELETE", `/api/topics/${encodeURIComponent(name)}`);
    await topicsPage();
  } catch (error) { failed(error); }
}

async function groupsPage() {
  const [{ groups }, history] = await Promise.all([api("GET", "/api/consumer-groups"), api("GET", "/api/metrics/history")]);
  const last = history.samples[history.samples.length - 1];
  const lagOf = (id) => (last && last.groups[id] ? last.groups[id].lag : null);
  show(el("h1", {}, "Consumer groups"),
    groups.length ? el("table", {},
      el("thead", {}, el("tr", {}, el("th", {}, "group"), el("th", {}, "state"), el("th", { class: "num" }, "members"), el("th", { class: "num" }, "lag"))),
      el("tbody", {}, groups.map((g) => el("tr", {}, el("td", {}, el("a", { href: `#/groups/${enc(g.group_id)}` }, g.group_id)), el("td", {}, g.state),
        el("td", { class: "num" }, g.members.length), el("td", { class: "num" }, fmt.count(lagOf(g.group_id)))))))
      : el("p", { class: "muted" }, "No consumer groups yet."));
}

// -- a topic ----------------------------------------------------------------------------------

const enc = encodeURIComponent;

async function groupsReading(topic) {
  const { groups } = await api("GET", "/api/consumer-groups");
  const described = await Promise.all(groups.map((g) => api("GET", `/api/consumer-groups/${enc(g.group_id)}`)));
  return described.map((d) => ({ group_id: d.group_id, state: d.state,
    lag: d.offsets.filter((o) => o.topic === topic).reduce((n, o) => n + (o.lag || 0), 0),
    reads: d.offsets.some((o) => o.topic === topic) || d.members.some((m) => (m.topics || []).includes(topic)) }))
    .filter((g) => g.reads);
}

function partitionRates(samples, topic, partition) {
  // records per second into one partition between consecutive samples
  const out = [];
  for (let i = 1; i < samples.length; i += 1) {
    const [a, b] = [samples[i - 1], samples[i]];
    const seconds = (b.time_ms - a.time_ms) / 1000;
    const before = a.topics[topic].partitions[partition], after = b.topics[topic].partitions[partition];
    if (seconds > 0 && before != null && after != null) out.push(Math.max(0, after - before) / seconds);
  }
  return out;
}

function sparkline(values, label) {
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", "0 0 100 20");
  svg.setAttribute("preserveAspectRatio", "none");
  svg.setAttribute("class", "spark");
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", label);
  if (values.length > 1) {
    const top = Math.max(1, ...values);
    const line = document.createElementNS(ns, "polyline");
    line.setAttribute("points", values.map((v, i) => `${(i * 100) / (values.length - 1)},${19 - (v / top) * 18}`).join(" "));
    line.setAttribute("fill", "none");
    line.setAttribute("stroke", "#2456c7");
    svg.append(line);
  }
  return svg;
}

async function topicPage(name) {
  const [topic, history, readers, stats] = await Promise.all([
    api("GET", `/api/topics/${enc(name)}`), api("GET", "/api/metrics/history"), groupsReading(name),
    topicStats(name)]);
  const samples = history.samples.filter((s) => s.topics[name]);
  show(el("h1", {}, "Topic ", el("code", {}, name)),
    el("p", {}, el("a", { href: `#/topics/${enc(name)}/records` }, "Browse records"), " · ",
      el("a", { href: `#/produce/${enc(name)}` }, "Produce a record")),
    el("table", {}, el("thead", {}, el("tr", {}, el("th", {}, "partition"), el("th", { class: "num" }, "log start"),
      el("th", { class: "num" }, "high watermark"), el("th", { class: "num" }, "records"), el("th", { class: "num" }, "size"),
      el("th", { class: "num" }, "records in"), el("th", {}, "last hour"))),
      el("tbody", {}, topic.partitions.map((p) => {
        const rates = partitionRates(samples, name, p.partition);
        return el("tr", {}, el("td", {}, p.partition),
          el("td", { class: "num" }, fmt.count(p.log_start_offset)), el("td", { class: "num" }, fmt.count(p.high_watermark)),
          el("td", { class: "num" }, fmt.count(p.high_watermark - p.log_start_offset)), el("td", { class: "num" }, fmt.bytes(p.size_bytes)),
          el("td", { class: "num" }, fmt.rate(rates.length ? rates[rates.length - 1] : null)),
          el("td", {}, sparkline(rates, `records per second into partition ${p.partition}, last hour`)));
      }))),
    lineChart(`Records per second in ${name}, last hour`, samples, [
      { name: "produced", cls: "in", value: (s) => s.topics[name].records_in },
      { name: "consumed", cls: "out", value: (s) => s.topics[name].records_out }]),
    el("h2", {}, "Configuration"),
    el("table", {}, el("tbody", {}, Object.entries(topic.config).map(([k, v]) => el("tr", {}, el("th", {}, k),
      el("td", { class: "num", title: String(v) }, fmt.setting(k, v)))))),
    el("h2", {}, "Groups reading it"),
    readers.length ? el("table", {}, el("thead", {}, el("tr", {}, el("th", {}, "group"), el("th", {}, "state"), el("th", { class: "num" }, "lag"))),
      el("tbody", {}, readers.map((g) => el("tr", {}, el("td", {}, el("a", { href: `#/groups/${enc(g.group_id)}` }, g.group_id)),
        el("td", {}, g.state), el("td", { class: "num" }, fmt.count(g.lag))))))
      : el("p", { class: "muted" }, "No group reads it."),
    el("h2", {}, "Records by time and by key"),
    stats.day instanceof Error ? errorBox(stats.day) : lineChart(`Records per 10 minutes in ${name}, last 24 hours`,
      stats.day.buckets.map((b) => ({ time_ms: b.start_ms, records: b.records })),
      [{ name: "records, by their timestamps", cls: "in", value: (s) => s.records }]),
    stats.keys instanceof Error ? errorBox(stats.keys) : keysTable(stats.keys));
}

async function topicStats(name) {
  // records per 10 minutes over the last day and the last hour's busiest keys; each may fail alone
  const step = 600000, from = Math.floor((Date.now() - 86400000) / step) * step;
  const [day, keys] = await Promise.all([
    api("GET", `/api/topics/${enc(name)}/stats?from_ms=${from}&bucket_ms=${step}`).catch((e) => e),
    api("GET", `/api/topics/${enc(name)}/stats/keys?top=10`).catch((e) => e)]);
  return { day, keys };
}

function keysTable(answer) {
  if (!answer.keys.length) return el("p", { class: "muted" }, "No records in the last hour.");
  const counted = `${fmt.count(answer.scanned_records)} records of the last hour, ${fmt.count(answer.distinct_keys)} keys`;
  const note = answer.complete ? counted
    : el("span", {}, `${counted}, up to `, fmt.time(answer.scanned_to_ms), " (the server's bound on a count)");
  const shown = (b64) => {
    if (b64 == null) return "(no key)";
    const bytes = bytesOf(b64);
    return textOf(bytes) ?? hexOf(bytes);
  };
  return el("div", {}, el("p", { class: "muted" }, "Busiest keys: ", note),
    el("table", { class: "keys" }, el("thead", {}, el("tr", {}, el("th", {}, "key"), el("th", { class: "num" }, "records"),
      el("th", { class: "num" }, "share"))),
    el("tbody", {}, answer.keys.map((k) => el("tr", {}, el("td", {}, el("code", {}, shown(k.key))),
      el("td", { class: "num" }, fmt.count(k.records)),
      el("td", { class: "num" }, `${(100 * k.records / Math.max(1, answer.scanned_records)).toFixed(1)}%`))))));
}

// -- records ----------------------------------------------------------------------------------

let PAGE = 50;  // records per page, and the N of "the newest N"
const SHOW_CHARS = 1000;

function bytesOf(b64) {
  if (b64 == null) return null;
  const raw = atob(b64);
  const out = new Uint8Array(raw.length);
  for (let i = 0; i < raw.length; i += 1) out[i] = raw.charCodeAt(i);
  return out;
}

function textOf(bytes) {
  try { return new TextDecoder("utf-8", { fatal: true }).decode(bytes); } catch { return null; }
}

function hexOf(bytes) {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join(" ");
}

function shownValue(b64, view) {
  // [text shown, how]: text as text, pretty JSON or hex; bytes that are not UTF-8 are hex
  const bytes = bytesOf(b64);
  if (bytes == null) return ["null", "null"];
  const text = textOf(bytes);
  if (view === "hex" || text == null) return [hexOf(bytes), "hex"];
  if (view === "json") {
    try { return [JSON.stringify(JSON.parse(text), null, 2), "json"]; } catch { return [text, "text"]; }
  }
  return [text, "text"];
}

function valueCell(b64, view) {
  const [text, how] = shownValue(b64, view);
  const pre = el("pre", { class: `value ${how}`, title: how === "hex" ? "shown as hex" : null },
    text.length > SHOW_CHARS ? text.slice(0, SHOW_CHARS) + "…" : text);
  const cell = el("td", {}, pre);
  if (text.length > SHOW_CHARS) {
    cell.append(el("button", { type: "button", onclick: (e) => { pre.textContent = text; e.target.remove(); } }, "Show all"), " ",
      el("a", { href: URL.createObjectURL(new Blob([bytesOf(b64)])), download: "value.bin" }, "Download"));
  }
  return cell;
}

async function recordsPage(name) {
  const topic = await api("GET", `/api/topics/${enc(name)}`);
  const state = { partition: "0", view: "text", records: [], next: {}, follow: null };
  const partition = el("select", { "aria-label": "partition" },
    topic.partitions.map((p) => el("option", { value: String(p.partition) }, `partition ${p.partition}`)),
    el("option", { value: "all" }, "all partitions"));
  const start = el("select", { "aria-label": "start at" },
    el("option", { value: "beginning" }, "the beginning"), el("option", { value: "newest" }, "the newest N"),
    el("option", { value: "offset" }, "an offset"), el("option", { value: "time" }, "a time"));
  const offset = el("input", { type: "number", min: 0, value: 0, "aria-label": "offset" });
  const time = el("input", { type: "datetime-local", "aria-label": "time" });
  const size = el("select", { "aria-label": "records per page (N)" },
    [20, 50, 200, 1000].map((n) => el("option", { value: n, selected: n === PAGE }, String(n))));
  size.addEventListener("change", () => { PAGE = Number(size.value); go(); });
  const view = el("select", { "aria-label": "show values as" },
    el("option", { value: "text" }, "text"), el("option", { value: "json" }, "JSON"), el("option", { value: "hex" }, "hex"));
  const search = el("input", { type: "search", placeholder: "search this page", "aria-label": "search the loaded records" });
  const follow = el("input", { type: "checkbox", "aria-label": "follow new records" });
  const status = el("p", { role: "status", class: "muted" });
  const tbody = el("tbody");
  const parts = () => (partition.value === "all" ? topic.partitions.map((p) => p.partition) : [Number(partition.value)]);

  async function readFrom(p, params) {
    const query = new URLSearchParams({ max_records: PAGE, ...params });
    return api("GET", `/api/topics/${enc(name)}/partitions/${p}/records?${query}`);
  }
  async function startOf(p) {
    const info = topic.partitions.find((x) => x.partition === p);
    if (start.value === "newest") return { offset: Math.max(info.log_start_offset, info.high_watermark - PAGE) };
    if (start.value === "offset") return { offset: Number(offset.value) };
    if (start.value === "time" && time.value) return { timestamp: new Date(time.value).getTime() };
    return {};
  }
  async function load(paramsFor) {
    const pages = await Promise.all(parts().map(async (p) => [p, await readFrom(p, await paramsFor(p))]));
    state.records = [];
    for (const [p, got] of pages) {
      state.next[p] = got.next_offset;
      state.records.push(...got.records);
    }
    state.records.sort((a, b) => a.timestamp - b.timestamp || a.partition - b.partition || a.offset - b.offset);
    draw();
  }
  function draw() {
    const needle = search.value.trim().toLowerCase();
    const matches = (r) => !needle || [shownValue(r.key, "text")[0], shownValue(r.value, "text")[0], JSON.stringify(r.headers)]
      .some((t) => t.toLowerCase().includes(needle));
    const shown = state.records.filter(matches);
    tbody.replaceChildren(...(shown.length ? shown.map((r) => el("tr", {},
      el("td", { class: "num" }, r.partition), el("td", { class: "num" }, r.offset), el("td", {}, fmt.time(r.timestamp)),
      valueCell(r.key, "text"), valueCell(r.value, view.value),
      el("td", {}, Object.entries(r.headers || {}).map(([k, v]) => el("div", {}, `${k}: ${v}`)))))
      : [el("tr", {}, el("td", { colspan: 6, class: "muted" }, state.records.length ? "No loaded record matches." : "No records here."))]));
    status.textContent = `${shown.length} of ${state.records.length} loaded records shown`;
  }
  function take(records) {
    for (const r of records) state.next[r.partition] = Math.max(state.next[r.partition] || 0, r.offset + 1);
    if (records.length) {
      state.records = state.records.concat(records).slice(-5 * PAGE);
      draw();
    }
  }
  const go = () => load(startOf).catch((e) => status.replaceChildren(errorBox(e)));
  const older = () => load(async (p) => ({ offset: Math.max(0, Math.min(...state.records.filter((r) => r.partition === p).map((r) => r.offset), state.next[p]) - PAGE) }))
    .catch((e) => status.replaceChildren(errorBox(e)));
  const newer = () => load(async (p) => ({ offset: state.next[p] })).catch((e) => status.replaceChildren(errorBox(e)));
  for (const control of [partition, start, offset, time]) control.addEventListener("change", go);
  view.addEventListener("change", draw);
  search.addEventListener("input", draw);
  const following = () => follow.checked && !document.hidden;
  const restart = () => {
    if (state.follow) state.follow.stop();
    state.follow = following() ? tailer(name, parts(), state.next, take, (e) => status.replaceChildren(errorBox(e))) : null;
  };
  follow.addEventListener("change", restart);
  partition.addEventListener("change", () => follow.checked && restart());
  document.addEventListener("visibilitychange", restart);
  leaving = () => {
    document.removeEventListener("visibilitychange", restart);
    if (state.follow) state.follow.stop();
  };
  show(el("h1", {}, "Records of ", el("a", { href: `#/topics/${enc(name)}` }, el("code", {}, name))),
    el("div", { class: "toolbar" }, el("label", {}, "Partition", partition), el("label", {}, "Start at", start),
      el("label", {}, "Offset", offset), el("label", {}, "Time", time), el("label", {}, "Per page (N)", size),
      el("label", {}, "Values as", view),
      el("label", {}, "Search", search), el("label", { class: "inline" }, follow, "Follow new records")),
    el("div", { class: "toolbar" }, el("button", { type: "button", onclick: older }, "◀ Older"), el("button", { type: "button", onclick: newer }, "Newer ▶")),
    status,
    el("table", { class: "records" }, el("thead", {}, el("tr", {}, el("th", { class: "num" }, "partition"), el("th", { class: "num" }, "offset"),
      el("th", {}, "time"), el("th", {}, "key"), el("th", {}, "value"), el("th", {}, "headers"))), tbody));
  await go();
}

function tailer(topic, partitions, from, take, failed) {
  // Follow: a consumer session of its own (a fresh group, the partitions assigned by hand,
  // each sought to where the page ends) long-polls for new records; stop() closes it,
  // which also answers the consume waiting at that moment.
  let cid = null;
  let stopped = false;
  const close = () => cid && fetch(`/api/consumers/${cid}`, { method: "DELETE", keepalive: true,
    headers: sessionStorage.getItem(KEY_STORE) ? { Authorization: `Bearer ${sessionStorage.getItem(KEY_STORE)}` } : {} });
  (async () => {
    const group = `console-follow-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 10)}`;
    cid = (await api("POST", "/api/consumers/subscribe", { group_id: group, topics: [topic] })).consumer_id;
    if (stopped) return close();
    await api("PUT", `/api/consumers/${cid}/assignment`, { topics: { [topic]: partitions } });
    for (const p of partitions) await api("POST", `/api/consumers/${cid}/seek`, { topic, partition: p, offset: from[p] || 0 });
    while (!stopped) take((await api("POST", `/api/consumers/${cid}/consume`, { timeout_ms: 25000, max_records: 500 })).records);
  })().catch((error) => { if (!stopped) failed(error); });
  window.addEventListener("pagehide", close, { once: true });
  return { stop() { stopped = true; close(); window.removeEventListener("pagehide", close); } };
}

// -- produce ----------------------------------------------------------------------------------

async function producePage(name) {
  const { topics } = await api("GET", "/api/topics");
  const topic = el("select", { "aria-label": "topic", required: true }, topics.map((t) => el("option", { value: t.name, selected: t.name === name }, t.name)));
  const key = el("input", { "aria-label": "key", placeholder: "none" });
  const kind = el("select", { "aria-label": "value type" }, el("option", { value: "text" }, "text"), el("option", { value: "json" }, "JSON"));
  const value = el("textarea", { "aria-label": "value", rows: 5, cols: 60 });
  const headers = el("textarea", { "aria-label": "headers", rows: 2, cols: 60, placeholder: "name: value, one per line" });
  const partition = el("input", { type: "number", min: 0, "aria-label": "partition", placeholder: "automatic" });
  const result = el("div", { role: "status" });
  const form = el("form", { onsubmit: async (event) => {
    event.preventDefault();
    const record = { value: value.value };
    if (kind.value === "json") {
      try { record.value = JSON.parse(value.value); } catch (e) { result.replaceChildren(errorBox(new Error(`The value is not JSON: ${e.message}`))); return; }
    }
    if (key.value) record.key = key.value;  // with JSON values, the key is a JSON string
    const named = headers.value.split("\n").map((l) => l.trim()).filter(Boolean);
    if (named.length) record.headers = Object.fromEntries(named.map((l) => { const i = l.indexOf(":"); return i < 0 ? [l, ""] : [l.slice(0, i).trim(), l.slice(i + 1).trim()]; }));
    if (partition.value !== "") record.partition = Number(partition.value);
    try {
      const done = await api("POST", `/api/topics/${enc(topic.value)}/records`, { encoding: kind.value, records: [record] });
      const [where] = done.offsets;
      result.replaceChildren(el("p", {}, `Stored in partition ${where.partition} at offset ${where.offset}. `,
        el("a", { href: `#/topics/${enc(topic.value)}/records` }, "See it")));
    } catch (error) { result.replaceChildren(errorBox(error)); }
  } }, el("div", { class: "toolbar" }, el("label", {}, "Topic", topic), el("label", {}, "Partition", partition), el("label", {}, "Key", key), el("label", {}, "Value type", kind)),
    el("label", {}, "Value", value), el("label", {}, "Headers", headers), el("p", {}, el("button", { type: "submit" }, "Produce")));
  show(el("h1", {}, "Produce a record"), topics.length ? form : el("p", { class: "muted" }, "No topics yet."), result);
}

// -- a group ----------------------------------------------------------------------------------

async function groupPage(id) {
  const [group, history] = await Promise.all([api("GET", `/api/consumer-groups/${enc(id)}`), api("GET", "/api/metrics/history")]);
  const ages = Object.fromEntries(group.members.map((m) => [m.consumer_id, m.last_heartbeat_ms_ago]));
  const samples = history.samples.filter((s) => s.groups[id]);
  const result = el("div", { role: "status" });
  const how = el("select", { "aria-label": "reset to" }, el("option", { value: "earliest" }, "the earliest offsets"),
    el("option", { value: "latest" }, "the latest offsets"), el("option", { value: "time" }, "a time"),
    el("option", { value: "explicit" }, "the offsets below"));
  const explicit = new Map(group.offsets.map((o) => [`${o.topic}/${o.partition}`,
    el("input", { type: "number", min: 0, max: o.high_watermark, value: o.committed_offset ?? o.high_watermark, "aria-label": `new offset of ${o.topic} partition ${o.partition}` })]));
  const time = el("input", { type: "datetime-local", "aria-label": "reset time" });
  const topics = [...new Set(group.offsets.map((o) => o.topic))];
  async function reset(event) {
    event.preventDefault();
    const target = { time: time.value, explicit: "the offsets given" }[how.value] || how.value;
    if (!window.confirm(`Reset the committed offsets of group "${id}" to ${target}?`)) return;
    try {
      let body = { reset: how.value, topics };
      if (how.value === "explicit") {
        const offsets = {};
        for (const o of group.offsets) (offsets[o.topic] ||= {})[o.partition] = Number(explicit.get(`${o.topic}/${o.partition}`).value);
        body = { offsets };
      } else if (how.value === "time") {
        const at = new Date(time.value).getTime();
        const offsets = {};
        for (const o of group.offsets) {
          const got = await api("GET", `/api/topics/${enc(o.topic)}/partitions/${o.partition}/records?timestamp=${at}&max_records=1`);
          (offsets[o.topic] ||= {})[o.partition] = got.records.length ? got.records[0].offset : got.next_offset;
        }
        body = { offsets };
      }
      await api("POST", `/api/consumer-groups/${enc(id)}/offsets`, body);
      await groupPage(id);
    } catch (error) { result.replaceChildren(errorBox(error)); }
  }
  show(el("h1", {}, "Group ", el("code", {}, id)), el("p", {}, `State ${group.state}; assignor ${group.assignor || "–"}.`),
    el("h2", {}, "Members"),
    group.members.length ? el("table", {}, el("thead", {}, el("tr", {}, el("th", {}, "consumer"), el("th", { class: "num" }, "last heartbeat"), el("th", {}, "assignment"))),
      el("tbody", {}, group.members.map((m) => el("tr", {}, el("td", {}, el("code", {}, m.consumer_id)),
        el("td", { class: "num" }, ages[m.consumer_id] == null ? "–" : `${fmt.count(ages[m.consumer_id])} ms ago`),
        el("td", {}, Object.entries(m.assignment || {}).map(([t, ps]) => `${t}: ${ps.join(", ")}`).join("; ") || "none")))))
      : el("p", { class: "muted" }, "No members."),
    el("h2", {}, "Offsets"),
    el("table", {}, el("thead", {}, el("tr", {}, el("th", {}, "topic"), el("th", { class: "num" }, "partition"), el("th", { class: "num" }, "committed"),
      el("th", { class: "num" }, "high watermark"), el("th", { class: "num" }, "lag"), group.members.length ? null : el("th", {}, "new offset"))),
      el("tbody", {}, group.offsets.map((o) => el("tr", {}, el("td", {}, o.topic), el("td", { class: "num" }, o.partition),
        el("td", { class: "num" }, o.committed_offset == null ? "–" : fmt.count(o.committed_offset)),
        el("td", { class: "num" }, fmt.count(o.high_watermark)), el("td", { class: "num lag" }, o.lag == null ? "–" : fmt.count(o.lag)),
        group.members.length ? null : el("td", {}, explicit.get(`${o.topic}/${o.partition}`)))))),
    lineChart(`Lag of ${id}, last hour`, samples, [{ name: "lag", cls: "in", value: (s) => s.groups[id].lag }]),
    el("h2", {}, "Reset offsets"),
    group.members.length ? el("p", { class: "muted" }, "Offsets can be reset only while the group has no members.")
      : el("form", { class: "toolbar", onsubmit: reset }, el("label", {}, "Reset to", how), el("label", {}, "Time", time), el("button", { type: "submit" }, "Reset")),
    result);
}

// -- sessions ---------------------------------------------------------------------------------

async function sessionsPage() {
  const { sessions } = await api("GET", "/api/consumers");
  show(el("h1", {}, "Consumer sessions"),
    sessions.length ? el("table", {}, el("thead", {}, el("tr", {}, el("th", {}, "consumer"), el("th", {}, "owner"), el("th", {}, "group"),
      el("th", {}, "topics"), el("th", {}, "assignment"), el("th", { class: "num" }, "last heartbeat"), el("th", {}, "poll waiting"))),
      el("tbody", {}, sessions.map((s) => el("tr", {}, el("td", {}, el("code", {}, s.consumer_id)), el("td", {}, s.owner || "–"),
        el("td", {}, el("a", { href: `#/groups/${enc(s.group_id)}` }, s.group_id)), el("td", {}, s.topics.join(", ")),
        el("td", {}, Object.entries(s.assignment).map(([t, ps]) => `${t}: ${ps.join(", ")}`).join("; ") || (s.state || "none")),
        el("td", { class: "num" }, `${fmt.count(s.last_heartbeat_ms_ago)} ms ago`), el("td", {}, s.waiting ? "yes" : "no")))))
      : el("p", { class: "muted" }, "No live sessions on this node."));
}

// -- routing ----------------------------------------------------------------------------------

let leaving = () => {};  // what the current page stops when another is shown

function pageFor(parts) {
  const [first, name, sub] = parts;
  if (first === "" && !name) return overviewPage;
  if (first === "topics" && !name) return topicsPage;
  if (first === "topics" && sub === "records") return () => recordsPage(name);
  if (first === "topics" && !sub) return () => topicPage(name);
  if (first === "produce") return () => producePage(name);
  if (first === "groups" && !name) return groupsPage;
  if (first === "groups") return () => groupPage(name);
  if (first === "sessions" && !name) return sessionsPage;
  return null;
}

function failed(error) {
  show(el("h1", {}, "Something went wrong"), errorBox(error));
}

async function route() {
  const parts = location.hash.replace(/^#\/?/, "").split("/").map(decodeURIComponent);
  const name = parts[0];
  const page = pageFor(parts);
  leaving();
  leaving = () => {};
  for (const link of document.querySelectorAll("nav a")) {
    link.toggleAttribute("aria-current", link.getAttribute("href") === `#/${name}`);
    if (link.hasAttribute("aria-current")) link.setAttribute("aria-current", "page");
  }
  if (!page) {
    show(el("h1", {}, "Not found"), el("p", {}, "No such page. ", el("a", { href: "#/" }, "Back to the overview")));
    return;
  }
  try {
    await page();
  } catch (error) {
    failed(error);
  }
}

setUpKeyDialog();
window.addEventListener("hashchange", route);
route();
