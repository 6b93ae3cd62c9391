"""The local control plane behaves like a real cluster where the operator depends on it."""

from __future__ import annotations

import pytest
from kubernetes import client

from tests.support.cluster import KubeCluster, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def _pod(name: str, *, gpus: int = 0, labels: dict[str, str] | None = None) -> client.V1Pod:
    limits = {"nvidia.com/gpu": str(gpus)} if gpus else None
    return client.V1Pod(
        metadata=client.V1ObjectMeta(name=name, labels={"app": name, **(labels or {})}),
        spec=client.V1PodSpec(
            containers=[
                client.V1Container(
                    name="main",
                    image="example.invalid/renderer:1",
                    resources=client.V1ResourceRequirements(limits=limits),
                )
            ]
        ),
    )


def _condition(pod: client.V1Pod, kind: str) -> client.V1PodCondition | None:
    return next((c for c in (pod.status.conditions or []) if c.type == kind), None)


def _is_ready(pod: client.V1Pod) -> bool:
    ready = _condition(pod, "Ready")
    return ready is not None and ready.status == "True"


def test_nodes_include_two_gpu_nodes_and_one_cpu_node(kube_cluster: KubeCluster) -> None:
    nodes = kube_cluster.get_json("nodes")["items"]
    gpus = {n["metadata"]["name"]: n["status"]["allocatable"].get("nvidia.com/gpu") for n in nodes}
    assert gpus == {"gpu-node-1": "4", "gpu-node-2": "4", "cpu-node-1": None}
    for node in nodes:
        ready = [c for c in node["status"]["conditions"] if c["type"] == "Ready"]
        assert ready and ready[0]["status"] == "True"


def test_gpu_deployment_schedules_on_gpu_nodes_and_becomes_ready(
    kube_api: client.ApiClient, namespace: str
) -> None:
    apps = client.AppsV1Api(kube_api)
    core = client.CoreV1Api(kube_api)
    template = _pod("gpu-app", gpus=1)
    apps.create_namespaced_deployment(
        namespace,
        client.V1Deployment(
            metadata=client.V1ObjectMeta(name="gpu-app"),
            spec=client.V1DeploymentSpec(
                replicas=3,
                selector=client.V1LabelSelector(match_labels={"app": "gpu-app"}),
                template=client.V1PodTemplateSpec(metadata=template.metadata, spec=template.spec),
            ),
        ),
    )

    def rolled_out() -> bool:
        status = apps.read_namespaced_deployment_status("gpu-app", namespace).status
        return status.ready_replicas == 3 and status.updated_replicas == 3

    wait_for(rolled_out, 60, "gpu-app to have 3 ready replicas")
    pods = core.list_namespaced_pod(namespace, label_selector="app=gpu-app").items
    assert {p.spec.node_name for p in pods} <= {"gpu-node-1", "gpu-node-2"}
    assert all(_is_ready(p) for p in pods)


def test_pod_asking_for_more_gpus_than_any_node_stays_unschedulable(
    kube_api: client.ApiClient, namespace: str
) -> None:
    core = client.CoreV1Api(kube_api)
    core.create_namespaced_pod(namespace, _pod("greedy", gpus=5))

    def unschedulable() -> client.V1PodCondition | None:
        cond = _condition(core.read_namespaced_pod("greedy", namespace), "PodScheduled")
        return cond if cond is not None and cond.reason == "Unschedulable" else None

    cond = wait_for(unschedulable, 30, "greedy to be marked Unschedulable")
    assert "nvidia.com/gpu" in cond.message
    pod = core.read_namespaced_pod("greedy", namespace)
    assert pod.status.phase == "Pending" and pod.spec.node_name is None


def test_service_endpoint_slices_list_only_ready_pods(
    kube_api: client.ApiClient, namespace: str
) -> None:
    core = client.CoreV1Api(kube_api)
    discovery = client.DiscoveryV1Api(kube_api)
    core.create_namespaced_pod(namespace, _pod("good", labels={"tier": "web"}))
    core.create_namespaced_pod(
        namespace, _pod("bad", labels={"tier": "web", "sim.tryon.dev/fault": "never-ready"})
    )
    core.create_namespaced_service(
        namespace,
        client.V1Service(
            metadata=client.V1ObjectMeta(name="web"),
            spec=client.V1ServiceSpec(
                selector={"tier": "web"}, ports=[client.V1ServicePort(port=80, target_port=8080)]
            ),
        ),
    )

    def endpoints_by_pod() -> dict[str, bool] | None:
        slices = discovery.list_namespaced_endpoint_slice(
            namespace, label_selector="kubernetes.io/service-name=web"
        ).items
        found = {
            e.target_ref.name: bool(e.conditions.ready) for s in slices for e in (s.endpoints or [])
        }
        return found if len(found) == 2 else None

    assert wait_for(endpoints_by_pod, 30, "EndpointSlice entries for both pods") == {
        "good": True,
        "bad": False,
    }


def test_deleting_an_owner_garbage_collects_what_it_owns(
    kube_api: client.ApiClient, namespace: str
) -> None:
    core = client.CoreV1Api(kube_api)
    owner = core.create_namespaced_config_map(
        namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="owner"))
    )
    ref = client.V1OwnerReference(
        api_version="v1", kind="ConfigMap", name="owner", uid=owner.metadata.uid
    )
    core.create_namespaced_config_map(
        namespace,
        client.V1ConfigMap(metadata=client.V1ObjectMeta(name="owned", owner_references=[ref])),
    )
    core.delete_namespaced_config_map("owner", namespace)

    def owned_gone() -> bool:
        names = {c.metadata.name for c in core.list_namespaced_config_map(namespace).items}
        return "owned" not in names

    wait_for(owned_gone, 60, "the garbage collector to delete the owned ConfigMap")


def test_never_ready_fault_keeps_a_running_pod_unready(
    kube_api: client.ApiClient, namespace: str
) -> None:
    core = client.CoreV1Api(kube_api)
    core.create_namespaced_pod(
        namespace, _pod("stuck", labels={"sim.tryon.dev/fault": "never-ready"})
    )
    wait_for(
        lambda: core.read_namespaced_pod("stuck", namespace).status.phase == "Running",
        30,
        "stuck to be Running",
    )
    # Ready is decided by the same stage that made it Running; it must stay False from then on.
    pod = core.read_namespaced_pod("stuck", namespace)
    assert not _is_ready(pod)
    assert pod.status.container_statuses[0].ready is False


def test_crashloop_fault_restarts_the_container_again_and_again(
    kube_api: client.ApiClient, namespace: str
) -> None:
    core = client.CoreV1Api(kube_api)
    core.create_namespaced_pod(
        namespace, _pod("crashy", labels={"sim.tryon.dev/fault": "crashloop"})
    )

    def restarts() -> int:
        statuses = core.read_namespaced_pod("crashy", namespace).status.container_statuses or []
        return statuses[0].restart_count if statuses else 0

    wait_for(lambda: restarts() >= 2, 30, "crashy to restart at least twice")
    status = core.read_namespaced_pod("crashy", namespace).status
    assert status.container_statuses[0].state.waiting.reason == "CrashLoopBackOff"
    assert not _is_ready(core.read_namespaced_pod("crashy", namespace))


def test_ready_delay_annotation_postpones_readiness(
    kube_api: client.ApiClient, namespace: str
) -> None:
    core = client.CoreV1Api(kube_api)
    pod = _pod("slow")
    pod.metadata.annotations = {"sim.tryon.dev/ready-delay": "1500ms"}
    core.create_namespaced_pod(namespace, pod)
    wait_for(lambda: core.read_namespaced_pod("slow", namespace).spec.node_name, 20, "scheduling")
    assert not _is_ready(core.read_namespaced_pod("slow", namespace))
    wait_for(lambda: _is_ready(core.read_namespaced_pod("slow", namespace)), 20, "slow to be Ready")
