"""The operator benchmark behind ``bench/operator_bench.py`` (its entry point and flags):

- ``scenario.py``: the objects, and the harness both controllers share (control plane, watches,
  meters, MLflow + S3, the steady-state and convergence measurements);
- ``ours.py``: tryon-operator's side (TryOnModels, waves by MLflow polling and webhook, rollback);
- ``argo.py``: Argo Rollouts' side (Rollouts, a wave of spec changes, aborts);
- ``report.py``: the printed tables;
- ``cluster_load.py``: the light API client, raw watches and /proc and apiserver meters.

Not ``bench/operator``: run by its path, a script has bench/ on ``sys.path``, where a package of
that name would shadow the standard library's ``operator``.
"""
