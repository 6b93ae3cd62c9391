"""``tryonctl`` / ``kubectl tryon``: status, history and manual control of TryOnModels."""
