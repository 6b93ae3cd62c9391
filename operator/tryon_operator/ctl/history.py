"""``tryonctl history``: which version served when, and why it stopped, from a TryOnModel's
``status.history`` and (with ``--mlflow``) the model-version tags the operator writes
(``tryon.dev/promoted``, ``tryon.dev/stopped``, ``tryon.dev/rejected``)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..api.models import Color, HistoryEntry, TryOnModelStatus, other_color
from ..api.vocabulary import REGISTRY_TAGS

TAGS = REGISTRY_TAGS


@dataclass(frozen=True)
class Served:
    version: str
    color: str
    since: datetime
    until: datetime | None  # None: still serving (or the history ends here)
    why_stopped: str
    resumed: bool = False  # traffic came back to it when a newer version was rolled back


def served_windows(status: TryOnModelStatus) -> list[Served]:
    """Each time traffic went to a version, until when and why it stopped (oldest first).

    Traffic moves on a promotion (``promotedAt``) and back on a rollback after promotion
    (``finishedAt`` of that entry, to its ``previousVersion`` on the other colour).
    """
    starts: list[tuple[datetime, str, Color, HistoryEntry | None]] = []
    for h in status.history:
        if h.promoted_at is None:
            continue
        starts.append((h.promoted_at, h.version, h.color, None))
        if h.outcome == "RolledBack" and h.previous_version is not None:
            starts.append((h.finished_at, h.previous_version, other_color(h.color), h))
    starts.sort(key=lambda s: s[0])
    out: list[Served] = []
    for i, (since, version, color, cause) in enumerate(starts):
        if i + 1 < len(starts):
            until, nxt_version, _, nxt_cause = starts[i + 1]
            if nxt_cause is not None and nxt_cause.version == version:
                why = f"rolled back: {nxt_cause.reason}"
            else:
                why = f"replaced by version {nxt_version}"
            out.append(Served(version, color, since, until, why, cause is not None))
        else:
            why = "serving" if version == status.active_version else "-"
            out.append(Served(version, color, since, None, why, cause is not None))
    return out


def _ts(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else "-"


def render(
    name: str,
    namespace: str,
    status: TryOnModelStatus,
    tags: dict[str, dict[str, str]] | None = None,
) -> str:
    lines = [
        f"TryOnModel {namespace}/{name}: phase {status.phase}, active "
        f"{status.active_color or '-'} (version {status.active_version or '-'})"
    ]
    if status.model is not None:
        lines.append(
            f"model: {status.model.registered_model} {status.model.selector} -> "
            f"version {status.model.version}"
        )
    if status.rejected_versions:
        lines.append(f"rejected versions: {', '.join(status.rejected_versions)}")
    lines.append("")
    lines.append(
        f"{'VERSION':<8} {'COLOUR':<7} {'OUTCOME':<11} {'STARTED':<19}  "
        f"{'PROMOTED':<19}  {'FINISHED':<19}  REASON: MESSAGE"
    )
    for h in status.history:
        lines.append(_row(h))
    windows = served_windows(status)
    if windows:
        lines.append("")
        lines.append("served:")
        for w in windows:
            again = " again" if w.resumed else ""
            lines.append(
                f"  version {w.version} on {w.color}{again}: {_ts(w.since)} .. "
                f"{_ts(w.until) if w.until else 'now'} ({w.why_stopped})"
            )
    for version, found in sorted((tags or {}).items(), key=lambda kv: int(kv[0])):
        lines.append(f"MLflow version {version}:")
        for key in TAGS:
            if key in found:
                lines.append(f"  {key} = {found[key]}")
    return "\n".join(lines)


def as_json(status: TryOnModelStatus, tags: dict[str, dict[str, str]] | None) -> dict[str, Any]:
    return {
        "history": [h.model_dump(mode="json", by_alias=True) for h in status.history],
        "served": [
            {
                "version": w.version,
                "color": w.color,
                "since": w.since.isoformat(),
                "until": w.until.isoformat() if w.until else None,
                "whyStopped": w.why_stopped,
                "resumed": w.resumed,
            }
            for w in served_windows(status)
        ],
        "mlflowTags": tags or {},
    }


def _row(h: HistoryEntry) -> str:
    message = f"{h.reason}: {h.message}" if h.message else h.reason
    return (
        f"{h.version:<8} {h.color:<7} {h.outcome:<11} {_ts(h.started_at):<19}  "
        f"{_ts(h.promoted_at):<19}  {_ts(h.finished_at):<19}  {message}"
    )


def read_tags(uri: str, model: str, versions: set[str]) -> dict[str, dict[str, str]]:
    """The operator's tags on each model version (a version MLflow cannot answer is skipped)."""
    import httpx

    token = os.environ.get("MLFLOW_TRACKING_TOKEN")
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    out: dict[str, dict[str, str]] = {}
    with httpx.Client(timeout=5.0, headers=headers) as http:
        for version in sorted(versions, key=int)[:50]:
            response = http.get(
                uri.rstrip("/") + "/api/2.0/mlflow/model-versions/get",
                params={"name": model, "version": version},
            )
            if not response.is_success:
                continue
            tags = response.json().get("model_version", {}).get("tags") or []
            out[version] = {t["key"]: t["value"] for t in tags if t.get("key") in TAGS}
    return out
