"""Models: one folder each (network.py, module.py, CARD.md), shared parts in components/."""
