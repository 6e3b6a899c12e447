"""Leaderboard CSVs: appends that are atomic and locked, so runs that are interrupted or run at the
same time never lose or corrupt a row; and their rendering as tables and charts."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from filelock import FileLock

from facebench.data.sequence import CONDITION_NAMES, GROUND_TRUTH_CONDITIONS
from facebench.storage import write_atomically

# What each column means and how it is measured: README, "Leaderboard rows".
IDENTITY = ["model", "variant", "dataset", "split", "profile", "seed", "git_sha", "date"]
METRICS = ["lve", "fdd", "fdd_abs", "mve", "eve", "diversity", "sample_diversity", "per", "per_gt", "emotion_accuracy",
           "psnr", "ssim", "psnr_skin", "psnr_hair", "lpips", "lpips_skin", "lpips_hair", "fid", "lmd", "mouth_iou", "miou", "lse_d", "lse_c", "lse_clips",
           "mask_frames", "frames_dropped",
           "clips"]  # fmt: skip
COST = ["params", "trainable_params", "train_time_s", "train_frames_per_s", "rtf", "rtf_clips", "peak_memory_mb", "device", "processes",
        "precision", "compile"]  # fmt: skip
ENVIRONMENT = ["torch", "cpu", "gpu", "threads", "kernels"]
PROVENANCE = ["protocol", "inputs", "samples", "config_hash", "checkpoint", "region_set", "per_reader", "sync_judge", "lpips_net", "fid_net",
              "lmd_judge",
              "audio_encoder",
              "official_code", "run_dir"]  # fmt: skip
COLUMNS = IDENTITY + METRICS + COST + ENVIRONMENT + PROVENANCE


def leaderboard_path(folder: str | Path, dataset: str) -> Path:
    return Path(folder) / f"{dataset}.csv"


def read_rows(path: str | Path, as_text: bool = False) -> pd.DataFrame:
    """A board's rows (an empty table with every column where there is no file yet); `as_text`
    keeps every cell as written, to write the rows back unchanged."""
    path = Path(path)
    if not path.is_file():
        return pd.DataFrame(columns=COLUMNS)
    if as_text:
        return pd.read_csv(path, dtype=str, keep_default_na=False)
    return pd.read_csv(path, keep_default_na=False, na_values=[""])


def append_rows(path: str | Path, rows: list[dict]) -> None:
    """Append under a lock: read, add, write the whole table again atomically. The rows already
    there are read as text, so they are written back byte for byte (type inference would turn an
    integer column that is empty in some rows into floats: `1` written again as `1.0`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path) + ".lock"):
        existing = read_rows(path, as_text=True)
        new = pd.DataFrame(rows)
        extra = [c for c in list(existing.columns) + list(new.columns) if c not in COLUMNS]
        columns = COLUMNS + list(dict.fromkeys(extra))
        frames = [f for f in (existing, new) if len(f)]
        table = pd.concat(frames, ignore_index=True) if frames else new
        write_table(path, table.reindex(columns=columns))


def write_table(path: Path, table: pd.DataFrame) -> None:
    """The whole CSV or nothing (`storage.write_atomically`); the caller holds the file's lock."""
    write_atomically(path, lambda f: f.write(table.to_csv(index=False).encode()))


# -- rendering ----------------------------------------------------------------------------------

ANCHORS = ("template", "protocol_oracle", "oracle", "ground_truth", "ground_truth_offset")
# Shown but never ranked: signed FDD compares how much the face moves, and adding noise to a
# prediction moves it toward 0 without predicting anything (measured: README, "Leaderboards").
UNRANKED = ("fdd",)
GROUP = ["model", "variant", "profile", "config_hash", "environment"]
SHOWN = ["lve", "fdd", "mve", "eve", "diversity", "sample_diversity", "per", "emotion_accuracy", "psnr", "ssim", "psnr_skin", "psnr_hair",
         "lpips", "lpips_skin", "lpips_hair", "fid", "lmd", "mouth_iou", "miou", "lse_d", "lse_c"]  # fmt: skip
HIGHER_IS_BETTER = ("diversity", "sample_diversity", "emotion_accuracy", "psnr", "ssim", "psnr_skin", "psnr_hair", "mouth_iou", "miou", "lse_c")
# Skill, per modality: (metric, the anchor that is its ceiling). Mesh: LVE against the protocol
# oracle; video: PSNR against the oracle (the deterministic part rendered with the clip's pose).
SKILL = (("lve", "protocol_oracle"), ("psnr", "oracle"))


def headline(rows: pd.DataFrame) -> str:
    """The metric a dataset's chart shows: LVE for meshes, PSNR for video."""
    return "lve" if "lve" in rows and rows["lve"].notna().any() else "psnr"


def display_scale(dataset: str) -> dict[str, float]:
    import facebench.data.synth  # noqa: F401  (registers the synthetic presets)
    from facebench.data.presets import get_preset

    try:
        return get_preset(dataset).display_scale
    except Exception:  # a custom dataset no longer on disk: raw units
        return {}


def environment_label(rows: pd.DataFrame) -> pd.Series:
    """One string per row naming where it was measured: the GPU, or the CPU with its kernels where
    the row records them (rows before the `kernels` column do not), torch's threads, torch."""

    def label(row: pd.Series) -> str:
        text = lambda key: str(row[key]) if key in row and pd.notna(row[key]) and str(row[key]) else ""  # noqa: E731
        cpu = f"{text('cpu')} ({text('kernels')})" if text("kernels") else text("cpu")
        where = text("gpu") or cpu
        threads = f"{int(float(text('threads')))} threads" if text("threads") else ""
        return ", ".join(part for part in (where, threads, f"torch {text('torch')}" if text("torch") else "") if part)

    return rows.apply(label, axis=1) if len(rows) else pd.Series(dtype=str)


def latest_per_seed(rows: pd.DataFrame) -> pd.DataFrame:
    """The rows tables and charts are made of: a seed run again in the same environment counts
    once, with its latest row (the CSV keeps them all); runs from different environments (another
    CPU, thread count or torch) stay apart, as separate lines."""
    rows = rows.copy()
    rows["variant"] = rows["variant"].fillna("")
    rows["environment"] = environment_label(rows)
    return rows.sort_values("date", kind="stable").drop_duplicates([*GROUP, "split", "seed"], keep="last")


def summarise(rows: pd.DataFrame) -> pd.DataFrame:
    """One line per model configuration: mean, std and count over seeds of each metric."""
    rows = latest_per_seed(rows)
    metrics = [m for m in SHOWN if m in rows.columns and rows[m].notna().any()]
    grouped = rows.groupby(GROUP, dropna=False, sort=False)
    table = grouped[metrics].agg(["mean", "std"])
    table.columns = [f"{m}_{stat}" for m, stat in table.columns]
    table["n"] = grouped.size()
    table["rtf"] = grouped["rtf"].mean() if "rtf" in rows else None
    table["params"] = grouped["params"].max() if "params" in rows else None
    table["given_ground_truth"] = grouped["inputs"].agg(given_ground_truth) if "inputs" in rows else False
    return table.reset_index()


def given_ground_truth(inputs: pd.Series) -> bool:
    """Whether rows' `inputs` name a condition taken from the clip's own ground truth (`pose`)."""
    names = [CONDITION_NAMES.get(name, name) for name in GROUND_TRUTH_CONDITIONS]
    return bool(inputs.fillna("").map(lambda text: any(name in text for name in names)).any())


def add_skill(table: pd.DataFrame) -> pd.DataFrame:
    """Skill: (template - model) / (template - ceiling) on LVE (ceiling: the protocol oracle) or, on
    video, on PSNR (ceiling: the oracle): 0 for the template, 1 for the best achievable."""
    for metric, ceiling_model in SKILL:
        column = f"{metric}_mean"
        if column not in table or table[column].isna().all():
            continue
        anchors = {name: table.loc[table["model"] == name, column] for name in ("template", ceiling_model)}
        if any(a.empty for a in anchors.values()):
            return table
        template, ceiling = float(anchors["template"].iloc[0]), float(anchors[ceiling_model].iloc[0])
        table["skill"] = (template - table[column]) / (template - ceiling)
        return table
    return table


def best_rows(table: pd.DataFrame) -> dict[str, int]:
    """Index of the best line per ranked metric (diversity: highest; others: lowest) among the
    models that generate from the protocol's inputs: not the anchors, nor a model also given part
    of the clip's ground truth through a condition (`given_ground_truth`)."""
    candidates = table[~table["model"].isin(ANCHORS) & ~table["given_ground_truth"].astype(bool)]
    best = {}
    for metric in SHOWN:
        column = f"{metric}_mean"
        if metric in UNRANKED or column not in candidates or candidates[column].isna().all():
            continue
        values = candidates[column]
        best[metric] = int(values.idxmax() if metric in HIGHER_IS_BETTER else values.idxmin())
    return best


def format_metric(row: pd.Series, metric: str, scale: float) -> str:
    mean, std = row[f"{metric}_mean"], row[f"{metric}_std"]
    if pd.isna(mean):
        return ""
    text = f"{mean / scale:.4g}"
    if row["n"] > 1 and not pd.isna(std):
        text += f" ± {std / scale:.2g}"
    return text


def lip_reading_note(rows: pd.DataFrame) -> str:
    """What the reference lip reader reads on the ground truth, and on the oracles' motion (which
    can read better than the ground truth: the random part blurs it)."""
    if "per_gt" not in rows or rows["per_gt"].isna().all():
        return ""

    def span(values: pd.Series) -> str:
        low, high = values.min(), values.max()
        return f"{low:.4g}" if high - low < 1e-12 else f"{low:.4g} to {high:.4g}"

    anchors = [f"the {name.replace('_', ' ')} {span(rows.loc[rows['model'] == name, 'per'])}"
               for name in ("protocol_oracle", "oracle") if (rows["model"] == name).any() and rows.loc[rows["model"] == name, "per"].notna().any()]  # fmt: skip
    text = (f"PER: phoneme error rate of the dataset's frozen reference lip reader on each model's motion. It reads the "
            f"ground truth's motion (same frames) at {span(rows['per_gt'])}")  # fmt: skip
    return text + (f", and {' and '.join(anchors)}." if anchors else ".")


def split_tables(dataset: str, rows: pd.DataFrame) -> dict[str, tuple[list[str], list[list[str]], dict[str, int], str]]:
    """Per split: header, formatted lines, which cells are best (for bold) and a footnote."""
    scale = display_scale(dataset)
    result = {}
    for split, part in rows.groupby("split", sort=True):
        table = add_skill(summarise(part))
        metrics = [m for m in SHOWN if f"{m}_mean" in table and table[f"{m}_mean"].notna().any()]
        several = table["environment"].nunique() > 1  # rows from several machines or settings: say which is which
        header = ["model", "variant", "profile", *(["environment"] if several else []), "n"]
        first_metric = len(header)
        header += [f"{m.upper()} ×{scale[m]:g}" if m in scale else m.upper() for m in metrics]
        header += ["skill"] if "skill" in table else []
        header += ["RTF", "params"]
        lines = []
        for _, row in table.iterrows():
            variant = row["variant"] + (" †" if row["given_ground_truth"] else "")
            line = [row["model"], variant, row["profile"], *([row["environment"]] if several else []), str(int(row["n"]))]
            line += [format_metric(row, m, scale.get(m, 1.0)) for m in metrics]
            if "skill" in table:
                line.append(f"{row['skill']:.3f}")
            line += [f"{row['rtf']:.3g}" if pd.notna(row["rtf"]) else "", f"{int(row['params']):,}" if pd.notna(row["params"]) else ""]
            lines.append(line)
        best = {header[first_metric + metrics.index(m)]: i for m, i in best_rows(table).items() if m in metrics}
        notes = [lip_reading_note(part)]
        if table["given_ground_truth"].any():
            notes.append(f"† also given part of the clip's own ground truth ({', '.join(GROUND_TRUTH_CONDITIONS)} condition: the "
                         "driving video is the clip itself, its lower half hidden): not ranked against the others.")  # fmt: skip
        result[split] = (header, lines, best, " ".join(note for note in notes if note))
    return result


def metric_by_model(rows: pd.DataFrame, metric: str = "lve") -> pd.DataFrame:
    """Mean and spread of a metric per model configuration and split, from the same rows as the tables."""
    rows = latest_per_seed(rows)
    rows = rows.assign(label=rows["model"] + rows["variant"].map(lambda v: f" ({v})" if v else "") + " / " + rows["profile"])
    return rows.groupby(["label", "split"])[metric].agg(["mean", "std"]).reset_index()


def chart(dataset: str, rows: pd.DataFrame, out: Path) -> Path:
    """Grouped bars of the headline metric (LVE; video: PSNR) per model and split (display scale),
    error bars the spread over seeds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metric = headline(rows)
    scale = display_scale(dataset).get(metric, 1.0)
    stats = metric_by_model(rows, metric)
    labels, splits = list(dict.fromkeys(stats["label"])), sorted(stats["split"].unique())
    fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(labels) * len(splits)), 3.6), constrained_layout=True)
    width = 0.8 / len(splits)
    for k, split in enumerate(splits):
        part = stats[stats["split"] == split].set_index("label").reindex(labels)
        ax.bar([i + k * width for i in range(len(labels))], part["mean"] / scale, width, yerr=part["std"].fillna(0) / scale, label=split, capsize=2)
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(labels))], labels, rotation=20, ha="right", fontsize=8)
    if metric == "lve":
        ax.set_ylabel(f"LVE ×{scale:g} (lower is better)")
        ax.set_title(f"{dataset}: lip vertex error by model")
    else:
        ax.set_ylabel("PSNR, dB (higher is better)")
        ax.set_title(f"{dataset}: PSNR by model")
    ax.legend(fontsize=8)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def render(folder: str | Path = "leaderboards") -> str:
    """Write `<folder>/README.md` and one PNG chart per dataset; returns the markdown."""
    folder = Path(folder)
    parts = ["# facebench leaderboards", "",
             "Rendered by `facebench leaderboard` from the CSVs in this folder. Metrics in the dataset's display",
             "scale (raw values in the CSVs); mean ± spread over seeds with their count `n`; the best model per",
             "ranked column in bold (signed FDD is shown, not ranked: noise added to a prediction moves it toward 0).",
             "Anchors: `template` (worst sensible), `protocol_oracle` (the best a model can do with the protocol's",
             "inputs) and, as a diagnostic, `oracle` (full knowledge of each speaker). On synthetic data `skill` is",
             "(template − model) / (template − protocol oracle) on LVE; on synthetic video, on PSNR with the oracle as the",
             "ceiling. RTF: compute seconds per second of audio, batch 1.",
             "Column definitions: the project README, \"Leaderboard rows\".", ""]  # fmt: skip
    for path in sorted(folder.glob("*.csv")):
        rows = read_rows(path)
        if rows.empty:
            continue
        dataset = path.stem
        parts += [f"## {dataset}", "", f"![{dataset}]({chart(dataset, rows, folder / f'{dataset}.png').name})", ""]
        stills = sorted((folder / "stills" / dataset).glob("*.png"))
        if stills:  # written by `bench` (profile switch render_clips): ground truth beside the model
            parts += ["What the numbers look like (a test clip, the ground truth beside each model, at its widest mouth opening; "
                      "the lip opening over time below):", ""]  # fmt: skip
            parts += [f"**{still.stem}**<br>![{still.stem}](stills/{dataset}/{still.name})" for still in stills] + [""]
        for split, (header, lines, best, footnote) in split_tables(dataset, rows).items():
            parts += [f"### {dataset} / {split}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
            for i, line in enumerate(lines):
                cells = [f"**{c}**" if best.get(header[j]) == i and c else c for j, c in enumerate(line)]
                parts.append("| " + " | ".join(cells) + " |")
            parts += ["", footnote, ""] if footnote else [""]
    markdown = "\n".join(parts)
    (folder / "README.md").write_text(markdown)
    return markdown
