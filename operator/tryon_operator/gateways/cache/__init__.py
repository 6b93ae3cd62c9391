"""Watch-backed reads: the operator's own informers keep the children in memory, so a reconcile
reads nothing from the API server unless freshness demands it (``kube.CachedKube``)."""
