"""Benchmark configuration from `benchmarks/`: one YAML per model (LightningCLI-style
`class_path`/`init_args`, aliases, variants, overrides by profile and dataset) and one per profile
(trainer and datamodule arguments). The resolved config is saved with every run and hashed into
its leaderboard rows.

A resolved config has the sections `model`, `trainer` (every stage's default), `data`,
`stages` (per stage name: its own `trainer`, `data`, `lr` and `lr_schedule`, over the defaults), `lr_schedule`
(every stage's default: `constant` or `cosine`, see `bench/schedule.py`), `evaluation`
(`samples`: generations per clip of a stochastic model, `seed`: the first sample's seed) and,
optionally, `compile` (torch.compile the model's networks: `true` or a mapping of its keywords,
see `compile_options`)."""

from __future__ import annotations

import copy
import hashlib
import json
import os
from dataclasses import dataclass
from fnmatch import fnmatch
from pathlib import Path

from facebench.errors import FacebenchError
from facebench.yamlio import read_yaml

PROFILES = ("ci", "quick", "full")
LR_SCHEDULES = ("constant", "cosine")  # `lr_schedule`: bench/schedule.py
COMPILE_KEYWORDS = ("backend", "mode", "dynamic", "fullgraph")  # torch.compile's, as `compile` may set them


def benchmarks_dir() -> Path:
    """$FACEBENCH_BENCHMARKS, else the repository's benchmarks/ (editable install), else ./benchmarks."""
    if "FACEBENCH_BENCHMARKS" in os.environ:
        return Path(os.environ["FACEBENCH_BENCHMARKS"])
    repo = Path(__file__).resolve().parents[3] / "benchmarks"
    return repo if repo.is_dir() else Path("benchmarks")


def deep_merge(base: dict, update: dict) -> dict:
    merged = copy.deepcopy(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


@dataclass(frozen=True)
class ModelSpec:
    name: str
    raw: dict

    @property
    def aliases(self) -> list[str]:
        return list(self.raw.get("aliases", []))

    @property
    def variants(self) -> list[str]:
        return ["", *self.raw.get("variants", {})]

    def variant_settings(self, variant: str, within: tuple[str, ...] = ()) -> dict:
        """A variant's settings. A composition, `a+b` on the command line or a YAML list of names,
        merges the named variants in order, each over the one before; `<base>.<name>` names a
        variant of the model this one `extends`. The one check of variant names, also for the
        command line's `--variants`."""
        known = {**self.raw.get("variants", {}), **self.raw.get("base_variants", {})}
        merged: dict = {}
        for name in variant.split("+"):
            if name not in known or name in within:
                why = "it contains itself" if name in within else f"expected one of {', '.join(known)}"
                raise FacebenchError(f"model {self.name}: variant '{name}' (in '{variant}'): {why}")
            settings = known[name]
            if isinstance(settings, list):
                settings = self.variant_settings("+".join(settings), (*within, name))
            merged = deep_merge(merged, settings)
        return merged

    def applies_to(self, dataset: str) -> bool:
        return not self.why_not(dataset)

    def why_not(self, dataset: str) -> str:
        """Why the model cannot run on a dataset ("" where it can): a synthetic-only anchor on real
        data, or a dataset of a modality the model does not generate."""
        if self.raw.get("synthetic_only") and not dataset_name(dataset).startswith("synth"):
            return f"model '{self.name}' runs on synthetic corpora only, not on '{dataset}'"
        modality = dataset_modality(dataset)  # an unknown dataset is an error before the training stack is imported
        module_name, class_name = self.raw["model"]["class_path"].rsplit(".", 1)
        modalities = getattr(__import__(module_name, fromlist=[class_name]), class_name).modalities
        if modality not in modalities:
            return f"model '{self.name}' generates {' or '.join(modalities)}, but dataset {dataset_name(dataset)} is {modality}"
        return ""

    def official_code(self, profile: str, variant: str = "") -> bool:
        """True where the profile runs the paper's published code and setup (`official_profiles`),
        never for an ablation variant."""
        return bool(self.raw.get("official_code")) and profile in self.raw.get("official_profiles", []) and not variant

    def resolve(self, dataset: str, profile: str, variant: str = "") -> dict:
        """Model section (and the model's `stages`/`evaluation` settings) after the profile/dataset
        overrides and the variant, in that order. `dataset` patterns match the dataset's name."""
        dataset = dataset_name(dataset)
        resolved = {k: copy.deepcopy(self.raw[k]) for k in ("model", "stages", "evaluation") if k in self.raw}
        for override in self.raw.get("overrides", []):
            # `dataset` may be a pattern: "synth*" matches every synthetic corpus.
            if override.get("profile", profile) == profile and fnmatch(dataset, override.get("dataset", dataset)):
                resolved = deep_merge(resolved, {k: v for k, v in override.items() if k not in ("profile", "dataset")})
        if variant:
            resolved = deep_merge(resolved, self.variant_settings(variant))
        return resolved


INHERITED = ("model", "overrides")  # what `extends: <model>` takes from the base model's config


def inherit(raw: dict, raws: dict[str, dict]) -> dict:
    """A model config that `extends` another: the base's model section merged under its own, the
    base's overrides before its own (so its own win). The base's variants are not this model's
    variants, but its own variants can compose them by `<base>.<name>` (kept as `base_variants`,
    each already resolved in the base's own names)."""
    if "extends" not in raw:
        return raw
    base = ModelSpec(raw["extends"], inherit(raws[raw["extends"]], raws))
    merged = {k: v for k, v in raw.items() if k != "extends"}
    merged["model"] = deep_merge(base.raw["model"], raw.get("model", {}))
    merged["overrides"] = base.raw.get("overrides", []) + raw.get("overrides", [])
    merged["base_variants"] = {f"{base.name}.{name}": base.variant_settings(name) for name in base.variants if name}
    return merged


def model_specs() -> dict[str, ModelSpec]:
    folder = benchmarks_dir() / "models"
    raws = {}
    for path in sorted(folder.glob("*.yaml")):
        raw = read_yaml(path.read_text())
        raws[raw["name"]] = raw
    specs = {name: ModelSpec(name, inherit(raw, raws)) for name, raw in raws.items()}
    if not specs:
        raise FacebenchError(f"{folder}: expected model configs (*.yaml), found none")
    return specs


def resolve_models(name: str, dataset: str) -> list[ModelSpec]:
    """A model by name or alias, or `all` (every model that applies to the dataset)."""
    specs = model_specs()
    if name == "all":
        return [s for s in specs.values() if s.applies_to(dataset)]
    for spec in specs.values():
        if name == spec.name or name in spec.aliases:
            if spec.why_not(dataset):
                raise FacebenchError(spec.why_not(dataset))
            return [spec]
    known = ", ".join(f"{s.name} ({', '.join(s.aliases)})" if s.aliases else s.name for s in specs.values())
    raise FacebenchError(f"model '{name}': expected one of {known}, or all")


def load_profile(profile: str) -> dict:
    path = benchmarks_dir() / "profiles" / f"{profile}.yaml"
    if not path.is_file():
        raise FacebenchError(f"profile '{profile}': expected one of {', '.join(PROFILES)} ({path} not found)")
    return read_yaml(path.read_text())


def dataset_modality(dataset: str) -> str:
    """What a dataset's clips are: "mesh" or "video" (its preset's `modality`)."""
    import facebench.data.synth  # noqa: F401  (registers the synthetic presets)
    from facebench.data.presets import get_preset

    return get_preset(dataset).modality


def dataset_name(dataset: str) -> str:
    """The name of a dataset given by preset name or folder (its facebench.yaml's `name`)."""
    import facebench.data.synth  # noqa: F401  (registers the synthetic presets)
    from facebench.data.presets import get_preset

    return get_preset(dataset).name


def resolve(spec: ModelSpec, dataset: str, profile: str, seed: int, variant: str = "", overrides: dict | None = None) -> dict:
    """The whole run config: model, trainer, data, stages, evaluation, threads, identity; then the
    command line's `overrides`. `dataset` is kept as given (a folder stays a folder, to read it
    again); `dataset_name` is its name."""
    config = deep_merge({"stages": {}, "evaluation": {"samples": 1, "seed": 0}, **load_profile(profile)}, spec.resolve(dataset, profile, variant))
    config = deep_merge(config, overrides or {})
    # The command line's trainer and data settings (`--max-epochs`, `--precision`, `--batch-size`)
    # are every stage's: a stage's own, merged over the run's in `fit_stages`, must not undo them.
    command_line = {section: (overrides or {}).get(section, {}) for section in ("trainer", "data")}
    for settings in config["stages"].values():
        settings.update({section: deep_merge(settings[section], given) for section, given in command_line.items() if section in settings})
    config.update(model_name=spec.name, variant=variant, dataset=dataset, dataset_name=dataset_name(dataset), profile=profile, seed=seed)
    check_schedules(config)
    compile_options(config)
    return config


def compile_options(config: dict) -> dict | None:
    """The run's `compile` as torch.compile's keyword arguments: None where it is off (absent or
    false), {} for `true` (torch's defaults: the inductor backend), else the mapping given; anything
    else is an error naming the key, before any data or model is built."""
    value = config.get("compile", False)
    if value is False or value is None:
        return None
    if value is True:
        return {}
    if isinstance(value, dict) and set(value) <= set(COMPILE_KEYWORDS):
        return dict(value)
    raise FacebenchError(f"compile: expected true, false or a mapping of {', '.join(COMPILE_KEYWORDS)}, found {value!r}")


def check_schedules(config: dict) -> None:
    """Every `lr_schedule` a config names (the run's default and each stage's) is a known one: an
    error here, with the key, before any data or model is built."""
    named = {"lr_schedule": config.get("lr_schedule", "constant")}
    named.update({f"stages.{stage}.lr_schedule": settings["lr_schedule"] for stage, settings in config["stages"].items() if "lr_schedule" in settings})
    for key, name in named.items():
        if name not in LR_SCHEDULES:
            raise FacebenchError(f"{key}: expected one of {', '.join(LR_SCHEDULES)}, found {name!r}")


def config_hash(config: dict) -> str:
    """Hash of everything but the seed, where the dataset lies, the thread count and whether clips
    are rendered, so seeds of one config group together, also across machines (the threads are an
    environment column; rendering is not an experiment setting)."""
    stripped = {k: v for k, v in config.items() if k not in ("seed", "dataset", "threads", "render_clips")}
    return hashlib.sha256(json.dumps(stripped, sort_keys=True).encode()).hexdigest()[:12]
