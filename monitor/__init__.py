"""monitor: a live ops console for agentic developer workflow (ADW) systems."""

__version__ = "0.1.0"
