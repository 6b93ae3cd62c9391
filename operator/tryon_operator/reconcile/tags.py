"""MLflow model-version tags: sent at once, or owed in status while MLflow is unreachable."""

from __future__ import annotations

import logging

from ..api.errors import RegistryError
from ..api.models import PendingTag, TryOnModelStatus
from .context import Effects, ReconcileContext

log = logging.getLogger(__name__)

TAG_VALUE_LIMIT = 5000  # MLflow's limit on a tag value
OWED_TAGS_LIMIT = 20  # status stays small; the oldest owed tag is dropped first


def tag(
    ctx: ReconcileContext, fx: Effects, status: TryOnModelStatus, version: str, key: str, value: str
) -> TryOnModelStatus:
    """Tags a model version; if MLflow is down, owes it."""
    model = ctx.spec.model.registered_model
    owed = PendingTag(
        registered_model=model, version=version, key=key, value=value[:TAG_VALUE_LIMIT]
    )
    try:
        fx.registry.set_version_tag(ctx.tracking_uri, model, version, key, owed.value)
    except RegistryError as err:
        log.warning("could not record %s on MLflow, will retry: %s", key, err)
        return owe_tag(status, owed)
    return status


def pay_owed(ctx: ReconcileContext, fx: Effects, status: TryOnModelStatus) -> TryOnModelStatus:
    """Sends tags owed from an outage, oldest first; stops at the first failure.

    A tag owed to a model the spec no longer names is dropped: this object no longer manages that
    model, and its tracking server may be another one.
    """
    model = ctx.spec.model.registered_model
    for gone in (t for t in status.pending_registry_tags if t.registered_model != model):
        log.warning(
            "dropping owed MLflow tag %s on %s v%s: the spec now names %s",
            gone.key,
            gone.registered_model,
            gone.version,
            model,
        )
    owed = [t for t in status.pending_registry_tags if t.registered_model == model]
    while owed:
        first = owed[0]
        try:
            fx.registry.set_version_tag(
                ctx.tracking_uri, model, first.version, first.key, first.value
            )
        except RegistryError as err:
            log.warning(
                "owed MLflow tag %s on version %s still not sent: %s", first.key, first.version, err
            )
            break
        log.info("sent owed MLflow tag %s on version %s", first.key, first.version)
        owed.pop(0)
    return status.model_copy(update={"pending_registry_tags": tuple(owed)})


def owe_tag(status: TryOnModelStatus, tag: PendingTag) -> TryOnModelStatus:
    """Adds a tag to the owed list; a newer value for the same version and key replaces it."""
    kept = tuple(
        t for t in status.pending_registry_tags if (t.version, t.key) != (tag.version, tag.key)
    )
    owed = (*kept, tag)[-OWED_TAGS_LIMIT:]
    return status.model_copy(update={"pending_registry_tags": owed})
