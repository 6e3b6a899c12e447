"""`facebench drift`: run the `ci` profile of every model on the tiny synthetic corpus, on the CPU
and deterministically, with kernels that give the same floats on every x86-64 CPU with AVX2 of
one vendor (`facebench.environment.PORTABLE_KERNELS`, oneDNN off), and compare each metric with
`leaderboards/ci/reference.csv` under the per-metric tolerances of `benchmarks/drift.yaml`. The
reference records the environment it was made in (torch, CPU, threads, kernels), shown beside the
current one when something drifts.

The reference holds one set of rows per CPU vendor (`vendor`, `environment.cpu_vendor`): MKL keeps
its reproducible AVX2 code path on Intel CPUs only and takes its automatic one elsewhere, and over
a `ci` run's training that alone moved CodeTalker's, DualTalker's, EmoFace's and GLDiTalker's
metrics by up to 40% between an AMD EPYC and an Intel Xeon (README, "Drift check"). A run is
compared with its own vendor's rows; `--update` replaces only those."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pandas as pd
from filelock import FileLock

from facebench.bench.config import benchmarks_dir, resolve_models
from facebench.bench.leaderboard import ENVIRONMENT, METRICS, read_rows, write_table
from facebench.environment import cpu_vendor
from facebench.errors import FacebenchError
from facebench.yamlio import read_yaml

DATASET, PROFILE, SEED = "synth-tiny", "ci", 0
KEY = ["model", "variant", "split"]
VENDOR = "vendor"


def current_metrics(models: str = "all", progress: bool = False) -> pd.DataFrame:
    from facebench.bench.runner import run_one

    rows = []
    with tempfile.TemporaryDirectory() as runs:
        for spec in resolve_models(models, DATASET):  # each model as it is; ablation variants are not checked
            rows += run_one(spec, DATASET, PROFILE, SEED, leaderboards=None, runs=Path(runs), progress=progress)
    table = pd.DataFrame(rows)
    return table[KEY + [m for m in METRICS if m in table] + ENVIRONMENT].assign(**{VENDOR: cpu_vendor()})


def environments(table: pd.DataFrame) -> str:
    """The distinct environments of a table's rows, one line each."""
    present = [c for c in ENVIRONMENT if c in table]
    if not present:
        return "not recorded"
    return "; ".join(", ".join(f"{c}={row[c]}" for c in present) for _, row in table[present].drop_duplicates().iterrows())


def load_tolerances(path: Path | None = None) -> dict[str, dict[str, float]]:
    raw = read_yaml((path or benchmarks_dir() / "drift.yaml").read_text())
    default = raw.get("default", {"rtol": 0.0, "atol": 0.0})
    return {m: {**default, **raw.get("metrics", {}).get(m, {})} for m in METRICS}


def compare(current: pd.DataFrame, reference: pd.DataFrame, tolerances: dict[str, dict[str, float]]) -> list[dict]:
    """Every metric outside its tolerance, and every row present on one side only."""
    key = lambda frame: frame.assign(variant=frame["variant"].fillna("")).set_index(KEY)  # noqa: E731
    cur, ref = key(current), key(reference)
    drifted = []
    for index in cur.index.union(ref.index):
        if index not in ref.index or index not in cur.index:
            drifted.append({**dict(zip(KEY, index)), "metric": "*", "reference": "missing" if index not in ref.index else "present",
                            "current": "missing" if index not in cur.index else "present", "difference": ""})  # fmt: skip
            continue
        for metric, tol in tolerances.items():
            if metric not in cur.columns or metric not in ref.columns:
                continue
            a, b = cur.at[index, metric], ref.at[index, metric]
            if pd.isna(a) and pd.isna(b):
                continue
            if pd.isna(a) or pd.isna(b) or abs(a - b) > tol["atol"] + tol["rtol"] * abs(b):
                drifted.append({**dict(zip(KEY, index)), "metric": metric, "reference": b, "current": a,
                                "difference": (a - b) / abs(b) if b and not pd.isna(a) else float("nan")})  # fmt: skip
    return drifted


def vendor_rows(reference: pd.DataFrame, models: pd.Series | None = None, vendor: str | None = None) -> pd.DataFrame:
    """The reference rows made on this machine's CPU vendor (or `vendor`'s), of `models` if given.
    A model with no rows for the vendor is one error naming it and the command that makes them."""
    vendor = vendor or cpu_vendor()
    rows = reference[reference[VENDOR] == vendor] if VENDOR in reference else reference.iloc[:0]
    wanted = sorted(set(reference["model"] if models is None else models))
    lacking = [m for m in wanted if m not in set(rows["model"])]
    if lacking:
        made = sorted(set(reference[VENDOR])) if VENDOR in reference else []
        raise FacebenchError(f"drift reference: expected rows made on a {vendor} CPU for {', '.join(lacking)} (MKL's reproducible "
                             f"branch differs between CPU vendors), found rows for {', '.join(made) or 'no vendor'} only; "
                             f"make them on this machine with `facebench drift --update --models <model>` for each")  # fmt: skip
    return rows if models is None else rows[rows["model"].isin(models)]


def drift_from_reference(current: pd.DataFrame, reference: pd.DataFrame, all_models: bool = True) -> list[dict]:
    """`compare` with this CPU vendor's reference rows under `benchmarks/drift.yaml`; with
    `all_models` False, only the rows of the models in `current` (a run of some models does not
    miss the others)."""
    reference = vendor_rows(reference, None if all_models else current["model"])
    return compare(current, reference, load_tolerances())


def update_reference(current: pd.DataFrame, path: Path, all_models: bool = True) -> pd.DataFrame:
    """The reference with `current`'s rows for its CPU vendor: with `all_models`, all of that
    vendor's rows are replaced; otherwise only those of the models in `current` (`drift --update
    --models X` never drops Y's). Other vendors' rows are kept. Written whole or not at all, under
    the file's lock."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path) + ".lock"):
        table = current
        if path.is_file():
            existing = read_rows(path)
            replaced = existing[VENDOR].isin(current[VENDOR]) if VENDOR in existing else pd.Series(True, index=existing.index)
            if not all_models:
                replaced &= existing["model"].isin(current["model"])
            table = pd.concat([existing[~replaced], current], ignore_index=True)
        write_table(path, table)
    return table
