"""Events: the outbox, the relay to Kafka and the consumer runner."""
