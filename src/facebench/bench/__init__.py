"""The bench pipeline: resolved configs, runs (fit stages, test, cost), leaderboards and drift."""
