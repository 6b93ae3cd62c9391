"""Pure functions that turn a spec into the child objects the operator owns."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .models import AutoscalingSpec, Color, TryOnModelSpec
from .podtemplate import merge
from .vocabulary import (
    ANNOTATION_TEMPLATE_HASH,
    API_VERSION,
    APP_NAME,
    KIND,
    LABEL_COLOR,
    LABEL_INSTANCE,
    LABEL_MANAGED_BY,
    LABEL_NAME,
    LABEL_VERSION,
    MANAGER,
    SERVING_SERIES,
)

NO_COLOR = "none"


@dataclass(frozen=True)
class Owner:
    """The TryOnModel that owns the children."""

    name: str
    namespace: str
    uid: str

    def reference(self) -> dict[str, Any]:
        return {
            "apiVersion": API_VERSION,
            "kind": KIND,
            "name": self.name,
            "uid": self.uid,
            "controller": True,
            "blockOwnerDeletion": True,
        }


def deployment_name(owner: str, color: Color) -> str:
    return f"{owner}-{color}"


def preview_service_name(owner: str) -> str:
    return f"{owner}-preview"


def selector_labels(owner: str, color: Color | None) -> dict[str, str]:
    return {LABEL_NAME: APP_NAME, LABEL_INSTANCE: owner, LABEL_COLOR: color or NO_COLOR}


def _metadata(owner: Owner, name: str, labels: dict[str, str]) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": owner.namespace,
        "labels": {**labels, LABEL_MANAGED_BY: MANAGER},
        "ownerReferences": [owner.reference()],
    }


# preStop sleep, then up to the renderer's 30 s drain of in-flight requests, then a margin.
PRE_STOP_SLEEP_S = 5
PROBE_PERIOD_S = 1
# The renderer image's user and group (Dockerfile: useradd --uid 10001).
RENDERER_UID = 10001
# Pod Security "restricted" (what shared and managed clusters enforce) asks all of these; the
# root filesystem is read-only, so what the renderer writes (its verified model cache under
# /tmp, Python's and torch's temporary files) goes to an emptyDir.
RENDERER_POD_SECURITY: dict[str, Any] = {
    "runAsNonRoot": True,
    "runAsUser": RENDERER_UID,
    "runAsGroup": RENDERER_UID,
    "fsGroup": RENDERER_UID,
    "seccompProfile": {"type": "RuntimeDefault"},
}
RENDERER_CONTAINER_SECURITY: dict[str, Any] = {
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "capabilities": {"drop": ["ALL"]},
}
SCRATCH_VOLUME = "tmp"
TERMINATION_GRACE_S = PRE_STOP_SLEEP_S + 30 + 10


def model_uri(spec: TryOnModelSpec, version: str) -> str:
    return f"models:/{spec.model.registered_model}/{version}"


def build_deployment(
    spec: TryOnModelSpec,
    color: Color,
    version: str,
    owner: Owner,
    *,
    tracking_uri: str,
    replicas: int,
) -> dict[str, Any]:
    """A colour's Deployment, pinned to one concrete model version."""
    renderer = spec.renderer
    pod_labels = {
        **renderer.pod_labels,
        **selector_labels(owner.name, color),
        LABEL_VERSION: version,
    }
    env = [
        {"name": "TRYON_MODEL_URI", "value": model_uri(spec, version)},
        {"name": "TRYON_MODEL_NAME", "value": spec.model.registered_model},
        {"name": "TRYON_MODEL_VERSION", "value": version},
        {"name": "MLFLOW_TRACKING_URI", "value": tracking_uri},
        {"name": "TRYON_PORT", "value": str(renderer.port)},
    ] + [e.model_dump(by_alias=True, exclude_none=True) for e in renderer.env]
    container: dict[str, Any] = {
        "name": "renderer",
        "image": renderer.image,
        "ports": [{"name": "http", "containerPort": renderer.port, "protocol": "TCP"}],
        "env": env,
        "resources": renderer.resources.model_dump(by_alias=True, exclude_defaults=False),
        # Probed every second: the kubelet's probe period is pure waiting between "loaded and
        # warm" and Ready (10 s and 5 s periods made 13 s of a 1 MB model's alias-to-flip).
        "startupProbe": {
            "httpGet": {"path": "/healthz", "port": "http"},
            "periodSeconds": PROBE_PERIOD_S,
            "failureThreshold": renderer.startup_timeout_seconds // PROBE_PERIOD_S,
        },
        "livenessProbe": {
            "httpGet": {"path": "/healthz", "port": "http"},
            "periodSeconds": 10,
            "failureThreshold": 3,
        },
        "readinessProbe": {
            "httpGet": {"path": "/readyz", "port": "http"},
            "periodSeconds": PROBE_PERIOD_S,
            "failureThreshold": 3,
        },
        # A deleted pod keeps accepting requests while its endpoint is removed from the Service
        # (EndpointSlice update, then every kube-proxy's next sync); only then does SIGTERM start
        # the renderer's drain. Without it shoppers get refused connections on every scale-down.
        "lifecycle": {"preStop": {"sleep": {"seconds": PRE_STOP_SLEEP_S}}},
        "securityContext": RENDERER_CONTAINER_SECURITY,
        "volumeMounts": [{"name": SCRATCH_VOLUME, "mountPath": "/tmp"}],
    }
    if renderer.image_pull_policy:
        container["imagePullPolicy"] = renderer.image_pull_policy
    pod_spec: dict[str, Any] = {
        "containers": [container],
        "terminationGracePeriodSeconds": TERMINATION_GRACE_S,
        "securityContext": RENDERER_POD_SECURITY,
        "volumes": [{"name": SCRATCH_VOLUME, "emptyDir": {}}],
    }
    if renderer.node_selector:
        pod_spec["nodeSelector"] = dict(renderer.node_selector)
    if renderer.tolerations:
        pod_spec["tolerations"] = [
            t.model_dump(by_alias=True, exclude_none=True) for t in renderer.tolerations
        ]
    if renderer.service_account_name:
        pod_spec["serviceAccountName"] = renderer.service_account_name
    template_hash = renderer.template_hash()
    metadata = _metadata(owner, deployment_name(owner.name, color), pod_labels)
    metadata["annotations"] = {ANNOTATION_TEMPLATE_HASH: template_hash}
    template: dict[str, Any] = {
        "metadata": {
            "labels": pod_labels,
            "annotations": {
                **scrape_annotations(renderer.port),
                **renderer.pod_annotations,
                ANNOTATION_TEMPLATE_HASH: template_hash,
            },
        },
        "spec": pod_spec,
    }
    if renderer.pod_template is not None:
        # Validated by the model: it cannot touch labels, env, port or probes the operator owns.
        template = merge(template, renderer.pod_template.model_dump(by_alias=True))
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata,
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": selector_labels(owner.name, color)},
            # GPUs are scarce: replace pods of a colour rather than surge beside them.
            "strategy": {"type": "Recreate"},
            "progressDeadlineSeconds": max(spec.rollout.progress_deadline_seconds, 60),
            "revisionHistoryLimit": 2,
            "template": template,
        },
    }


def scrape_annotations(port: int) -> dict[str, str]:
    """What a plain Prometheus's pod discovery keeps by convention (``prometheus.io/*``): the
    renderer serves /metrics on its HTTP port. ``podAnnotations`` may override them."""
    return {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": str(port),
        "prometheus.io/path": "/metrics",
    }


def build_service(
    spec: TryOnModelSpec, owner: Owner, *, color: Color | None, preview: bool
) -> dict[str, Any]:
    """The active Service ``<name>`` or the preview Service ``<name>-preview``."""
    name = preview_service_name(owner.name) if preview else owner.name
    labels = {LABEL_NAME: APP_NAME, LABEL_INSTANCE: owner.name}
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(owner, name, labels),
        "spec": {
            "type": "ClusterIP",
            "selector": selector_labels(owner.name, color),
            "ports": [
                {
                    "name": "http",
                    "port": spec.service.port,
                    "targetPort": "http",
                    "protocol": "TCP",
                }
            ],
        },
    }


def build_hpa(spec: TryOnModelSpec, owner: Owner, *, color: Color) -> dict[str, Any]:
    """An HPA on CPU that scales the active colour; it moves with the flip."""
    autoscaling = spec.autoscaling
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": _metadata(
            owner, owner.name, {LABEL_NAME: APP_NAME, LABEL_INSTANCE: owner.name}
        ),
        "spec": {
            "scaleTargetRef": {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "name": deployment_name(owner.name, color),
            },
            "minReplicas": autoscaling.min_replicas,
            "maxReplicas": autoscaling.max_replicas,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {
                            "type": "Utilization",
                            "averageUtilization": round(autoscaling.per_pod_target()),
                        },
                    },
                }
            ],
            "behavior": scaling_behavior(autoscaling),
        },
    }


def scaling_behavior(
    autoscaling: AutoscalingSpec, *, hold_scale_in: bool = False
) -> dict[str, Any]:
    """Up at once (double, or 4 pods, per 15 s: the HPA's default), down only after the
    stabilisation window (300 s by default, the HPA's own), so a lull between bursts keeps pods;
    ``hold_scale_in`` (a rollout and its rollback window) disables scale-down altogether."""
    scale_down: dict[str, Any] = {
        "stabilizationWindowSeconds": autoscaling.scale_down_stabilization_seconds
    }
    if hold_scale_in:
        scale_down["selectPolicy"] = "Disabled"
    return {
        "scaleUp": {
            "stabilizationWindowSeconds": 0,
            "policies": [
                {"type": "Percent", "value": 100, "periodSeconds": 15},
                {"type": "Pods", "value": 4, "periodSeconds": 15},
            ],
            "selectPolicy": "Max",
        },
        "scaleDown": scale_down,
    }


def serving_query(metric: str, namespace: str, deployment: str) -> str:
    """A colour's total of a serving signal; KEDA divides it by the replicas (``AverageValue``).
    The labels are those Kubernetes pod discovery gives (docs/deploy.md, "Metrics and health")."""
    return f'sum({SERVING_SERIES[metric]}{{namespace="{namespace}", pod=~"{deployment}-.*"}})'


def build_scaled_object(
    spec: TryOnModelSpec,
    owner: Owner,
    *,
    color: Color,
    prometheus: str,
    fallback_replicas: int,
    hold_scale_in: bool = False,
) -> dict[str, Any]:
    """KEDA's ScaledObject on a serving signal (requests in flight or queued per pod) read from
    Prometheus; ``fallback_replicas`` holds the colour while the metric cannot be read, and
    ``hold_scale_in`` keeps it from shrinking during a rollout (argo-rollouts#1864)."""
    autoscaling = spec.autoscaling
    deployment = deployment_name(owner.name, color)
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": _metadata(
            owner, owner.name, {LABEL_NAME: APP_NAME, LABEL_INSTANCE: owner.name}
        ),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": deployment},
            "minReplicaCount": autoscaling.min_replicas,
            "maxReplicaCount": autoscaling.max_replicas,
            "pollingInterval": 5,
            "fallback": {"failureThreshold": 3, "replicas": fallback_replicas},
            "advanced": {
                "horizontalPodAutoscalerConfig": {
                    "behavior": scaling_behavior(autoscaling, hold_scale_in=hold_scale_in)
                }
            },
            "triggers": [
                {
                    "type": "prometheus",
                    "metricType": "AverageValue",
                    "metadata": {
                        "serverAddress": prometheus,
                        "query": serving_query(autoscaling.metric, owner.namespace, deployment),
                        "threshold": f"{autoscaling.per_pod_target():g}",
                    },
                }
            ],
        },
    }
