"""Data access: one repository per collection, over PyMongo's async API."""
