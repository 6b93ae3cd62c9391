"""Suite-wide fixtures: the local control plane and the real MLflow / S3 servers.

Each fixture starts its server lazily, so a unit-only run (`-m unit`) starts nothing.
"""

import importlib.util

pytest_plugins = ["tests.support.cluster"]
if importlib.util.find_spec("tests.support.servers") is not None:
    pytest_plugins.append("tests.support.servers")
