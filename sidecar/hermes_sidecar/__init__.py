"""Hermes Cache sidecar: semantic response cache and prompt-cache proxy in front of vLLM or Anthropic."""

__version__ = "0.1.0"
