"""Suite-wide fixtures: the local control plane and the real MLflow / S3 servers.

Each fixture starts its server lazily, so a unit-only run (`-m unit`) starts nothing.
"""

pytest_plugins = ["tests.support.cluster", "tests.support.servers"]
