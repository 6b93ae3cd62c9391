"""FastAPI + PyTorch server for virtual try-on models."""
