"""Hermes Cache operator: reconciles HermesCachePolicy objects into cache-aware vLLM deployments."""

__version__ = "0.1.0"
