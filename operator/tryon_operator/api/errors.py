"""Domain errors raised by gateways; handlers map them to kopf's temporary/permanent errors."""

from __future__ import annotations


class TryOnError(Exception):
    """Base class for errors this operator understands."""


class KubeError(TryOnError):
    """The Kubernetes API refused or failed a call."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class KubeConflictError(KubeError):
    """Someone else changed the object first (HTTP 409); retry soon."""


class InvalidSpecError(TryOnError):
    """The TryOnModel spec cannot be acted on; a person must fix it."""


class ModelResolutionError(TryOnError):
    """The registry could not name a version; ``reason`` is a CamelCase condition reason."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class RegistryError(TryOnError):
    """A registry write (such as a tag) failed."""


class NotLeaderError(TryOnError):
    """This replica does not (or no longer) hold the leader Lease: it must write nothing."""


class SignalError(TryOnError):
    """Prometheus could not give a serving signal (unreachable, an error, or a bad answer)."""
