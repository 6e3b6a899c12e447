"""Terminal output shared by the commands: one rich console and the metric table."""

from __future__ import annotations

import sys

from rich.console import Console
from rich.table import Table

# Logs and CI captures are not terminals: give tables room instead of rich's 80-column default.
console = Console(width=None if sys.stdout.isatty() else 160)


def metric_table(title: str, rows: list[dict], columns: list[str]) -> Table:
    table = Table(title=title)
    for column in columns:
        table.add_column(column, justify="right" if column not in ("model", "split", "variant") else "left")
    for row in rows:
        table.add_row(*[format_value(row.get(c)) for c in columns])
    return table


def format_value(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)


def configure_logging(verbose: bool = False) -> None:
    """Warnings and debug messages only when asked for: Lightning's device and tip messages say
    nothing a benchmark user needs. Runs in every process a command starts."""
    import logging
    import warnings

    root = logging.getLogger()
    before = list(root.handlers)
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if verbose:
        return
    # Lightning sets its loggers to INFO when it is imported (later, and only by commands that train):
    # their records propagate to the handler made here, which keeps warnings only. Lightning is not
    # imported for this, so a command's argument errors come before the training stack loads.
    for handler in root.handlers:
        if handler not in before:
            handler.setLevel(logging.WARNING)
    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):  # where it was imported already
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*(LeafSpec|does not have many workers|litlogger|litmodels|exists and is not empty).*")
