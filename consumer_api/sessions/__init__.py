"""HTTP consumer sessions: heartbeats, expiry, long-poll waiting, and the log that carries
them across a restart (:mod:`consumer_api.sessions.saved`). No Flask."""
