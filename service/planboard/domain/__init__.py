"""Pure planning domain: plan documents, dependency DAG and progress (standard library only)."""
