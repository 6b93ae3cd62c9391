"""Notifications about rollouts: a message model, receiver formats and a non-blocking dispatcher."""

from .dispatcher import DeliveryPolicy, Dispatcher, NotifyMetrics, Target, parse_retry_after
from .formatters import generic_payload, slack_payload
from .message import KINDS, Kind, Notification

__all__ = [
    "KINDS",
    "DeliveryPolicy",
    "Dispatcher",
    "Kind",
    "Notification",
    "NotifyMetrics",
    "Target",
    "generic_payload",
    "parse_retry_after",
    "slack_payload",
]
