"""The mouth landmark distance (LMD): lip landmarks found on the generated frames against those
found on the ground-truth frames by the same landmark judge (docs/architecture.md, "Video judges").

Recipe (the ViCo reference scripts' `compute_lmd.py`, which IP-LAP follows): per frame and lip
landmark, the absolute difference of x and of y (L1 per coordinate, not the Euclidean distance), in
pixels of the frame as the dataset stores it; the mean over coordinates, landmarks and the frames
of a split. Papers differ (Euclidean, normalised by the face's size, the whole face): this is the
one facebench reports.

The judge, per dataset:
- on the synthetic video corpus, a **lip landmark judge** [ours] trained once on the training
  split's frames against the lip vertices the corpus projected to pixels when it rendered them
  (`lips/`: exact), frozen and stored with the dataset (`landmarkjudge/v<VERSION>/`, like the sync
  expert). Its own error against the exact landmarks on each evaluation split is in its card.
- on real video, a landmark model the user gives (`evaluation.landmarks` or
  $FACEBENCH_LANDMARKS, facebench.metrics.fan: face-alignment's 2D-FAN, lips = points 48-67).
- otherwise none, and the LMD column stays empty.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torchmetrics import Metric

from facebench.console import console
from facebench.data.sequence import rgbl
from facebench.errors import DataError
from facebench.metrics.video import align_frames, nchw
from facebench.weights import fit_judge, judge_training, stored_judge, weights_identity

VERSION = 1  # bump when the network or the recipe changes: a stored judge of another version is never used
LANDMARKS_ENV = "FACEBENCH_LANDMARKS"
CROP_SIZE = (32, 48)  # the judge's input: the mouth's part of any frame, resized to this


@dataclass(frozen=True)
class LandmarkRecipe:
    width: int = 32
    steps: int = 600
    batch_size: int = 64
    lr: float = 2e-3
    seed: int = 0
    threads: int = 2  # as the sync expert's: the weights depend on torch's threads (facebench.weights.judge_training)


def mouth_box(height: int, width: int) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) of the mouth's part of a frame: the sync expert's crop (rows from
    the middle to 7/8 of the height, the middle half of the width)."""
    return height // 2, height * 7 // 8, width // 4, width * 3 // 4


class LipLandmarkJudge(nn.Module):
    """Frames -> the pixel positions of `points` lip landmarks: a small CNN on the mouth's part of
    the frame, resized to `CROP_SIZE`, regressing each landmark's position within that part."""

    chunk = 256  # frames per pass

    def __init__(self, points: int, width: int = 32):
        super().__init__()
        self.points = points

        def block(cin: int, cout: int, stride: int) -> list[nn.Module]:
            return [nn.Conv2d(cin, cout, 3, stride, 1), nn.BatchNorm2d(cout), nn.ReLU()]

        self.net = nn.Sequential(*block(3, width, 1), *block(width, 2 * width, 2), *block(2 * width, 2 * width, 2),
                                 *block(2 * width, 4 * width, 2), nn.Flatten(),
                                 nn.Linear(4 * width * (CROP_SIZE[0] // 8) * (CROP_SIZE[1] // 8), 256), nn.ReLU(),
                                 nn.Linear(256, 2 * points))  # fmt: skip

    @staticmethod
    def crop(frames: torch.Tensor) -> torch.Tensor:
        """(T, H, W, >=3) frames, RGB in [0, 1] -> (T, 3, *CROP_SIZE) mouth crops, centred on 0."""
        top, bottom, left, right = mouth_box(*frames.shape[1:3])
        part = nchw(frames[:, top:bottom, left:right])
        return nn.functional.interpolate(part, size=CROP_SIZE, mode="bilinear", align_corners=False, antialias=True) - 0.5

    def forward(self, crops: torch.Tensor) -> torch.Tensor:
        """(N, 3, *CROP_SIZE) -> (N, points, 2) positions within the crop, (x, y) in [0, 1]."""
        return self.net(crops).view(len(crops), self.points, 2)

    @torch.no_grad()
    def landmarks(self, frames: torch.Tensor) -> torch.Tensor:
        """(T, H, W, >=3) frames -> (T, points, 2) pixel positions (x right, y down)."""
        top, bottom, left, right = mouth_box(*frames.shape[1:3])
        scale = torch.tensor([right - left, bottom - top], dtype=torch.float32, device=frames.device)
        origin = torch.tensor([left, top], dtype=torch.float32, device=frames.device)
        found = [self(self.crop(frames[s : s + self.chunk])) for s in range(0, len(frames), self.chunk)]
        return torch.cat(found) * scale + origin


class LandmarkDistance(Metric):
    """LMD of generated frames against the ground truth's, both judged by `judge` (any module with
    `landmarks(frames) -> (T, P, 2)` pixel positions), pooled over a split."""

    full_state_update = False
    higher_is_better = False

    def __init__(self, judge: nn.Module, **kwargs):
        super().__init__(**kwargs)
        self.judge = judge.eval()
        self.add_state("lmd_sum", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("lmd_terms", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        """`pred` (1, T', H, W, 4) and `target` (1, T, H, W, 4), RGB in [0, 1] (the collection's call)."""
        pred, target, _ = align_frames(pred, target)
        difference = self.judge.landmarks(pred[..., :3].clamp(0, 1)) - self.judge.landmarks(target[..., :3])
        self.lmd_sum += difference.abs().double().sum()
        self.lmd_terms += difference.numel()

    def compute(self) -> dict[str, torch.Tensor]:
        if self.lmd_terms == 0:
            return {"lmd": torch.tensor(math.nan, dtype=torch.float64, device=self.lmd_sum.device)}
        return {"lmd": self.lmd_sum / self.lmd_terms}


# -- the synthetic corpus' judge, trained once and stored with it ------------------------------------


def judge_folder(data) -> Path:
    return data.reader.root / "landmarkjudge" / f"v{VERSION}"


def lip_track(data, split: str, index: int) -> torch.Tensor:
    """(T, P, 2) the exact lip landmarks of a synthetic clip, in pixels of its frames."""
    name = data.split_dataset(split).entries[index].name
    path = data.reader.root / "lips" / f"{name}.npy"
    if not path.is_file():
        raise DataError(path, "the clip's projected lip vertices (T, P, 2)", "no such file")
    return torch.from_numpy(np.load(path)).float()


def _labelled_frames(data, split: str, judge: LipLandmarkJudge | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """A split's mouth crops (N, 3, *CROP_SIZE) and their landmarks within the crop (N, P, 2)."""
    clips = data.split_dataset(split)
    crops, targets = [], []
    for i in range(len(clips)):
        frames, lips = rgbl(clips[i].frames), lip_track(data, split, i)
        if len(lips) != len(frames):
            raise DataError(data.reader.root / "lips" / f"{clips.entries[i].name}.npy", f"{len(frames)} frames of landmarks (the clip's)", f"{len(lips)}")
        top, bottom, left, right = mouth_box(*frames.shape[1:3])
        crops.append(LipLandmarkJudge.crop(frames))
        targets.append((lips - torch.tensor([left, top])) / torch.tensor([right - left, bottom - top]))
    return torch.cat(crops), torch.cat(targets)


def judge_error(judge: LipLandmarkJudge, data, split: str) -> float:
    """The judge's LMD against the exact landmarks on a split's ground-truth frames, pixels."""
    clips = data.split_dataset(split)
    total, terms = 0.0, 0
    for i in range(len(clips)):
        difference = judge.landmarks(rgbl(clips[i].frames)) - lip_track(data, split, i)
        total, terms = total + float(difference.abs().sum()), terms + difference.numel()
    return round(total / terms, 4)


def train_landmark_judge(data, recipe: LandmarkRecipe = LandmarkRecipe(), progress: bool = True) -> tuple[LipLandmarkJudge, dict]:
    """L1 regression of the exact lip landmarks from the training split's frames."""
    with judge_training(recipe.threads, recipe.seed) as generator:
        crops, targets = _labelled_frames(data, "train")
        model = LipLandmarkJudge(targets.shape[1], recipe.width)
        seconds = fit_judge(model, crops, targets, lambda found, exact: (found - exact).abs().mean(), recipe, generator,
                            f"lip landmark judge for {data.name}", progress)  # fmt: skip
        card = {"version": VERSION, "recipe": asdict(recipe), "dataset": data.name, "points": model.points, "train_frames": len(crops),
                "seconds": seconds, "error_px": {split: judge_error(model, data, split) for split in ("val", *data.test_split_names)}}  # fmt: skip
    return model, card


def stored_landmark_judge(data, progress: bool = True) -> LipLandmarkJudge:
    """The dataset's lip landmark judge, trained on first use and stored with it."""
    return stored_judge(judge_folder(data), f"the lip landmark judge of {data.name}", "judge.pt", lambda: train_landmark_judge(data, progress=progress),
                        lambda card: LipLandmarkJudge(card["points"], card["recipe"]["width"]))  # fmt: skip


def dataset_landmark_judge(data, progress: bool = True, path: str | None = None) -> tuple[nn.Module | None, str]:
    """(judge, identity) for a video dataset: the landmark model at `path` or $FACEBENCH_LANDMARKS
    where given; else the stored judge of a synthetic corpus (one with `lips/`); else (None, "")
    and LMD is not computed (said once)."""
    if data.preset.modality != "video":
        return None, ""
    path = path or os.environ.get(LANDMARKS_ENV)
    if path:
        from facebench.metrics.fan import load_fan

        return load_fan(path), weights_identity("fan", Path(path))
    if (data.reader.root / "lips").is_dir():
        judge = stored_landmark_judge(data, progress)
        return judge, weights_identity(f"lipjudge-v{VERSION}", judge_folder(data) / "judge.pt")
    console.print(f"no landmark model for {data.name}: LMD not computed (give face-alignment's 2D-FAN with ${LANDMARKS_ENV})")
    return None, ""
