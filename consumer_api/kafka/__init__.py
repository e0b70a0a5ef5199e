"""The store over an Apache Kafka cluster (confluent-kafka); see :mod:`.backend`."""
