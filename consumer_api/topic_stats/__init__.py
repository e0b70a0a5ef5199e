"""Aggregates of a topic's records over time, on any store (issue 15, part 5).

* :mod:`.window`: a time range cut into buckets, its defaults and limits, and what time a
  record counts at;
* :mod:`.buckets`: records and bytes per time bucket, from the store's time index
  (``Backend.positions_for_times``), never by reading records;
* :mod:`.top_keys`: records by key over a range, by reading them in time order, bounded
  by a number of records and of bytes.
"""
