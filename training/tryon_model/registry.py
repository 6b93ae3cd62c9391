"""MLflow Model Registry gateway: versions, aliases, tags and the production history.

Every MLflow failure is translated into `RegistryError` with a message that says what was being
done and against which server, so the CLI can print one clear line and exit non-zero.

Audit trail (tags, all prefixed ``tryon.``):

- on a version when trained: ``dataset_hash``, ``git_commit``, ``train_run_id``, ``created_by``;
- on a version when promoted: ``promoted_at``, ``promoted_by``, ``promotion_reason``,
  ``promotion_forced``, ``parent_version`` (production before it), ``promotion_metrics`` (JSON:
  candidate and production metrics), ``promotion_decision``, ``eval_dataset_hash``;
- on a refused candidate: ``refused_at``, ``refused_by``, ``refusal``;
- rollback: ``rolled_back_at/_by/_to`` and ``rollback_reason`` on the version taken out,
  ``restored_at/_by/_from`` on the version put back;
- on the registered model: ``tryon.production_history``, a JSON list (newest last, bounded) of
  ``{"action", "version", "from", "at", "by", "reason"}`` entries.
"""

from __future__ import annotations

import contextlib
import getpass
import json
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

TAG_PREFIX = "tryon."
HISTORY_TAG = "tryon.production_history"
HISTORY_KEEP = 25
MAX_TAG_CHARS = 4900
PRODUCTION_ALIAS = "production"


class RegistryError(Exception):
    """A registry operation failed; the message is meant for people."""


class NotFoundError(RegistryError):
    """The model, version or alias does not exist."""


@dataclass(frozen=True)
class VersionInfo:
    name: str
    version: str
    run_id: str | None
    source: str | None
    tags: dict[str, str] = field(default_factory=dict)
    aliases: tuple[str, ...] = ()

    @property
    def parent_version(self) -> str | None:
        value = self.tags.get(TAG_PREFIX + "parent_version")
        return value if value and value != "none" else None


def actor() -> str:
    """Who is acting: $TRYON_ACTOR, else user@host."""
    explicit = os.environ.get("TRYON_ACTOR")
    if explicit:
        return explicit
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def clip(text: str, limit: int = MAX_TAG_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _error_code(err: Exception) -> str | None:
    code = getattr(err, "error_code", None)
    return str(code) if code else None


class Registry:
    """Thin wrapper over `MlflowClient` for the registry operations the CLI needs."""

    def __init__(self, tracking_uri: str | None = None, client: Any = None) -> None:
        from mlflow import MlflowClient
        from mlflow.tracking import get_tracking_uri

        self.tracking_uri = tracking_uri or get_tracking_uri()
        self.client = client or MlflowClient(tracking_uri=self.tracking_uri)

    @contextlib.contextmanager
    def _translate(self, what: str) -> Iterator[None]:
        from mlflow.exceptions import MlflowException

        try:
            yield
        except MlflowException as err:
            code = _error_code(err)
            text = str(err).splitlines()[0] if str(err) else type(err).__name__
            if code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE") and (
                "not found" in text.lower()
                or "does not exist" in text.lower()
                or "alias" in text.lower()
            ):
                raise NotFoundError(f"{what}: {text}") from err
            if "max retries" in text.lower() or "connection" in text.lower():
                raise RegistryError(
                    f"{what}: cannot reach MLflow at {self.tracking_uri} ({text})"
                ) from err
            raise RegistryError(f"{what}: {text}") from err
        except OSError as err:
            raise RegistryError(
                f"{what}: cannot reach MLflow at {self.tracking_uri} ({err})"
            ) from err

    # ------------------------------------------------------------------ reads

    def _info(self, mv: Any) -> VersionInfo:
        return VersionInfo(
            name=str(mv.name),
            version=str(mv.version),
            run_id=mv.run_id or None,
            source=mv.source or None,
            tags={str(k): str(v) for k, v in (mv.tags or {}).items()},
            aliases=tuple(getattr(mv, "aliases", None) or ()),
        )

    def version(self, name: str, version: str) -> VersionInfo:
        with self._translate(f"model {name!r} version {version}"):
            return self._info(self.client.get_model_version(name, str(version)))

    def alias_version(self, name: str, alias: str = PRODUCTION_ALIAS) -> VersionInfo | None:
        """The version an alias points to, or None when the alias (or model) does not exist."""
        try:
            with self._translate(f"alias {alias!r} of model {name!r}"):
                return self._info(self.client.get_model_version_by_alias(name, alias))
        except NotFoundError:
            return None

    def versions(self, name: str) -> list[VersionInfo]:
        """All versions of a model, oldest first ([] when the model does not exist)."""
        with self._translate(f"listing versions of {name!r}"):
            found = self.client.search_model_versions(f"name='{name}'")
        return sorted((self._info(mv) for mv in found), key=lambda v: int(v.version))

    def latest_version(self, name: str) -> VersionInfo | None:
        versions = self.versions(name)
        return versions[-1] if versions else None

    def model_tags(self, name: str) -> dict[str, str]:
        with self._translate(f"model {name!r}"):
            model = self.client.get_registered_model(name)
        return {str(k): str(v) for k, v in (model.tags or {}).items()}

    def history(self, name: str) -> list[dict[str, Any]]:
        raw = self.model_tags(name).get(HISTORY_TAG)
        if not raw:
            return []
        try:
            entries = json.loads(raw)
        except ValueError:
            return []
        return [e for e in entries if isinstance(e, dict)] if isinstance(entries, list) else []

    # ------------------------------------------------------------------ writes

    def set_alias(self, name: str, alias: str, version: str) -> None:
        with self._translate(f"setting alias {alias!r} of {name!r} to version {version}"):
            self.client.set_registered_model_alias(name, alias, str(version))

    def set_version_tags(self, name: str, version: str, tags: dict[str, str]) -> None:
        with self._translate(f"tagging {name!r} version {version}"):
            for key, value in tags.items():
                self.client.set_model_version_tag(name, str(version), key, clip(str(value)))

    def append_history(self, name: str, entry: dict[str, Any]) -> None:
        entries = [*self.history(name), entry][-HISTORY_KEEP:]
        text = json.dumps(entries, separators=(",", ":"))
        while len(text) > MAX_TAG_CHARS and len(entries) > 1:
            entries = entries[1:]
            text = json.dumps(entries, separators=(",", ":"))
        with self._translate(f"writing production history of {name!r}"):
            self.client.set_registered_model_tag(name, HISTORY_TAG, text)

    def ensure_model(self, name: str, description: str | None = None) -> None:
        try:
            with self._translate(f"model {name!r}"):
                self.client.get_registered_model(name)
        except NotFoundError:
            with self._translate(f"creating model {name!r}"):
                self.client.create_registered_model(name, description=description)

    def create_version(
        self, name: str, source: str, run_id: str, tags: dict[str, str]
    ) -> VersionInfo:
        self.ensure_model(name)
        with self._translate(f"registering a new version of {name!r}"):
            mv = self.client.create_model_version(
                name, source=source, run_id=run_id, tags={k: clip(v) for k, v in tags.items()}
            )
        return self._info(mv)

    def check_reachable(self) -> None:
        """Fail early with a clear message when the tracking server does not answer."""
        with self._translate("contacting the tracking server"):
            self.client.search_experiments(max_results=1)
