"""Model lifecycle for ML engineers: synthetic data, training, evaluation, registry and promotion."""
