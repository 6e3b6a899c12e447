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

    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    # Lightning gives its loggers INFO and a handler of its own when it is imported, which happens
    # later (and only for commands that train): nothing below WARNING is emitted, wherever it is set,
    # without importing Lightning here, so a command's argument errors come before it loads.
    logging.disable(logging.NOTSET if verbose else logging.INFO)
    if verbose:
        return
    warnings.filterwarnings("ignore", message=".*(LeafSpec|does not have many workers|litlogger|litmodels|exists and is not empty).*")
