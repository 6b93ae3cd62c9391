"""Turn a :class:`Notification` into the JSON body each kind of receiver expects."""

from __future__ import annotations

from typing import Any

from .message import Notification

SCHEMA = "tryon.dev/notification/v1"

# Slack's attachment colour bar; Mattermost and Rocket.Chat use the same field.
_COLORS = {"info": "#439FE0", "success": "good", "warning": "warning", "error": "danger"}
_EMOJI = {
    "rollout_started": ":arrows_counterclockwise:",
    "promoted": ":white_check_mark:",
    "rejected": ":no_entry:",
    "rolled_back": ":rewind:",
    "degraded": ":warning:",
    "recovered": ":green_heart:",
}
_MAX_TEXT = 2900  # Slack truncates section text at 3000 characters


def _escape(text: str) -> str:
    """Slack mrkdwn control characters, as Slack documents them."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _version_line(n: Notification) -> str:
    if n.version and n.previous_version:
        return f"{n.previous_version} → {n.version}"
    return n.version or "-"


def slack_payload(n: Notification) -> dict[str, Any]:
    """Incoming-webhook body: ``text`` (the notification line) plus one coloured attachment.

    Attachments (not Block Kit) because every Slack-compatible receiver (Slack, Mattermost,
    Rocket.Chat, Discord's ``/slack`` endpoint) renders them.
    """
    headline = f"{_EMOJI[n.kind]} *{n.title}*: TryOnModel `{_escape(n.object_ref)}`" + (
        f" version {_escape(n.version)}" if n.version else ""
    )
    fields: list[dict[str, Any]] = [
        {"title": "TryOnModel", "value": _escape(n.object_ref), "short": True},
        {"title": "Version", "value": _escape(_version_line(n)), "short": True},
    ]
    if n.registered_model:
        fields.append(
            {"title": "Registered model", "value": _escape(n.registered_model), "short": True}
        )
    if n.color:
        colours = f"{n.previous_color} → {n.color}" if n.previous_color else n.color
        fields.append({"title": "Colour", "value": _escape(colours), "short": True})
    if n.reason:
        fields.append({"title": "Reason", "value": _escape(n.reason), "short": True})
    for key, value in list(n.evidence.items())[:6]:
        fields.append({"title": _escape(str(key)), "value": _escape(str(value))[:300]})
    body: dict[str, Any] = {
        "text": headline,
        "attachments": [
            {
                "fallback": _escape(f"{n.title}: {n.object_ref}: {n.summary}")[:_MAX_TEXT],
                "color": _COLORS[n.severity],
                "text": _escape(n.summary)[:_MAX_TEXT],
                "fields": fields,
                "footer": "tryon-operator",
                "ts": int(n.occurred_at.timestamp()),
                "mrkdwn_in": ["text"],
            }
        ],
    }
    if n.channel:
        body["channel"] = n.channel
    return body


def generic_payload(n: Notification) -> dict[str, Any]:
    """A flat, documented JSON object for anything else (Teams bridges, PagerDuty, scripts)."""
    return {
        "schema": SCHEMA,
        "id": n.id,
        "kind": n.kind,
        "severity": n.severity,
        "title": n.title,
        "summary": n.summary,
        "tryOnModel": {"namespace": n.namespace, "name": n.name, "uid": n.uid},
        "registeredModel": n.registered_model,
        "version": n.version,
        "previousVersion": n.previous_version,
        "color": n.color,
        "previousColor": n.previous_color,
        "reason": n.reason,
        "evidence": dict(n.evidence),
        "occurredAt": n.occurred_at.isoformat(),
    }
