"""The operator's names in one place: API coordinates, labels, annotations, MLflow tags, Event
reasons. Anything another program may match on (kubectl selectors, dashboards, the audit log,
notification rules) is spelled here once, so a typo is a mypy error instead of a silent miss."""

from __future__ import annotations

from typing import Literal, get_args

GROUP = "tryon.dev"
VERSION = "v1alpha1"
PLURAL = "tryonmodels"
KIND = "TryOnModel"
API_VERSION = f"{GROUP}/{VERSION}"

MANAGER = "tryon-operator"  # field manager, Event source, managed-by label value
APP_NAME = "tryon-renderer"

LABEL_NAME = "app.kubernetes.io/name"
LABEL_INSTANCE = "app.kubernetes.io/instance"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_COLOR = "tryon.dev/color"
LABEL_VERSION = "tryon.dev/model-version"
# Label (and annotation) keys only the operator sets on renderer pods: they select each colour.
PROTECTED_LABEL_PREFIXES = ("tryon.dev/", "app.kubernetes.io/")
ANNOTATION_TEMPLATE_HASH = "tryon.dev/template-hash"

# One-shot requests a person (or tryonctl) puts on a TryOnModel; the operator removes each.
ANNOTATION_PROMOTE = "tryon.dev/promote"
ANNOTATION_ROLLBACK = "tryon.dev/rollback"
ANNOTATION_RETRY = "tryon.dev/retry"
REQUEST_ANNOTATIONS = (ANNOTATION_PROMOTE, ANNOTATION_ROLLBACK, ANNOTATION_RETRY)

# Per-object notification choices (announce/announcer.py).
ANNOTATION_NOTIFY = "tryon.dev/notify"
ANNOTATION_NOTIFY_EVENTS = "tryon.dev/notify-events"
ANNOTATION_SLACK_CHANNEL = "tryon.dev/notify-slack-channel"
# On an Event whose notification every target is done with: a new leader redoing the decision
# sends the notification again only when this is missing.
ANNOTATION_NOTIFIED = "tryon.dev/notified"

# MLflow model-version tags the operator writes (ctl/history.py reads them back).
TAG_PROMOTED = "tryon.dev/promoted"
TAG_STOPPED = "tryon.dev/stopped"
TAG_REJECTED = "tryon.dev/rejected"
REGISTRY_TAGS = (TAG_PROMOTED, TAG_STOPPED, TAG_REJECTED)

GPU = "nvidia.com/gpu"
RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"  # set by `kubectl rollout restart`

EventType = Literal["Normal", "Warning"]
EventReason = Literal[
    "ModelResolved",
    "ModelResolutionFailed",
    "ModelResolutionRecovered",
    "RolloutStarted",
    "RolloutCancelled",
    "SmokeTestPassed",
    "AwaitingPromotion",
    "Promoted",
    "PreviewGrowing",
    "PreviewShrunk",
    "StandbyShrunk",
    "MadeRoomForPreview",
    "RolledBack",
    "ScaledDown",
    "Rescaled",
    "RolloutComplete",
    "SelfHealed",
    "GPUShortage",
    "ImageUnavailable",
    "PodsRefused",
    "AutoscalingUnavailable",
    "Degraded",
    "Recovered",
    "InvalidSpec",
    "ManualRequestIgnored",
    "RetryRequested",
]

# The audit line's ``decision``: what kind of step a reason records.
AuditVerb = Literal[
    "resolve",
    "scale",
    "smoke",
    "flip",
    "reject",
    "rollback",
    "complete",
    "cancel",
    "await",
    "heal",
    "degrade",
    "recover",
    "other",
]
# What people are notified of; ``tryon.dev/notify-events`` and TRYON_NOTIFY_EVENTS name these.
NotificationKind = Literal[
    "rollout_started", "promoted", "rejected", "rolled_back", "degraded", "recovered"
]
NOTIFICATION_KINDS: tuple[NotificationKind, ...] = get_args(NotificationKind)

# Every reason's audit verb and the notification it makes (None: audited only). A new reason is
# one row here; a unit test fails while one is missing.
ANNOUNCED_AS: dict[EventReason, tuple[AuditVerb, NotificationKind | None]] = {
    "ModelResolved": ("resolve", None),
    "ModelResolutionFailed": ("resolve", None),
    "ModelResolutionRecovered": ("resolve", None),
    "RolloutStarted": ("scale", "rollout_started"),
    "RolloutCancelled": ("cancel", None),
    "SmokeTestPassed": ("smoke", None),
    "AwaitingPromotion": ("await", None),
    "Promoted": ("flip", "promoted"),
    "PreviewGrowing": ("scale", None),
    "PreviewShrunk": ("scale", None),
    "StandbyShrunk": ("scale", None),
    "MadeRoomForPreview": ("scale", None),
    "RolledBack": ("reject", "rejected"),
    "ScaledDown": ("scale", None),
    "Rescaled": ("scale", None),
    "RolloutComplete": ("complete", None),
    "SelfHealed": ("heal", None),
    "GPUShortage": ("other", None),
    "ImageUnavailable": ("other", None),
    "PodsRefused": ("other", None),
    "AutoscalingUnavailable": ("other", None),
    "Degraded": ("degrade", "degraded"),
    "Recovered": ("recover", "recovered"),
    "InvalidSpec": ("other", None),
    "ManualRequestIgnored": ("other", None),
    "RetryRequested": ("other", None),
}
# A call site may name a sharper verb than its reason's row (``Told.decision``). This one also
# changes the notification: a version taken back after its flip moved traffic twice, which is
# worse news than a rejection before the flip (both are ``RolledBack`` Events).
KIND_BY_VERB: dict[AuditVerb, NotificationKind] = {"rollback": "rolled_back"}

# MLflow webhook deliveries (webhook.py verifies them; handover.py forwards them to the leader).
WEBHOOK_PATH = "/webhooks/mlflow"
SIGNATURE_HEADER = "X-MLflow-Signature"
TIMESTAMP_HEADER = "X-MLflow-Timestamp"
DELIVERY_HEADER = "X-MLflow-Delivery-Id"

# The renderer's serving signals, by spec.autoscaling.metric (renderer/tryon_renderer/metrics.py).
SERVING_SERIES = {"inFlight": "tryon_in_flight_requests", "queueDepth": "tryon_queue_depth"}
