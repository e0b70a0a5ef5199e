// Produce JSON order events to a consumer-api topic with Node's built-in fetch (Node 18+,
// no npm packages).
//
//   node examples/node/producer.mjs --url http://127.0.0.1:8080 --topic demo --count 10
//   CONSUMER_API_KEY=s3cret node examples/node/producer.mjs --topic demo
//
// Creates the topic if it does not exist, sends --count events keyed by customer with a
// couple of headers in the "json" encoding, and prints where they went. An error response
// ({error, code, details}) is printed as "error: <code>: <error>" with exit status 1.
import { randomUUID } from "node:crypto";
import { parseArgs } from "node:util";

const USAGE = `usage: node examples/node/producer.mjs [--url URL] [--topic TOPIC] [--count N] [--partitions P]

  --url URL         server address (env CONSUMER_API_URL; default http://127.0.0.1:8080)
  --topic TOPIC     topic to produce to (default demo)
  --count N         events to send (default 10)
  --partitions P    partitions if the topic is created (default 3)
The API key, if the server wants one, comes from the environment: CONSUMER_API_KEY.`;

const BATCH = 500; // records per request: each request is stored whole or not at all

class ApiError extends Error {
  constructor(status, body) {
    super(body?.error ?? `HTTP ${status}`);
    this.status = status;
    this.code = body?.code ?? "http_error";
    this.details = body?.details ?? {};
  }
}

function client(baseUrl, apiKey) {
  const headers = { "Content-Type": "application/json", Accept: "application/json" };
  if (apiKey) headers.Authorization = `Bearer ${apiKey}`;
  return async function call(method, path, body) {
    let resp;
    try {
      resp = await fetch(new URL(path, baseUrl), {
        method, headers, body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (err) {
      throw new Error(`cannot reach ${baseUrl}: ${err.cause?.message ?? err.message}`);
    }
    const text = await resp.text();
    let json = null;
    try { json = text ? JSON.parse(text) : null; } catch { /* not JSON: handled below */ }
    if (!resp.ok) throw new ApiError(resp.status, json);
    return json;
  };
}

function orderEvent(seq) {
  const customer = `customer-${seq % 4}`;
  return {
    key: customer, // "json" encoding: stored as the JSON text "customer-0", quotes included
    value: {
      event_id: randomUUID(),
      type: "order_created",
      seq,
      customer,
      amount_cents: 500 + ((seq * 137) % 9500),
      created_at: new Date().toISOString(),
    },
    headers: { producer: "examples/node/producer.mjs", "content-type": "application/json" },
  };
}

async function main() {
  let opts;
  try {
    ({ values: opts } = parseArgs({
      options: {
        url: { type: "string", default: process.env.CONSUMER_API_URL || "http://127.0.0.1:8080" },
        topic: { type: "string", default: "demo" },
        count: { type: "string", default: "10" },
        partitions: { type: "string", default: "3" },
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
  const count = Number(opts.count);
  const partitions = Number(opts.partitions);
  if (!Number.isInteger(count) || count < 1 || !Number.isInteger(partitions) || partitions < 1) {
    console.error(`--count and --partitions must be positive integers\n${USAGE}`);
    return 2;
  }

  const api = client(opts.url, process.env.CONSUMER_API_KEY);
  const topicPath = `/api/topics/${encodeURIComponent(opts.topic)}`;
  try {
    try {
      await api("POST", "/api/topics", { name: opts.topic, partitions });
      console.log(`created topic ${opts.topic} with ${partitions} partitions`);
    } catch (err) {
      if (err.code !== "topic_exists") throw err; // already there: produce to it as it is
    }
    const byPartition = new Map();
    for (let start = 0; start < count; start += BATCH) {
      const records = [];
      for (let seq = start; seq < Math.min(start + BATCH, count); seq++) {
        records.push(orderEvent(seq));
      }
      const { offsets } = await api("POST", `${topicPath}/records`, { encoding: "json", records });
      for (const { partition, offset } of offsets) {
        const seen = byPartition.get(partition) ?? { n: 0, first: offset, last: offset };
        byPartition.set(partition, { n: seen.n + 1, first: Math.min(seen.first, offset),
                                     last: Math.max(seen.last, offset) });
      }
    }
    console.log(`produced ${count} events to ${opts.topic}`);
    for (const [partition, { n, first, last }] of [...byPartition].sort((a, b) => a[0] - b[0])) {
      console.log(`  partition ${partition}: ${n} events, offsets ${first}..${last}`);
    }
    return 0;
  } catch (err) {
    console.error(err instanceof ApiError
      ? `error: ${err.code}: ${err.message} (HTTP ${err.status})`
      : `error: ${err.message}`);
    return 1;
  }
}

process.exitCode = await main();
