"""Kubernetes operator that ships try-on models from MLflow as blue/green deployments."""
