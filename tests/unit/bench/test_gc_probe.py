"""bench/operator_bench.py starts measuring only once the garbage collector knows the new CRD:
else its one-time GETs of the owners of the first children count as the controller's reads."""

from __future__ import annotations

from typing import Any

import pytest

from bench.opbench.cluster_load import GC_PROBE_LABEL, wait_gc_knows

pytestmark = pytest.mark.unit


class CollectorLearningLate:
    """ConfigMaps of one namespace; the collector starts deleting orphaned probes after
    ``learns_after`` listings (its 30 s rediscovery), the newest first."""

    def __init__(self, learns_after: int) -> None:
        self.learns_after = learns_after
        self.listings = 0
        self.probes: dict[str, dict[str, Any]] = {}
        self.deleted: list[str] = []

    def create(self, path: str, obj: dict[str, Any]) -> None:
        self.probes[obj["metadata"]["name"]] = obj

    def get(self, path: str) -> dict[str, Any]:
        self.listings += 1
        if self.listings > self.learns_after:
            newest = list(self.probes)[-1]
            owner = self.probes.pop(newest)["metadata"]["ownerReferences"][0]
            assert (owner["apiVersion"], owner["kind"]) == ("tryon.dev/v1alpha1", "TryOnModel")
        return {"items": list(self.probes.values())}

    def request(self, method: str, path: str, **_: Any) -> None:
        self.deleted.append(f"{method} {path}")


def test_waits_until_the_collector_deletes_a_probe_owned_by_a_missing_object():
    api = CollectorLearningLate(learns_after=5)

    wait_gc_knows(api, "tryon.dev/v1alpha1", "TryOnModel", every=0.0, poll=0.0)

    assert api.listings == 6
    assert len(api.probes) == 5  # a fresh probe each turn; what is left goes by its label
    assert api.deleted == [
        f"DELETE /api/v1/namespaces/default/configmaps?labelSelector={GC_PROBE_LABEL}=tryonmodel"
    ]
