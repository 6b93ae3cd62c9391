"""Developer tooling: the local control plane (``hack.localcluster``), the demo, the doctor.

Run from the repository root, e.g. ``python3 -m hack.localcluster.cluster up``.
"""
