"""Application services: use cases over the domain and the store."""
