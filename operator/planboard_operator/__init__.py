"""The Planboard operator (Kopf): reconciles Planboard, PlanboardBackup and PlanboardRestore."""

__version__ = "0.1.0"
