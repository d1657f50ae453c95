"""Experiment tracking with MLflow (imported lazily by the app)."""
