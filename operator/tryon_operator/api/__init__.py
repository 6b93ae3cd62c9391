"""The TryOnModel contract: its vocabulary, models, the objects built from it, errors."""
