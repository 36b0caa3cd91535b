"""Worker groups: one module per Kafka consumer group."""
