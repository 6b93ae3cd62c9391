"""A real Prometheus next to the local cluster: Kubernetes pod discovery through the cluster's
kubeconfig, scraping the pods that carry ``prometheus.io/scrape: "true"`` (the renderer pods and
the operator's), with the relabelling docs/deploy.md shows ("Metrics and health").

Built from its Go module with Kubernetes discovery only (``hack/build-tools.sh prometheus``); it
listens on loopback and keeps its data in the caller's work dir. ``make e2e`` starts one per
session (tests/e2e/conftest.py).
"""

from __future__ import annotations

import json
import subprocess
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .devservers import ManagedProcess
from .procs import free_port, http_ok

REPO = Path(__file__).resolve().parents[2]
SCRAPE_INTERVAL_S = 2  # short, so a test sees a new pod's series within seconds


def scrape_config(kubeconfig: Path) -> dict[str, Any]:
    """One job over every pod the annotations invite, labelled with namespace, pod, the
    TryOnModel (``instance_name``) and its colour."""
    annotation = "__meta_kubernetes_pod_annotation_prometheus_io_"
    pod_label = "__meta_kubernetes_pod_label_"
    return {
        "global": {"scrape_interval": f"{SCRAPE_INTERVAL_S}s", "evaluation_interval": "5s"},
        "scrape_configs": [
            {
                "job_name": "kubernetes-pods",
                "kubernetes_sd_configs": [{"role": "pod", "kubeconfig_file": str(kubeconfig)}],
                "relabel_configs": [
                    {"source_labels": [f"{annotation}scrape"], "action": "keep", "regex": "true"},
                    {"source_labels": [f"{annotation}path"], "action": "replace",
                     "regex": "(.+)", "target_label": "__metrics_path__"},
                    {"source_labels": ["__address__", f"{annotation}port"], "action": "replace",
                     "regex": r"([^:]+)(?::\d+)?;(\d+)", "replacement": "$1:$2",
                     "target_label": "__address__"},
                    {"source_labels": ["__meta_kubernetes_namespace"], "target_label": "namespace"},
                    {"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod"},
                    {"source_labels": [f"{pod_label}app_kubernetes_io_instance"],
                     "target_label": "instance_name"},
                    {"source_labels": [f"{pod_label}tryon_dev_color"], "target_label": "color"},
                ],
            }
        ],
    }  # fmt: skip


def binary_dir() -> Path:
    out = subprocess.run(
        ["bash", str(REPO / "hack" / "build-tools.sh"), "prometheus"],
        check=True,
        stdout=subprocess.PIPE,
        text=True,
    ).stdout.split()
    return next(Path(line) for line in out if Path(line).name.startswith("prometheus-"))


@dataclass
class Prometheus:
    process: ManagedProcess
    url: str

    def query(self, promql: str) -> list[dict[str, Any]]:
        """The instant vector ``promql`` gives now (``[]`` when nothing matches)."""
        query = urllib.parse.urlencode({"query": promql})
        with urllib.request.urlopen(f"{self.url}/api/v1/query?{query}", timeout=5) as answer:
            body = json.loads(answer.read())
        return list(body["data"]["result"])

    def stop(self) -> None:
        self.process.stop()


def start_prometheus(workdir: Path, kubeconfig: Path, host: str = "127.0.0.1") -> Prometheus:
    """Prometheus on a free port of ``host`` (loopback, or the node's bridge address when pods
    such as the operator must reach it), ready when its API answers."""
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "prometheus.json"  # Prometheus reads YAML, and JSON is YAML
    config.write_text(json.dumps(scrape_config(kubeconfig), indent=1))
    port = free_port(host)
    process = ManagedProcess(
        "prometheus",
        [
            str(binary_dir() / "prometheus"),
            f"--config.file={config}",
            f"--storage.tsdb.path={workdir / 'data'}",
            "--storage.tsdb.retention.time=2h",
            f"--web.listen-address={host}:{port}",
        ],
        {"PATH": "/usr/bin:/bin"},
        workdir / "prometheus.log",
    )
    process.start()
    url = f"http://{host}:{port}"
    process.wait_ready(lambda: http_ok(f"{url}/-/ready"), 60)
    return Prometheus(process, url)
