"""The one place that finds Kubernetes credentials: the operator, its elector process and
``tryonctl`` differ only in which source they try first."""

from __future__ import annotations

from kubernetes import client, config
from kubernetes.config.config_exception import ConfigException

from ..api.vocabulary import MANAGER


def make_api_client(
    kubeconfig: str | None = None,
    *,
    context: str | None = None,
    in_cluster_first: bool = True,
    pool_size: int | None = 10,
    user_agent: str | None = MANAGER,
) -> client.ApiClient:
    """A named ``kubeconfig`` or ``context`` is used alone. Otherwise in-cluster credentials and
    the default kubeconfig (``KUBECONFIG``, else ~/.kube/config) are both tried: in-cluster first
    for the operator, which runs in a pod; the kubeconfig first (``in_cluster_first=False``) for
    ``tryonctl``, which, like kubectl, runs from a person's shell. Raises ``ConfigException``
    when neither works.

    ``pool_size`` connections per host: one per thread that may call the API at once, else
    urllib3 drops and re-opens connections ("Connection pool is full") under load.
    ``user_agent`` names the replica in the API server's audit log (``tryon-operator/<pod>``).
    None leaves the client library's default for either.
    """
    cfg = client.Configuration()

    def from_kubeconfig() -> None:
        config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=kubeconfig, context=context, client_configuration=cfg
        )

    def in_cluster() -> None:
        config.load_incluster_config(client_configuration=cfg)  # type: ignore[no-untyped-call]

    if kubeconfig or context:
        from_kubeconfig()
    else:
        first, then = (
            (in_cluster, from_kubeconfig) if in_cluster_first else (from_kubeconfig, in_cluster)
        )
        try:
            first()
        except ConfigException:
            then()
    if pool_size is not None:
        cfg.connection_pool_maxsize = pool_size
    api_client = client.ApiClient(cfg)
    if user_agent is not None:
        api_client.user_agent = user_agent
    return api_client
