"""HTTP layer: handlers parse, authorize, call services and serialize."""
