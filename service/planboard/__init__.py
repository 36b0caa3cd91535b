"""Planboard: a Kubernetes-native project-planning platform (API, workers, relay)."""

__version__ = "0.1.0"
