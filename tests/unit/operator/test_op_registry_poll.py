"""The registry poller asks MLflow once per distinct question and wakes only what changed."""

from __future__ import annotations

import pytest
from tryon_operator.api.errors import ModelResolutionError
from tryon_operator.gateways.mlflow import ResolvedModel
from tryon_operator.registry.cache import ResolutionCache
from tryon_operator.registry.poll import RegistryPoller, answer_changed, ref_for
from tryon_operator.registry.watchers import Followers, ModelWatchers

pytestmark = pytest.mark.unit

KEY = ("http://mlflow", "dress-model", "alias", "production")
OTHER = ("http://mlflow", "shoe-model", "version", "3")


class Registry:
    def __init__(self, answers):
        self.answers = answers
        self.calls = []

    def resolve(self, tracking_uri, ref):
        self.calls.append((tracking_uri, ref.registered_model, *ref.selector))
        answer = self.answers[ref.registered_model]
        if isinstance(answer, ModelResolutionError):
            raise answer
        return answer


class Parts:
    def __init__(self, registry):
        self.registry = registry
        self.cache = ResolutionCache(30.0)
        self.watchers = ModelWatchers()
        for key in (("shop", "dress"), ("shop", "gown")):
            self.watchers.follow(key, "dress-model")
        self.watchers.follow(("shop", "shoe"), "shoe-model")


def poller_with(answers):
    parts = Parts(Registry(answers))
    parts.cache.put(KEY, ResolvedModel("1", "run1", "s3://m/1"))
    parts.cache.put(OTHER, ResolvedModel("3", "run3", "s3://m/3"))
    followers = Followers(cache=parts.cache, watchers=parts.watchers, poke=lambda ns, n: None)
    poller = RegistryPoller(parts.registry, followers, 30.0)
    return poller, parts


def test_an_alias_move_wakes_the_objects_of_that_model_only():
    poller, _ = poller_with({"dress-model": ResolvedModel("2", "run2", "s3://m/2"),
                             "shoe-model": ResolvedModel("3", "run3", "s3://m/3")})
    assert poller.poll_once() == {("shop", "dress"), ("shop", "gown")}


def test_an_unchanged_registry_wakes_nobody_and_asks_once_per_question():
    poller, reconciler = poller_with({"dress-model": ResolvedModel("1", "run1", "s3://m/1"),
                                      "shoe-model": ResolvedModel("3", "run3", "s3://m/3")})
    assert poller.poll_once() == set()
    assert sorted(reconciler.registry.calls) == sorted([KEY, OTHER])


def test_mlflow_going_down_wakes_the_objects_so_they_report_it():
    down = ModelResolutionError("MlflowUnavailable", "connection refused")
    poller, reconciler = poller_with({"dress-model": down, "shoe-model": down})
    assert poller.poll_once() == {("shop", "dress"), ("shop", "gown"), ("shop", "shoe")}
    assert reconciler.cache.get(KEY) is down


def test_the_same_failure_again_is_no_change():
    down = ModelResolutionError("MlflowUnavailable", "connection refused")
    assert not answer_changed(down, ModelResolutionError("MlflowUnavailable", "timed out"))
    assert answer_changed(down, ModelResolutionError("AliasNotFound", "no alias"))


def test_a_cached_question_becomes_the_same_model_reference():
    ref = ref_for(OTHER)
    assert (ref.registered_model, ref.selector) == ("shoe-model", ("version", "3"))
