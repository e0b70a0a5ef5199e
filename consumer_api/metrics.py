"""Prometheus metrics (prometheus-client), one registry per app.

Counted as things happen (cheap increments on the request path):

* ``consumer_api_http_requests_total{method, route, status}`` and
  ``consumer_api_http_request_duration_seconds{method, route}`` (route = the URL template,
  so ids never become label values);
* ``consumer_api_records_produced_total{topic}``, ``consumer_api_records_consumed_total{topic}``
  (records a consume response delivered: one whose write failed gives its records back
  and is not counted).

Read at scrape time from the store (:meth:`consumer_api.backend.Backend.stats`) and the
sessions (no bookkeeping on the hot paths):

* ``consumer_api_refusals_total{reason}``: requests refused or connections cut to protect
  the other clients (see :mod:`consumer_api.refusals` for the reasons);
* ``consumer_api_request_bytes_buffered`` and ``consumer_api_response_bytes_in_flight``:
  what the two byte budgets hold (request bodies being received; record responses built
  and not yet sent), against their limits ``..._limit``;
* ``consumer_api_sessions``, ``consumer_api_waiting_polls`` (and, once the server has set
  one, ``consumer_api_waiting_polls_limit``), ``consumer_api_sessions_expired_total``, ``consumer_api_group_rebalances_total``;
* ``consumer_api_log_size_bytes{topic}`` (record bytes on disk);
* ``consumer_api_consumer_lag{group, topic, partition}`` (high watermark minus the group's
  committed offset, for every partition a group has committed).

Thread-safe (prometheus-client's instruments lock themselves; the collector only reads).
"""
from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from consumer_api.backend import Backend
from consumer_api.sessions.manager import ConsumerManager

#: request latencies from sub-millisecond produces to 300 s long-polls
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
                   30, 60, 300)


class Metrics:
    def __init__(self, backend: Backend, manager: ConsumerManager, refusals=None,
                 budgets=None):
        """``budgets``: ``(request bodies, record responses)`` ByteBudgets, or None."""
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter("consumer_api_http_requests", "HTTP requests answered",
                                ("method", "route", "status"), registry=self.registry)
        self.latency = Histogram("consumer_api_http_request_duration_seconds",
                                 "Time to answer an HTTP request", ("method", "route"),
                                 buckets=LATENCY_BUCKETS, registry=self.registry)
        self.produced = Counter("consumer_api_records_produced", "Records appended",
                                ("topic",), registry=self.registry)
        self.consumed = Counter("consumer_api_records_consumed",
                                "Records delivered to consumers", ("topic",),
                                registry=self.registry)
        self.registry.register(_StateCollector(backend, manager, refusals, budgets))
        self._children: dict = {}

    def consumed_by_topic(self) -> dict[str, float]:
        """Records delivered to consumers so far, ``{topic: count}``."""
        return {sample.labels["topic"]: sample.value for family in self.consumed.collect()
                for sample in family.samples if sample.name.endswith("_total")}

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        key = (method, route, status)
        children = self._children.get(key)
        if children is None:  # labels() takes a lock and builds a tuple: once per key
            children = self._children[key] = (self.requests.labels(method, route, str(status)),
                                              self.latency.labels(method, route))
        children[0].inc()
        children[1].observe(seconds)


class _StateCollector:
    """Gauges computed from the live state when Prometheus scrapes."""

    def __init__(self, backend: Backend, manager: ConsumerManager, refusals=None,
                 budgets=None):
        self._backend = backend
        self._manager = manager
        self._refusals = refusals
        self._budgets = budgets

    def describe(self):
        return []

    def collect(self):
        manager, backend = self._manager, self._backend
        yield GaugeMetricFamily("consumer_api_sessions", "Live consumer sessions",
                                value=manager.count())
        yield GaugeMetricFamily("consumer_api_waiting_polls",
                                "Consumes waiting for records right now",
                                value=manager.waiting())
        if manager.max_waiting_polls is not None:
            yield GaugeMetricFamily("consumer_api_waiting_polls_limit",
                                    "Consumes that may wait for records at once, server-wide",
                                    value=manager.max_waiting_polls)
        if self._refusals is not None:
            refused = CounterMetricFamily("consumer_api_refusals",
                                          "Requests refused or connections cut to protect "
                                          "the other clients", labels=("reason",))
            for reason, count in sorted(self._refusals.counts().items()):
                refused.add_metric((reason,), count)
            yield refused
        if self._budgets is not None:
            yield from _budget_gauges(*self._budgets)
        yield CounterMetricFamily("consumer_api_sessions_expired",
                                  "Sessions closed for lack of heartbeats",
                                  value=manager.expired_total)
        if not backend.is_open:
            return
        stats = backend.stats()
        yield CounterMetricFamily("consumer_api_group_rebalances", "Consumer group rebalances",
                                  value=stats.rebalances)
        sizes = GaugeMetricFamily("consumer_api_log_size_bytes", "Record bytes on disk",
                                  labels=("topic",))
        totals: dict = {}
        for part in stats.partitions:
            if part.size_bytes is not None:
                totals[part.topic] = totals.get(part.topic, 0) + part.size_bytes
        for topic, total in totals.items():
            sizes.add_metric((topic,), total)
        yield sizes
        lag = GaugeMetricFamily("consumer_api_consumer_lag",
                                "High watermark minus the group's committed offset",
                                labels=("group", "topic", "partition"))
        for group, lags in stats.lags().items():
            for (topic, partition), behind in lags.items():
                lag.add_metric((group, topic, str(partition)), behind)
        yield lag


def _budget_gauges(buffered, in_flight):
    for name, text, budget in (
            ("consumer_api_request_bytes_buffered", "Request body bytes held while they arrive",
             buffered),
            ("consumer_api_response_bytes_in_flight",
             "Record response bytes built and not yet sent", in_flight)):
        yield GaugeMetricFamily(name, text, value=budget.used)
        yield GaugeMetricFamily(name + "_limit", text + ": the most allowed",
                                value=budget.limit)
