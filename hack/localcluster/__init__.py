"""A real, local Kubernetes control plane, the real node and the dev servers beside it.

Standard library only (the host's ``python3`` runs it before any package is installed):

    python3 -m hack.localcluster.cluster up [--state-dir .cluster] [--real-node]
    python3 -m hack.localcluster.keda smoke [--real-node]
    python3 hack/localcluster/registry.py up   # no package imports: runs as a file too
"""
