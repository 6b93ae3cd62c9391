"""Shared test support: real S3 (seaweedfs) and MLflow servers as pytest fixtures."""
