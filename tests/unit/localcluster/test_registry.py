"""The local registry's names, credentials and configs: what the node and the pods are given."""

from __future__ import annotations

import base64
import json
import re
import tomllib
from pathlib import Path

import pytest
import yaml

from hack.localcluster import registry

pytestmark = pytest.mark.unit

PATHS = registry.RegistryPaths(Path("/cache/registry"))


def test_the_image_tag_is_the_12_character_commit_or_says_dirty() -> None:
    assert re.fullmatch(r"[0-9a-f]{12}(-dirty)?", registry.image_tag())


def test_images_live_under_the_registry_address_with_the_given_tag() -> None:
    assert registry.image("tryon-renderer", "0123456789ab") == (
        f"{registry.ADDRESS}/tryon/tryon-renderer:0123456789ab"
    )


def test_a_commit_tag_is_pulled_if_not_present_and_a_dirty_one_always() -> None:
    assert registry.pull_policy("0123456789ab") == "IfNotPresent"
    assert registry.pull_policy("0123456789ab-dirty") == "Always"


def test_the_pull_secret_is_a_dockerconfigjson_for_the_registry_address() -> None:
    secret = registry.pull_secret_manifest("shop", secret="s3cret")
    assert secret["type"] == "kubernetes.io/dockerconfigjson"
    assert secret["metadata"] == {"name": registry.PULL_SECRET, "namespace": "shop"}
    auth = json.loads(secret["stringData"][".dockerconfigjson"])["auths"][registry.ADDRESS]
    assert base64.b64decode(auth["auth"]).decode() == f"{registry.USER}:s3cret"


def test_containerd_reaches_the_registry_over_tls_with_its_own_ca_for_pulls_only() -> None:
    hosts = tomllib.loads(registry.hosts_toml(PATHS))
    assert hosts["server"] == f"https://{registry.ADDRESS}"
    host = hosts["host"][f"https://{registry.ADDRESS}"]
    assert host == {"capabilities": ["pull", "resolve"], "ca": "/cache/registry/pki/ca.crt"}


def test_the_registry_serves_tls_with_htpasswd_on_loopback_and_allows_deletes() -> None:
    config = yaml.safe_load(registry.config_yaml(PATHS))
    assert config["http"]["addr"].startswith("127.0.0.1:")
    assert config["http"]["tls"]["certificate"] == "/cache/registry/pki/tls.crt"
    assert config["auth"]["htpasswd"]["path"] == "/cache/registry/htpasswd"
    assert config["storage"]["filesystem"]["rootdirectory"] == "/cache/registry/data"
    assert config["storage"]["delete"]["enabled"] is True
