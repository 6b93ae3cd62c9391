"""``make demo``: the whole product on one machine, from an empty registry to a rollback.

Starts the local control plane with a real kubelet node (real-node-1: containerd, CNI bridge,
kube-proxy, CoreDNS) next to the kwok nodes, a real S3 server and a real MLflow server published
in the cluster by name; trains and promotes v1; installs the operator with the Helm chart (it runs
in a pod); applies a TryOnModel whose renderer pods run on real-node-1; promotes a better v2 and
shows the blue/green flip; promotes a broken v3 and shows the smoke gate's rollback; prints the
pods with their node and containerd IDs, and a timeline. Shoppers' requests go to the Service's
ClusterIP, through kube-proxy, to the renderer containers. Needs root and `make images`.

    python -m hack.demo [--keep] [--workdir .demo]      # from the repository root; make demo
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hack.localcluster import incluster
from hack.localcluster.cluster import LocalCluster
from hack.localcluster.procs import wait_until

REPO = Path(__file__).resolve().parent.parent

NAMESPACE = "demo"
NAME = "dress"
MODEL = "tryon-vton"
BIN = Path(sys.executable).parent


def say(text: str) -> None:
    print(f"\033[1m==> {text}\033[0m", flush=True)


def detail(text: str) -> None:
    for line in text.rstrip().splitlines():
        print(f"    {line}", flush=True)


@dataclass
class Timeline:
    """What happened when, for the closing table."""

    started: float = field(default_factory=time.monotonic)
    rows: list[tuple[str, float, float]] = field(default_factory=list)

    @contextlib.contextmanager
    def step(self, title: str) -> Iterator[None]:
        say(title)
        begin = time.monotonic()
        yield
        self.rows.append((title, begin - self.started, time.monotonic() - begin))

    def mark(self, title: str, duration: float) -> None:
        self.rows.append((title, time.monotonic() - self.started - duration, duration))

    def table(self) -> str:
        lines = [f"{'step':<66} {'at (s)':>8} {'took (s)':>9}", "-" * 85]
        lines += [f"{title:<66} {at:8.1f} {took:9.1f}" for title, at, took in self.rows]
        lines.append(f"{'total':<66} {'':>8} {time.monotonic() - self.started:9.1f}")
        return "\n".join(lines)


def run(argv: list[str], env: Mapping[str, str], *, capture: bool = False) -> str:
    """Runs a project command; on failure shows its output and stops the demo."""
    result = subprocess.run(
        argv,
        env={**os.environ, **env},
        text=True,
        stdout=subprocess.PIPE if capture else None,
        stderr=subprocess.STDOUT if capture else None,
    )
    if result.returncode != 0:
        raise SystemExit(
            f"demo: `{' '.join(argv)}` failed ({result.returncode})\n{result.stdout or ''}"
        )
    return result.stdout or ""


def wait_for(what: str, check: Callable[[], Any], timeout: float) -> Any:
    return wait_until(what, check, timeout, error=lambda m: SystemExit(f"demo: {m}"), every=0.2)


@dataclass
class Cluster:
    local: LocalCluster

    def kubectl(self, *args: str, stdin: str | None = None) -> str:
        return self.local.kubectl(*args, input_text=stdin)

    def status(self) -> dict[str, Any]:
        return incluster.tryonmodel_status(self.local.kubectl, NAME, NAMESPACE)

    def selector_colour(self) -> str | None:
        svc = json.loads(self.kubectl("get", "service", NAME, "-n", NAMESPACE, "-o", "json"))
        return (svc["spec"].get("selector") or {}).get("tryon.dev/color")


def tryonmodel_manifest(backends: incluster.DevBackends) -> str:
    manifest = incluster.tryonmodel(
        NAME, NAMESPACE, MODEL, backends,
        progressDeadlineSeconds=300, scaleDownDelaySeconds=10, postPromotionSeconds=3,
    )  # fmt: skip
    return json.dumps(manifest)


def shopper_request(cluster_ip: str, data: Path, out: Path, timeout: float = 30) -> str:
    """Sends one held-out pair to the active Service's ClusterIP, as a shop backend would.

    Retries refused connections for a few seconds: kube-proxy programs a flipped Service's
    endpoints a moment after the operator reports the flip.
    """
    import httpx

    person = sorted((data / "test" / "person").iterdir())[0]
    garment = data / "test" / "garment" / person.name
    url = f"http://{cluster_ip}:80/v1/tryon"
    files = {
        "person": (person.name, person.read_bytes(), "image/png"),
        "garment": (garment.name, garment.read_bytes(), "image/png"),
    }
    deadline = time.monotonic() + timeout
    while True:
        try:
            response = httpx.post(url, files=files, timeout=120)
            break
        except httpx.TransportError as err:
            if time.monotonic() > deadline:
                raise SystemExit(f"demo: try-on request to {url} failed: {err}") from err
            time.sleep(0.5)
    if response.status_code != 200:
        raise SystemExit(f"demo: try-on request failed: {response.status_code} {response.text}")
    out.write_bytes(response.content)
    return response.headers.get("X-Model-Version", "?")


def comparison_sheet(data: Path, outputs: list[Path], dest: Path, scale: int = 4) -> None:
    """person | garment | ground truth | each served result, enlarged so it can be looked at."""
    from PIL import Image

    person = sorted((data / "test" / "person").iterdir())[0]
    tiles = [
        Image.open(p).convert("RGB")
        for p in (
            person,
            data / "test" / "garment" / person.name,
            data / "test" / "target" / person.name,
            *outputs,
        )
    ]
    w, h = tiles[0].size
    sheet = Image.new("RGB", (w * scale * len(tiles), h * scale), "white")
    for i, tile in enumerate(tiles):
        sheet.paste(tile.resize((w * scale, h * scale), Image.NEAREST), (i * w * scale, 0))
    sheet.save(dest)


def promote(env: Mapping[str, str], data: Path, version: str, *flags: str) -> None:
    """`tryon-model promote`: the evaluation gate decides unless ``--force`` is among ``flags``."""
    run(
        [
            str(BIN / "tryon-model"),
            "promote",
            "--data",
            str(data),
            "--model",
            MODEL,
            "--version",
            version,
            *flags,
        ],
        env,
    )


def train(version_hint: str, data: Path, env: Mapping[str, str], epochs: int) -> str:
    out = run(
        [
            str(BIN / "tryon-model"),
            "train",
            "--data",
            str(data),
            "--model",
            MODEL,
            "--epochs",
            str(epochs),
            "--run-name",
            f"demo-{version_hint}",
            "--json",
        ],
        env,
        capture=True,
    )
    result = json.loads(out[out.index("{") :])
    version = str(result["version"])
    detail(
        f"v{version}: {result['steps']} steps in {result['train_seconds']} s; validation "
        + ", ".join(f"{k} {v:.4f}" for k, v in result["val_metrics"].items())
    )
    # Test split: the version as the renderer loads it, next to the two baselines.
    table = run(
        [
            *(str(BIN / "tryon-model"), "evaluate", "--data", str(data), "--model", MODEL),
            *("--version", version, "--against", "none"),
        ],
        env,
        capture=True,
    )
    detail(table.rstrip())
    return version


def register_broken(env: Mapping[str, str]) -> str:
    """A model that loads and warms up fine but renders NaN: what a bad fp16 export looks like."""
    os.environ.update(env)
    models = incluster.Models(MODEL, env["MLFLOW_TRACKING_URI"])
    return models.register(failure_mode="nan", seed=None, tags={"demo": "deliberately broken"})


def stop_leftovers(workdir: Path) -> None:
    """Stops what an earlier run (crashed, or --keep) left behind, so this run starts clean."""
    LocalCluster(workdir / "cluster", real_node=True).down()
    pids = workdir / "pids.json"
    if pids.exists():
        for pid in json.loads(pids.read_text()):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
        pids.unlink()
    for sub in ("s3", "mlflow", "data"):
        subprocess.run(["rm", "-rf", str(workdir / sub)], check=True)
        (workdir / sub).mkdir()


def remember_pids(workdir: Path, *pids: int) -> None:
    path = workdir / "pids.json"
    known = json.loads(path.read_text()) if path.exists() else []
    path.write_text(json.dumps([*known, *pids]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--keep", action="store_true", help="leave everything running at the end")
    parser.add_argument("--workdir", type=Path, default=REPO / ".demo")
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args(argv)
    workdir: Path = args.workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    stop_leftovers(workdir)
    timeline = Timeline()

    with contextlib.ExitStack() as stack:
        with timeline.step("start the control plane, kwok GPU nodes and real-node-1 (kubelet)"):
            local = LocalCluster(workdir / "cluster", real_node=True)
            info = local.up()
            if not args.keep:
                stack.callback(local.down)
            cluster = Cluster(local)
            detail(cluster.kubectl("get", "nodes", "-o", "wide"))

        with timeline.step("start S3 (SeaweedFS) and MLflow, published in the cluster by name"):
            backends = incluster.start_dev_backends(workdir, local.kubectl)
            remember_pids(workdir, backends.s3.process.proc.pid, backends.mlflow.process.proc.pid)  # type: ignore[union-attr]
            if not args.keep:
                stack.callback(backends.stop)
            env = dict(backends.mlflow.env)
            detail(
                f"MLflow {backends.tracking_uri_in_cluster} (host: {backends.mlflow.tracking_uri})"
            )
            detail(f"S3     {backends.s3_url_in_cluster} (host: {backends.s3.endpoint_url})")

        with timeline.step("make and validate a synthetic try-on dataset"):
            data = workdir / "data"
            run(
                [
                    str(BIN / "tryon-model"),
                    "data",
                    "make",
                    str(data),
                    "--count",
                    "160",
                    "--overwrite",
                ],
                env,
            )
            run([str(BIN / "tryon-model"), "data", "validate", str(data)], env)

        with timeline.step("train v1, register it and promote it to 'production'"):
            v1 = train("v1", data, env, args.epochs)
            promote(env, data, v1)

        with timeline.step("helm install the operator chart (the operator runs in a pod)"):
            values = incluster.operator_values(backends.tracking_uri_in_cluster)
            incluster.apply(local.kubectl, *incluster.operator_namespace())
            incluster.helm_install_operator(
                incluster.helm_binary(), info.kubeconfig, values, workdir
            )
            incluster.apply(local.kubectl, *incluster.workload_namespace(NAMESPACE, backends.s3))
            detail(cluster.kubectl("get", "pods", "-n", incluster.OPERATOR_NAMESPACE, "-o", "wide"))

        with timeline.step(f"apply TryOnModel {NAMESPACE}/{NAME} and wait until v{v1} serves"):
            wait_for(
                "the demo ServiceAccount", lambda: cluster.kubectl("get", "sa", "-n", NAMESPACE), 30
            )
            cluster.kubectl("apply", "-f", "-", stdin=tryonmodel_manifest(backends))
            wait_for("v1 Healthy", lambda: incluster.serving(cluster.status(), v1), 400)
            detail(cluster.kubectl("get", "tom", "-n", NAMESPACE))

        ip = json.loads(cluster.kubectl("get", "svc", NAME, "-n", NAMESPACE, "-o", "json"))["spec"][
            "clusterIP"
        ]
        with timeline.step(f"a shopper's try-on request to Service {NAME} ({ip}, kube-proxy)"):
            served = shopper_request(ip, data, workdir / "tryon-v1.png")
            detail(f"X-Model-Version: {served}; image saved to {workdir / 'tryon-v1.png'}")

        with timeline.step("train v2 and promote it (evaluation must beat v1)"):
            v2 = train("v2", data, env, args.epochs * 3)
            promote(env, data, v2, "--reason", "demo: retrained with more epochs")
            alias_moved = time.monotonic()

        with timeline.step(f"operator rolls out v{v2} blue/green and flips the Service"):
            before = cluster.selector_colour()
            wait_for("v2 active", lambda: cluster.status().get("activeVersion") == v2, 400)
            timeline.mark("  alias moved -> Service flipped", time.monotonic() - alias_moved)
            detail(f"Service {NAME} selector: {before} -> {cluster.selector_colour()}")
            detail(cluster.kubectl("get", "tom,deploy", "-n", NAMESPACE))
            # The selector is patched; kube-proxy moves the packets a moment later (EndpointSlice
            # update, then its next sync): shoppers still reach the warm v1 pods until then.
            flipped = time.monotonic()
            served = wait_for(
                f"a response from v{v2}",
                lambda: (v := shopper_request(ip, data, workdir / "tryon-v2.png")) == v2 and v,
                60,
            )
            timeline.mark(
                "  Service flipped -> first request served by v2", time.monotonic() - flipped
            )
            detail(f"X-Model-Version after the flip: {served}")

        with timeline.step("register a broken v3 (renders NaN) and force it to 'production'"):
            v3 = register_broken(env)
            promote(env, data, v3, "--force", "--reason", "demo: a bad export reaches production")
            alias_moved = time.monotonic()

        with timeline.step(f"smoke test catches v{v3}: automatic rollback, v{v2} keeps serving"):
            wait_for(
                "v3 rejected", lambda: v3 in (cluster.status().get("rejectedVersions") or []), 400
            )
            timeline.mark("  alias moved -> v3 rejected", time.monotonic() - alias_moved)
            status = cluster.status()
            detail(
                f"phase={status.get('phase')} active=v{status.get('activeVersion')} "
                f"rejected={status.get('rejectedVersions')}"
            )
            for cond in status.get("conditions", []):
                detail(
                    f"{cond['type']}={cond['status']} {cond.get('reason')}: {cond.get('message')}"
                )
            served = shopper_request(ip, data, workdir / "tryon-after-rollback.png")
            detail(f"X-Model-Version after the rollback: {served}")
            detail(
                cluster.kubectl(
                    "get",
                    "events",
                    "-n",
                    NAMESPACE,
                    "--sort-by=.lastTimestamp",
                    "--field-selector",
                    "involvedObject.kind=TryOnModel",
                )
            )

        say("the pods that served: node and containerd container IDs")
        detail(incluster.pods_table(local.kubectl, NAMESPACE))
        sheet = workdir / "tryon-comparison.png"
        comparison_sheet(data, [workdir / "tryon-v1.png", workdir / "tryon-v2.png"], sheet)
        say(f"person | garment | ground truth | v{v1} | v{v2}: open {sheet}")
        say("timeline")
        print(timeline.table(), flush=True)
        if args.keep:
            say("left running; stop with: make demo-down")
            detail(f"export KUBECONFIG={info.kubeconfig}; kubectl get tom -n {NAMESPACE}")
            detail(f"MLFLOW_TRACKING_URI={backends.mlflow.tracking_uri}")
            stack.pop_all()
    return 0


if __name__ == "__main__":
    sys.exit(main())
