"""HTTP consumer sessions: heartbeats, expiry, long-poll waiting. No Flask, no files."""
