"""Operator settings, read once from the environment (``TRYON_*``) at start."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

ENV_PREFIX = "TRYON_"


class OperatorSettings(BaseModel):
    """Every knob the operator has; see docs/operator.md for the reference."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    mlflow_tracking_uri: str = "http://mlflow.mlflow:5000"
    mlflow_poll_seconds: Annotated[float, Field(gt=0)] = 30.0
    mlflow_timeout_seconds: Annotated[float, Field(gt=0)] = 5.0
    mlflow_token: str | None = None
    # A safety net: changes to the children wake an object's reconcile at once (runtime/wakeups.py).
    resync_seconds: Annotated[float, Field(gt=0)] = 30.0
    reconcile_workers: Annotated[int, Field(ge=1, le=256)] = 16
    service_url_template: str = "http://{service}.{namespace}.svc:{port}"
    crashloop_restarts: Annotated[int, Field(ge=1)] = 3
    history_limit: Annotated[int, Field(ge=1)] = 10
    rejected_limit: Annotated[int, Field(ge=1)] = 20
    webhook_port: Annotated[int, Field(ge=0, le=65535)] = 0
    webhook_host: str = "0.0.0.0"
    webhook_secret: str | None = None
    webhook_tolerance_seconds: Annotated[float, Field(gt=0)] = 300.0
    # HTTPS for the receiver (webhook_tls.py): a PEM certificate chain and its key, re-read when
    # the files change. Plain http only with webhook_allow_http (MLflow itself sends https only).
    webhook_cert_file: str | None = None
    webhook_key_file: str | None = None
    webhook_allow_http: bool = False
    # Where KEDA's Prometheus trigger reads the renderers' serving signals (spec.autoscaling.metric
    # inFlight / queueDepth); spec.autoscaling.prometheusAddress overrides it per TryOnModel.
    prometheus_url: Annotated[str, Field(pattern=r"^https?://[^\s]+$")] | None = None
    metrics_port: Annotated[int, Field(ge=0, le=65535)] = 0
    metrics_host: str = "0.0.0.0"
    # Notifications (docs/operator.md#notifications). URLs are credentials: set them from a
    # Secret (secretKeyRef); SecretStr keeps them out of repr and logs.
    notify_slack_url: SecretStr | None = None
    notify_webhook_url: SecretStr | None = None
    notify_webhook_token: SecretStr | None = None
    notify_events: str = ""  # comma-separated kinds; empty means all
    notify_queue_size: Annotated[int, Field(ge=1, le=10000)] = 100
    notify_max_attempts: Annotated[int, Field(ge=1, le=20)] = 5
    notify_timeout_seconds: Annotated[float, Field(gt=0)] = 5.0
    notify_backoff_seconds: Annotated[float, Field(gt=0)] = 1.0
    notify_dedup_seconds: Annotated[float, Field(ge=0)] = 300.0
    notify_breaker_threshold: Annotated[int, Field(ge=1)] = 5
    notify_breaker_cooldown_seconds: Annotated[float, Field(gt=0)] = 30.0
    # High availability (leadership.py): replicas campaign for the Lease `tryon-operator`.
    leader_election: bool = True
    leader_election_namespace: str | None = None  # None: the ServiceAccount's, else `default`
    leader_election_lease_seconds: Annotated[int, Field(ge=1)] = 15
    leader_election_renew_deadline_seconds: Annotated[float, Field(gt=0)] = 10.0
    leader_election_retry_period_seconds: Annotated[float, Field(gt=0)] = 2.0
    pod_name: str | None = None  # the Lease's holderIdentity; None: <hostname>-<pid>
    pod_ip: str | None = None  # where a standby hands webhook deliveries to the leader

    @model_validator(mode="after")
    def _leader_election_timing(self) -> OperatorSettings:
        lease = self.leader_election_lease_seconds
        renew = self.leader_election_renew_deadline_seconds
        retry = self.leader_election_retry_period_seconds
        if not lease > renew > retry:
            raise ValueError(
                "leader election needs lease seconds > renew deadline > retry period, "
                f"got {lease} / {renew} / {retry}"
            )
        return self

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> OperatorSettings:
        env = os.environ if environ is None else environ
        values: dict[str, str] = {}
        for name in cls.model_fields:
            key = ENV_PREFIX + name.upper()
            if key in env:
                values[name] = env[key]
        if "mlflow_tracking_uri" not in values and env.get("MLFLOW_TRACKING_URI"):
            values["mlflow_tracking_uri"] = env["MLFLOW_TRACKING_URI"]
        if "mlflow_token" not in values and env.get("MLFLOW_TRACKING_TOKEN"):
            values["mlflow_token"] = env["MLFLOW_TRACKING_TOKEN"]
        return cls.model_validate(values)

    def service_url(self, service: str, namespace: str, port: int) -> str:
        return self.service_url_template.format(service=service, namespace=namespace, port=port)
