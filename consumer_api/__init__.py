"""consumer-api: a Kafka-style message log with an HTTP API."""
__version__ = "0.1.0"
