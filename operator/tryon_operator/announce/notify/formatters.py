"""Turn a :class:`Notification` into the JSON body each kind of receiver expects."""

from __future__ import annotations

from typing import Any

from ..told import Told
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


def _version_line(told: Told) -> str:
    if told.version and told.previous_version:
        return f"{told.previous_version} → {told.version}"
    return told.version or "-"


def slack_payload(n: Notification) -> dict[str, Any]:
    """Incoming-webhook body: ``text`` (the notification line) plus one coloured attachment.

    Attachments (not Block Kit) because every Slack-compatible receiver (Slack, Mattermost,
    Rocket.Chat, Discord's ``/slack`` endpoint) renders them.
    """
    told = n.told
    headline = f"{_EMOJI[n.kind]} *{n.title}*: TryOnModel `{_escape(n.object_ref)}`" + (
        f" version {_escape(told.version)}" if told.version else ""
    )
    fields: list[dict[str, Any]] = [
        {"title": "TryOnModel", "value": _escape(n.object_ref), "short": True},
        {"title": "Version", "value": _escape(_version_line(told)), "short": True},
    ]
    if told.registered_model:
        fields.append(
            {"title": "Registered model", "value": _escape(told.registered_model), "short": True}
        )
    if told.color:
        colours = f"{told.previous_color} → {told.color}" if told.previous_color else told.color
        fields.append({"title": "Colour", "value": _escape(colours), "short": True})
    if n.reason:
        fields.append({"title": "Reason", "value": _escape(n.reason), "short": True})
    for key, value in list(told.evidence.items())[:6]:
        fields.append({"title": _escape(str(key)), "value": _escape(str(value))[:300]})
    body: dict[str, Any] = {
        "text": headline,
        "attachments": [
            {
                "fallback": _escape(f"{n.title}: {n.object_ref}: {told.message}")[:_MAX_TEXT],
                "color": _COLORS[n.severity],
                "text": _escape(told.message)[:_MAX_TEXT],
                "fields": fields,
                "footer": "tryon-operator",
                "ts": int(told.at.timestamp()),
                "mrkdwn_in": ["text"],
            }
        ],
    }
    if n.channel:
        body["channel"] = n.channel
    return body


def generic_payload(n: Notification) -> dict[str, Any]:
    """A flat, documented JSON object for anything else (Teams bridges, PagerDuty, scripts)."""
    told, owner = n.told, n.owner
    return {
        "schema": SCHEMA,
        "id": n.id,
        "kind": n.kind,
        "severity": n.severity,
        "title": n.title,
        "summary": told.message,
        "tryOnModel": {"namespace": owner.namespace, "name": owner.name, "uid": owner.uid},
        "registeredModel": told.registered_model,
        "version": told.version,
        "previousVersion": told.previous_version,
        "color": told.color,
        "previousColor": told.previous_color,
        "reason": n.reason,
        "evidence": dict(told.evidence),
        "occurredAt": told.at.isoformat(),
    }
