"""Names shared by the CRDs, the builders and the reconcilers (docs/design/planboard-crd.md)."""

from __future__ import annotations

GROUP = "planboard.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

PLANBOARD = "Planboard"
BACKUP = "PlanboardBackup"
RESTORE = "PlanboardRestore"
PLURALS = {PLANBOARD: "planboards", BACKUP: "planboardbackups", RESTORE: "planboardrestores"}

#: Server-side apply field manager of everything the operator writes.
FIELD_MANAGER = "planboard-operator"

PAUSED_ANNOTATION = f"{GROUP}/paused"
CONFIG_HASH_ANNOTATION = f"{GROUP}/config-hash"
SCHEDULED_AT_ANNOTATION = f"{GROUP}/scheduled-at"
#: Label on backup/restore objects and Jobs naming their Planboard.
PLANBOARD_LABEL = f"{GROUP}/planboard"
SCHEDULED_LABEL = f"{GROUP}/scheduled"

NAME_LABEL = "app.kubernetes.io/name"
INSTANCE_LABEL = "app.kubernetes.io/instance"
COMPONENT_LABEL = "app.kubernetes.io/component"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
PART_OF_LABEL = "app.kubernetes.io/part-of"
VERSION_LABEL = "app.kubernetes.io/version"

APP_NAME = "planboard"
MANAGED_BY = "planboard-operator"

HTTP_PORT = 8080
#: Where a backup PVC is mounted in backup and restore Jobs.
BACKUP_MOUNT = "/backups"

#: Condition types of a Planboard.
READY = "Ready"
PROGRESSING = "Progressing"
DEGRADED = "Degraded"
BACKUP_SUCCEEDED = "BackupSucceeded"
RECONCILIATION_PAUSED = "ReconciliationPaused"
#: Condition types of a PlanboardBackup / PlanboardRestore.
RUNNING = "Running"
COMPLETE = "Complete"
FAILED = "Failed"
