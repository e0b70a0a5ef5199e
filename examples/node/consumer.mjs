// Consume JSON events from a consumer-api topic as a member of a consumer group, with
// Node's built-in fetch (Node 18+, no npm packages).
//
//   node examples/node/consumer.mjs --url http://127.0.0.1:8080 --topic demo --group demo-readers
//   node examples/node/consumer.mjs --topic demo --group demo-readers --max 10
//
// Subscribes (a new group starts at the earliest records), long-polls /consume, prints one
// line per record -- topic[partition]@offset key=... value=<json> headers=<json> -- and
// commits after each batch, so a restarted consumer resumes after what it printed (at least
// once). Stops after --max records or on Ctrl-C, and leaves the group either way. A consume
// the server refuses because it is busy (429 too_many_polls, 503 with Retry-After) is tried
// again after the pause it asks for (at most 5 s). Any other error response
// ({error, code, details}) is printed as "error: <code>: <error>", exit status 1.
import { parseArgs } from "node:util";

const USAGE = `usage: node examples/node/consumer.mjs [--url URL] [--topic TOPIC] [--group GROUP] [--max N]

  --url URL       server address (env CONSUMER_API_URL; default http://127.0.0.1:8080)
  --topic TOPIC   topic to read (default demo)
  --group GROUP   consumer group to join (default demo-readers)
  --max N         stop after N records (default: run until Ctrl-C)
The API key, if the server wants one, comes from the environment: CONSUMER_API_KEY.`;

const POLL_TIMEOUT_MS = 30000; // a consume returns at once when there are records, else after this
const MAX_RECORDS = 500;

const MAX_PAUSE_MS = 5000; // the longest pause before polling again after a refusal

class ApiError extends Error {
  constructor(status, body, retryAfter) {
    super(body?.error ?? `HTTP ${status}`);
    this.status = status;
    this.code = body?.code ?? "http_error";
    this.details = body?.details ?? {};
    this.retryAfterMs = retryAfter === null ? null : Number(retryAfter) * 1000;
  }

  // A consume refused because the server (or this client's share of it) is busy: nothing
  // was taken, so poll again after the pause the server asks for.
  get retryable() {
    return this.code === "too_many_polls" || (this.status === 503 && this.retryAfterMs !== null);
  }
}

const sleep = (ms, signal) => new Promise((resolve) => {
  const timer = setTimeout(resolve, ms);
  signal?.addEventListener("abort", () => { clearTimeout(timer); resolve(); }, { once: true });
});

function client(baseUrl, apiKey) {
  const headers = { "Content-Type": "application/json", Accept: "application/json" };
  if (apiKey) headers.Authorization = `Bearer ${apiKey}`;
  return async function call(method, path, body, signal) {
    let resp;
    try {
      resp = await fetch(new URL(path, baseUrl), {
        method, headers, signal, body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (err) {
      if (signal?.aborted) throw err;
      throw new Error(`cannot reach ${baseUrl}: ${err.cause?.message ?? err.message}`);
    }
    const text = await resp.text();
    let json = null;
    try { json = text ? JSON.parse(text) : null; } catch { /* not JSON: handled below */ }
    if (!resp.ok) throw new ApiError(resp.status, json, resp.headers.get("retry-after"));
    return json;
  };
}

// Records come in the "json" encoding. One whose key or value is not JSON as stored (a key
// produced as plain text, as the Python client does) comes with both in base64 and
// encoding: "base64": show its key as text and its value as JSON if it parses.
function fromBase64(b64, asJson) {
  if (b64 === null) return null;
  let text;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(Buffer.from(b64, "base64"));
  } catch {
    return { base64: b64 }; // not even UTF-8
  }
  if (asJson) {
    try { return JSON.parse(text); } catch { /* plain text */ }
  }
  return text;
}

function show(rec) {
  const fallback = rec.encoding === "base64";
  const key = fallback ? fromBase64(rec.key, false) : rec.key;
  const value = fallback ? fromBase64(rec.value, true) : rec.value;
  const keyText = key === null ? "" : typeof key === "string" ? key : JSON.stringify(key);
  return `${rec.topic}[${rec.partition}]@${rec.offset} key=${keyText} ` +
         `value=${JSON.stringify(value)} headers=${JSON.stringify(rec.headers ?? {})}`;
}

async function main() {
  let opts;
  try {
    ({ values: opts } = parseArgs({
      options: {
        url: { type: "string", default: process.env.CONSUMER_API_URL || "http://127.0.0.1:8080" },
        topic: { type: "string", default: "demo" },
        group: { type: "string", default: "demo-readers" },
        max: { type: "string" },
        help: { type: "boolean", short: "h" },
      },
    }));
  } catch (err) {
    console.error(`${err.message}\n${USAGE}`);
    return 2;
  }
  if (opts.help) {
    console.log(USAGE);
    return 0;
  }
  const max = opts.max === undefined ? Infinity : Number(opts.max);
  if (!(max === Infinity || (Number.isInteger(max) && max >= 1))) {
    console.error(`--max must be a positive integer\n${USAGE}`);
    return 2;
  }

  const api = client(opts.url, process.env.CONSUMER_API_KEY);
  const stop = new AbortController(); // Ctrl-C ends the long-poll in progress
  process.once("SIGINT", () => stop.abort());
  process.once("SIGTERM", () => stop.abort());

  let consumerPath = null;
  let printed = 0;
  try {
    const session = await api("POST", "/api/consumers/subscribe", {
      group_id: opts.group, topics: [opts.topic], auto_offset_reset: "earliest", encoding: "json",
    });
    consumerPath = `/api/consumers/${encodeURIComponent(session.consumer_id)}`;
    while (!stop.signal.aborted && printed < max) {
      let records;
      try {
        // never ask for more than --max still allows: everything returned gets printed
        ({ records } = await api("POST", `${consumerPath}/consume`, {
          timeout_ms: POLL_TIMEOUT_MS, max_records: Math.min(MAX_RECORDS, max - printed),
        }, stop.signal));
      } catch (err) {
        if (stop.signal.aborted) break; // Ctrl-C during the long-poll
        if (!(err instanceof ApiError && err.retryable)) throw err;
        await sleep(Math.min(err.retryAfterMs || 1000, MAX_PAUSE_MS), stop.signal);
        continue;
      }
      for (const rec of records) {
        console.log(show(rec));
        printed++;
      }
      // no offsets: commit the positions, i.e. exactly the records returned so far
      if (records.length > 0) await api("POST", `${consumerPath}/commit`, {});
    }
  } catch (err) {
    console.error(err instanceof ApiError
      ? `error: ${err.code}: ${err.message} (HTTP ${err.status})`
      : `error: ${err.message}`);
    return 1;
  } finally {
    if (consumerPath !== null) {
      // leave the group: its partitions go to the other members at once
      await api("DELETE", consumerPath).catch((err) => {
        if (err.code !== "consumer_not_found") {
          console.error(`warning: leaving the group: ${err.message}`);
        }
      });
    }
  }
  const interrupted = stop.signal.aborted;
  console.error(`${interrupted ? "interrupted: " : ""}${printed} records printed and committed, ` +
                `left group ${opts.group}`);
  return interrupted ? 130 : 0;
}

process.exitCode = await main();
