"""Notifications about rollouts: a message model, receiver formats and a non-blocking dispatcher."""

from .delivery import DeliveryPolicy, NotifyMetrics, Target, parse_retry_after
from .dispatcher import Dispatcher
from .formatters import generic_payload, slack_payload
from .message import Notification

__all__ = [
    "DeliveryPolicy",
    "Dispatcher",
    "Notification",
    "NotifyMetrics",
    "Target",
    "generic_payload",
    "parse_retry_after",
    "slack_payload",
]
