"""YAML as facebench reads it (model configs, profiles, dataset presets, `--set` values, saved run
configs): PyYAML's safe loader, which follows YAML 1.1, with YAML 1.2's floats added, so that `1e-3`
and `1e6` are numbers, as JSON and YAML 1.2 read them, and not text that fails deep inside a run
(`--set model.init_args.lr=1e-3` gave the model the string '1e-3')."""

from __future__ import annotations

import re
from typing import Any

import yaml


class FacebenchLoader(yaml.SafeLoader):
    pass


# A copy of the safe loader's resolvers (PyYAML's own `add_implicit_resolver` would append to the
# lists it shares with `yaml.SafeLoader`, changing it for every other user in the process).
FacebenchLoader.yaml_implicit_resolvers = {first: list(rules) for first, rules in yaml.SafeLoader.yaml_implicit_resolvers.items()}
EXPONENT_FLOAT = re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$")
for first in "-+0123456789.":
    FacebenchLoader.yaml_implicit_resolvers.setdefault(first, []).append(("tag:yaml.org,2002:float", EXPONENT_FLOAT))


def read_yaml(text: str) -> Any:
    """`text` parsed as YAML, exponent floats (`1e-3`) as numbers."""
    return yaml.load(text, Loader=FacebenchLoader)  # noqa: S506 (a SafeLoader subclass)
