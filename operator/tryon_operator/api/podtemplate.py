"""``spec.renderer.podTemplate``: checked against the PodSpec schema, then merged over the pod the
operator builds.

Why a partial template: platform teams need pod fields the operator does not name (image pull
secrets, affinity, topology spread, priority and runtime classes, volumes); Argo Rollouts takes a
whole PodTemplateSpec and KServe the pod spec's fields. Merge rules: maps merge key by key, lists
whose items all carry a ``name`` (containers, volumes, env, volumeMounts, imagePullSecrets) merge
by name, anything else replaces. The operator's own parts (selector labels, the model env, the
renderer's port and probes) cannot be set: a template that tries is refused, naming the field.

Every function here is pure; ``schema_errors`` reads the field names and types the Kubernetes
client was generated with, so a misspelt field is an error with its path, not silently dropped.
"""

from __future__ import annotations

import copy
import re
from typing import Any

import kubernetes.client

from .vocabulary import PROTECTED_LABEL_PREFIXES

RENDERER_CONTAINER = "renderer"
# The renderer container's fields that gate a rollout or serve traffic: the operator's alone.
OPERATOR_CONTAINER_FIELDS = ("ports", "startupProbe", "livenessProbe", "readinessProbe")
OPERATOR_ENV = ("MLFLOW_TRACKING_URI", "TRYON_PORT")
OPERATOR_ENV_PREFIX = "TRYON_MODEL_"
_GENERIC = re.compile(r"^(List|Dict)\[(?:str, )?(.+)\]$")
_SCALARS: dict[str, tuple[type, ...]] = {
    "str": (str,),
    "quantity": (str, int, float),
    "int": (int,),
    "float": (int, float),
    "bool": (bool,),
}


def schema_errors(value: Any, type_name: str = "V1PodSpec", path: str = "spec") -> list[str]:
    """Fields ``value`` has that the Kubernetes type does not, and values of the wrong shape."""
    generic = _GENERIC.match(type_name)
    if generic:
        kind, inner = generic.groups()
        if kind == "List":
            if not isinstance(value, list):
                return [f"{path}: must be a list"]
            return [
                error
                for index, item in enumerate(value)
                for error in schema_errors(item, inner, _at(path, item, index))
            ]
        if not isinstance(value, dict):
            return [f"{path}: must be a map"]
        # Map values typed str are labels, selectors or resource quantities ("1", 1, 0.5).
        inner = "quantity" if inner == "str" else inner
        return [e for k, v in value.items() for e in schema_errors(v, inner, f"{path}[{k}]")]
    if type_name in _SCALARS:
        ok = isinstance(value, _SCALARS[type_name]) and not (
            type_name != "bool" and isinstance(value, bool)
        )
        return [] if ok else [f"{path}: must be {type_name}, not {type(value).__name__}"]
    model = getattr(kubernetes.client, type_name, None)
    if model is None:  # "object" (int-or-string, raw JSON) and anything the client leaves open
        return []
    if not isinstance(value, dict):
        return [f"{path}: must be an object"]
    fields = {wire: model.openapi_types[attr] for attr, wire in model.attribute_map.items()}
    errors: list[str] = []
    for key, item in value.items():
        if key not in fields:
            errors.append(f"{path}.{key}: not a field of {type_name.removeprefix('V1')}")
        else:
            errors.extend(schema_errors(item, fields[key], f"{path}.{key}"))
    return errors


def _at(path: str, item: Any, index: int) -> str:
    name = item.get("name") if isinstance(item, dict) else None
    return f"{path}[{name}]" if isinstance(name, str) else f"{path}[{index}]"


def operator_owned_errors(template: dict[str, Any]) -> list[str]:
    """The operator's own parts a template tries to set, as ``podTemplate.<path>: why``."""
    errors: list[str] = []
    metadata = template.get("metadata") or {}
    for kind in ("labels", "annotations"):
        for key in metadata.get(kind) or {}:
            if key.startswith(PROTECTED_LABEL_PREFIXES):
                errors.append(
                    f"podTemplate.metadata.{kind}[{key}]: tryon.dev/* and app.kubernetes.io/* "
                    "are the operator's (they select each colour's pods)"
                )
    for container in (template.get("spec") or {}).get("containers") or []:
        if not isinstance(container, dict) or container.get("name") != RENDERER_CONTAINER:
            continue
        at = f"podTemplate.spec.containers[{RENDERER_CONTAINER}]"
        errors += [
            f"{at}.{field}: the operator's (the port serves traffic, the probes gate the rollout)"
            for field in OPERATOR_CONTAINER_FIELDS
            if field in container
        ]
        errors += [
            f"{at}.env[{name}]: the operator's (it pins the pod to one model version)"
            for env in container.get("env") or []
            if isinstance(env, dict)
            and isinstance(name := env.get("name"), str)
            and (name in OPERATOR_ENV or name.startswith(OPERATOR_ENV_PREFIX))
        ]
    return errors


def merge(base: Any, overlay: Any) -> Any:
    """``overlay`` over ``base``: maps key by key, named lists by name, anything else replaced."""
    if isinstance(base, dict) and isinstance(overlay, dict):
        merged = dict(base)
        for key, value in overlay.items():
            merged[key] = merge(base[key], value) if key in base else copy.deepcopy(value)
        return merged
    if _named(base) and _named(overlay):
        extra = {item["name"]: item for item in overlay}
        merged_list = [merge(item, extra.pop(item["name"])) if item["name"] in extra else item
                       for item in base]  # fmt: skip
        return merged_list + [copy.deepcopy(item) for item in extra.values()]
    return copy.deepcopy(overlay)


def _named(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(i, dict) and "name" in i for i in value)
