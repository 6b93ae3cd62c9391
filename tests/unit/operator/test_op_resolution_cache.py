"""The registry answer is shared by every TryOnModel asking the same question (issue 8: at 1,000
objects a per-object cache made ~33 MLflow calls/s against a 30 s poll)."""

from __future__ import annotations

import pytest
from tryon_operator.api.errors import ModelResolutionError
from tryon_operator.gateways.mlflow import ResolvedModel
from tryon_operator.registry.cache import ResolutionCache

from tests.support.fake_world import Ticks

pytestmark = pytest.mark.unit

DRESS = ("http://mlflow", "dress-model", "alias", "production")
SHIRT = ("http://mlflow", "shirt-model", "alias", "production")
V1 = ResolvedModel("1", "run", "s3://x")


def test_one_answer_serves_every_object_on_the_same_selector_until_the_poll_interval():
    clock = Ticks(0.0)
    cache = ResolutionCache(30, monotonic=clock)
    cache.put(DRESS, V1)

    clock.now = 29.9
    assert cache.get(DRESS) == V1  # a second object on the same model costs no registry call
    clock.now = 30.0
    assert cache.get(DRESS) is None


def test_a_different_selector_or_model_is_asked_separately():
    cache = ResolutionCache(30, monotonic=Ticks(0.0))
    cache.put(DRESS, V1)

    assert cache.get(SHIRT) is None
    assert cache.get(("http://mlflow", "dress-model", "version", "1")) is None


def test_failures_are_retried_with_backoff_up_to_the_poll_interval():
    clock = Ticks(0.0)
    cache = ResolutionCache(3, monotonic=clock)
    err = ModelResolutionError("RegistryUnavailable", "down")
    ttls = []
    for _ in range(4):
        cache.put(DRESS, err)
        start = clock.now
        while cache.get(DRESS) is not None:
            clock.now += 0.5
        ttls.append(clock.now - start)
    assert ttls == [1.0, 2.0, 3.0, 3.0]


def test_invalidate_drops_only_the_named_model():
    cache = ResolutionCache(30, monotonic=Ticks(0.0))
    cache.put(DRESS, V1)
    cache.put(SHIRT, V1)

    cache.invalidate("dress-model")

    assert cache.get(DRESS) is None
    assert cache.get(SHIRT) == V1
