"""facebench: an open benchmark suite for speech-driven facial animation."""

__version__ = "0.1.0"
