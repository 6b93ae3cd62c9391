"""Suite-wide fixtures: the local control plane and the real MLflow / S3 servers.

Each fixture starts its server lazily, so a unit-only run (`-m unit`) starts nothing. The
end-to-end suite on real pods (tests/e2e) needs root, real-node-1 and built images, so it is
collected only by `make e2e` (TRYON_E2E=1), never by `make test`.
"""

import os

pytest_plugins = ["tests.support.cluster", "tests.support.servers"]

collect_ignore = [] if os.environ.get("TRYON_E2E") == "1" else ["e2e"]
