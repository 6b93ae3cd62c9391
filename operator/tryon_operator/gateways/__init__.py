"""Edges of the operator: Kubernetes, the MLflow registry and the renderer's smoke endpoint.

Each gateway turns its client's errors into the domain errors in ``errors.py``.
"""
