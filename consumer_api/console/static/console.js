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
  const label = document.createElementNS(ns, "text");
  label.setAttribute("x", 2);
  label.setAttribute("y", pad - 8);
  label.setAttribute("font-size", "11");
  label.textContent = fmt.count(top);
  svg.append(label);
  const legend = el("div", { class: "legend" });
  for (const s of series) {
    const line = document.createElementNS(ns, "polyline");
    line.setAttribute("points", samples.map((p) => `${x(p.time_ms).toFixed(1)},${y(s.value(p)).toFixed(1)}`).join(" "));
    line.setAttribute("fill", "none");
    line.setAttribute("stroke", s.cls === "out" ? "#1b8a4b" : "#2456c7");
    line.setAttribute("stroke-width", "2");
    line.setAttribute("class", `series ${s.cls}`);
    svg.append(line);
    legend.append(el("span", { class: s.cls }, "■ ", s.name));
  }
  box.append(legend);
  return box;
}

// -- pages ------------------------------------------------------------------------------------

async function overviewPage() {
  const [topics, groups, history] = await Promise.all([
    api("GET", "/api/topics"), api("GET", "/api/consumer-groups"), api("GET", "/api/metrics/history"),
  ]);
  const samples = history.samples;
  const last = samples[samples.length - 1] || {};
  const lagOf = (g) => (last.groups && last.groups[g.group_id] ? last.groups[g.group_id].lag : null);
  const partitions = topics.topics.reduce((n, t) => n + t.partitions.length, 0);
  const records = topics.topics.reduce((n, t) => n + t.partitions.reduce((m, p) => m + p.high_watermark - p.log_start_offset, 0), 0);
  const card = (label, value) => el("div", { class: "card" }, el("div", { class: "value" }, value), el("div", { class: "label" }, label));
  show(
    el("h1", {}, "Overview"),
    el("div", { class: "cards" },
      card("topics", fmt.count(topics.topics.length)),
      card("partitions", fmt.count(partitions)),
      card("records kept", fmt.count(records)),
      card("records in", fmt.rate(last.records_in)),
      card("records out", fmt.rate(last.records_out)),
      card("live sessions", fmt.count(last.sessions)),
      card("waiting polls", fmt.count(last.waiting_polls)),
      card("consumer groups", fmt.count(groups.groups.length))),
    lineChart("Records per second, last hour", samples, [
      { name: "produced", cls: "in", value: (s) => s.records_in },
      { name: "consumed", cls: "out", value: (s) => s.records_out }]),
    el("h2", {}, "Consumer groups"),
    groups.groups.length ? el("table", {},
      el("thead", {}, el("tr", {}, el("th", {}, "group"), el("th", {}, "state"), el("th", { class: "num" }, "members"), el("th", { class: "num" }, "lag"))),
      el("tbody", {}, groups.groups.map((g) => el("tr", {},
        el("td", {}, g.group_id), el("td", {}, g.state),
        el("td", { class: "num" }, g.members.length), el("td", { class: "num" }, fmt.count(lagOf(g)))))))
      : el("p", { class: "muted" }, "No consumer groups yet."),
    samples.length ? el("p", { class: "muted" }, "Last sample at ", fmt.time(last.time_ms), ".") : null);
}

const topicSort = { column: "name", descending: false };

async function topicsPage() {
  const [{ topics }, history] = await Promise.all([api("GET", "/api/topics"), api("GET", "/api/metrics/history")]);
  const last = history.samples[history.samples.length - 1];
  const rows = topics.map((t) => ({
    name: t.name,
    partitions: t.partitions.length,
    records: t.partitions.reduce((n, p) => n + p.high_watermark - p.log_start_offset, 0),
    rate: last && last.topics[t.name] ? last.topics[t.name].records_in : null,
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
      el("td", {}, r.name), el("td", { class: "num" }, r.partitions),
      el("td", { class: "num" }, fmt.count(r.records)), el("td", { class: "num" }, fmt.rate(r.rate)),
      el("td", {}, el("button", { type: "button", class: "danger", "aria-label": `delete topic ${r.name}`, onclick: () => deleteTopic(r.name) }, "Delete"))))
      : [el("tr", {}, el("td", { colspan: 5, class: "muted" }, topics.length ? "No topic matches." : "No topics yet: create one above."))]));
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
      header("records", "records", "num"), header("rate", "records in", "num"), el("th", {}, ""))), tbody));
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
  const { groups } = await api("GET", "/api/consumer-groups");
  show(el("h1", {}, "Consumer groups"),
    groups.length ? el("table", {},
      el("thead", {}, el("tr", {}, el("th", {}, "group"), el("th", {}, "state"), el("th", { class: "num" }, "members"))),
      el("tbody", {}, groups.map((g) => el("tr", {}, el("td", {}, g.group_id), el("td", {}, g.state), el("td", { class: "num" }, g.members.length)))))
      : el("p", { class: "muted" }, "No consumer groups yet."));
}

// -- routing ----------------------------------------------------------------------------------

const PAGES = { "": overviewPage, topics: topicsPage, groups: groupsPage };

function failed(error) {
  show(el("h1", {}, "Something went wrong"), errorBox(error));
}

async function route() {
  const name = location.hash.replace(/^#\/?/, "").split("/")[0];
  const page = PAGES[name];
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
