"""Model lifecycle for ML engineers: data, training, evaluation, registry and promotion."""
