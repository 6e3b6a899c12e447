"""The judge of lip sync for a video dataset: the official SyncNet where the user has its weights
(real video), or on the synthetic video corpus a sync expert trained once on the training split's
ground truth, frozen, and stored with the dataset (`<dataset>/syncexpert/v<VERSIONS["rgb"]>/`), so every
model is scored by the same judge and none is trained on it.

The expert is [ours]: SyncNet's task and loss (Chung & Zisserman, 2016: contrastive loss on the
Euclidean distance between five frames and 0.2 s of MFCC) at the corpus' scale, on the lower half of
the frame (the mouth), as Wav2Lip's expert sees it.

A second view of the same recipe, the **mask-sync expert** (`view="mask"`, stored in
`syncexpert/mask-v<VERSIONS["mask"]>/`), judges segmentation masks instead of pixels: the class
probabilities of the mouth's part of the frame, resized to a fixed 24 x 32, against the MFCC of the
audio scaled to a peak of 1 (the same whatever loudness normalisation the audio had). It is trained
on the ground-truth masks of any video dataset that has masks and is what SegTalker's sync loss
uses (frozen; it never judges a row).
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from rich.progress import Progress
from torch import nn

from facebench.console import console
from facebench.data.segmentation import N_CLASSES, one_hot_masks
from facebench.data.sequence import rgbl
from facebench.errors import DataError
from facebench.sync.scores import FRAMES_PER_WINDOW, audio_windows, frame_windows, sync_scores, window_count
from facebench.sync.syncnet import load_syncnet
from facebench.weights import judge_training, stored_judge, weights_identity

# Per view: bump when the network or the recipe changes (a stored expert of another version is never used).
VERSIONS = {"rgb": 1, "mask": 2}
SYNCNET_ENV = "FACEBENCH_SYNCNET"  # the official syncnet_v2.model, for real video


@dataclass(frozen=True)
class ExpertRecipe:
    width: int = 32
    embedding: int = 64
    steps: int = 800
    batch_size: int = 64
    lr: float = 2e-3
    margin: float = 2.0  # contrastive loss: out-of-sync pairs are pushed beyond this distance
    min_offset: int = 3  # frames between an out-of-sync pair's video and audio windows, at least
    seed: int = 0
    view: str = "rgb"  # "rgb": the frames' pixels; "mask": their segmentation (the mask-sync expert)
    # torch's CPU threads while training: the weights depend on them (1 and 2 threads give other
    # experts), and a judge must not depend on the threads of whichever process trains it first.
    threads: int = 2


# The stored experts' recipes, per view. The mask view's 12-channel input learns in fewer steps; at
# the rgb view's learning rate its training collapsed on some CPUs (mask v1: on one machine LSE-C
# 0.25 on real sync and 0.25 rolled, test_unseen; 0.51 and 0.31 under the portable kernels), at
# half of it, it separates them on both (0.48 and 0.32 where v1 collapsed).
RECIPES = {"rgb": ExpertRecipe(), "mask": ExpertRecipe(view="mask", steps=400, lr=1e-3)}


MASK_CROP = (24, 32)  # the mask view's fixed input size: masks of any resolution cost the same


class SyncExpert(nn.Module):
    """Five frames' lower half (the mouth) and an MFCC window -> embeddings compared by Euclidean
    distance; the interface of `SyncNet` (lip_input, forward_lip, forward_aud), plus the view it
    judges (`view_frames`, `audio_input`)."""

    def __init__(self, width: int = 32, embedding: int = 64, view: str = "rgb"):
        super().__init__()
        if view not in ("rgb", "mask"):
            raise ValueError(f"view: expected 'rgb' or 'mask', found {view!r}")
        self.view = view
        channels = 3 if view == "rgb" else N_CLASSES
        block = lambda i, o, s: [nn.Conv2d(i, o, 3, stride=s, padding=1), nn.BatchNorm2d(o), nn.ReLU()]  # noqa: E731
        self.lip_time = nn.Sequential(nn.Conv3d(channels, width, (FRAMES_PER_WINDOW, 3, 3), padding=(0, 1, 1)), nn.BatchNorm3d(width), nn.ReLU())
        self.lip = nn.Sequential(*block(width, width, 2), *block(width, 2 * width, 2), *block(2 * width, 2 * width, 2),
                                 nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2 * width, embedding))  # fmt: skip
        self.audio = nn.Sequential(nn.BatchNorm2d(1), *block(1, width, 1), *block(width, width, (1, 2)), *block(width, 2 * width, 2),
                                   nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2 * width, embedding))  # fmt: skip

    def view_frames(self, frames: torch.Tensor) -> torch.Tensor:
        """(..., H, W, 4) frames (RGB in [0, 1] and each pixel's class) -> what the expert judges:
        RGB (..., H, W, 3), or the masks one-hot (..., H, W, 12; unknown pixels all zero)."""
        return frames[..., :3] if self.view == "rgb" else one_hot_masks(frames[..., 3])

    def audio_input(self, audio: np.ndarray, n_frames: int) -> torch.Tensor:
        """A clip's 16 kHz samples -> its MFCC windows (N, 1, 13, 20); the mask view scales the
        samples to a peak of 1 first."""
        if self.view == "mask":
            audio = np.asarray(audio, dtype=np.float32) / max(float(np.abs(audio).max()), 1e-8)
        return audio_windows(audio, n_frames)

    @staticmethod
    def mouth_crop(frames: torch.Tensor) -> torch.Tensor:
        """(N, 5, H, W, ...) -> the mouth's part of each frame: rows from the middle to 7/8 of the
        height, the middle half of the width."""
        h, w = frames.shape[2:4]
        return frames[:, :, h // 2 : h * 7 // 8, w // 4 : w * 3 // 4]

    def lip_input(self, frames: torch.Tensor, cropped: bool = False) -> torch.Tensor:
        """(N, 5, H, W, C) viewed frames -> (N, C, 5, h, w): their `mouth_crop` (unless already
        `cropped`), centred on 0; the mask view resizes it to `MASK_CROP` (area interpolation of the
        class probabilities)."""
        crop = ((frames if cropped else self.mouth_crop(frames)) - 0.5).permute(0, 4, 1, 2, 3)
        if self.view == "mask" and tuple(crop.shape[-2:]) != MASK_CROP:
            n, c, t = crop.shape[:3]
            crop = nn.functional.interpolate(crop.reshape(n, c * t, *crop.shape[-2:]), size=MASK_CROP, mode="area").view(n, c, t, *MASK_CROP)
        return crop

    def forward_lip(self, x: torch.Tensor) -> torch.Tensor:
        return self.lip(self.lip_time(x).squeeze(2))

    def forward_aud(self, x: torch.Tensor) -> torch.Tensor:
        return self.audio(x)


@torch.no_grad()
def clip_scores(judge: nn.Module, frames: torch.Tensor, audio: np.ndarray, chunk: int = 64) -> tuple[float, float, int] | None:
    """LSE-D, LSE-C and the AV offset of one clip's frames (T, H, W, >=3; RGB in [0, 1]) against its
    16 kHz audio; None where the clip is too short for one window."""
    n = window_count(len(frames), len(audio))
    if n <= 0:
        return None
    device = next(judge.parameters()).device
    viewed = judge.view_frames(frames)
    video = torch.cat([judge.forward_lip(judge.lip_input(frame_windows(viewed, n)[k : k + chunk].to(device))) for k in range(0, n, chunk)])
    sound = judge.audio_input(audio, len(frames)).to(device)
    sound = torch.cat([judge.forward_aud(sound[k : k + chunk]) for k in range(0, n, chunk)])
    return sync_scores(video.cpu(), sound.cpu())


def expert_folder(data, view: str = "rgb") -> Path:
    return data.reader.root / "syncexpert" / (f"v{VERSIONS[view]}" if view == "rgb" else f"{view}-v{VERSIONS[view]}")


def judge_identity(folder_or_file: Path) -> str:
    """`<kind>:<first 12 hex digits of the weights' sha256>`: which judge gave an LSE value."""
    if folder_or_file.is_dir():
        return weights_identity(f"expert-{folder_or_file.name}", folder_or_file / "expert.pt")
    return weights_identity("syncnet_v2", folder_or_file)


def _training_clips(data, expert: SyncExpert, recipe: ExpertRecipe) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Per training clip long enough for the contrastive pairs: its frames as the expert views them
    (T, H, W, C; the mask view keeps the labels, one-hot per batch) and its MFCC windows (n, 1, 13, 20)."""
    clips = data.split_dataset("train")
    frames, sounds = [], []
    for i in range(len(clips)):
        clip, audio = clips[i], data.raw_audio("train", i)  # the wav read once per clip
        n = window_count(len(clip.frames), len(audio))
        if n <= recipe.min_offset:
            continue
        if expert.view == "mask" and bool((clip.frames[..., 3] == 255).all()):
            raise DataError(f"{data.name}: clip {clip.name} has no masks; the mask-sync expert trains on the training split's masks "
                            "(write them with `facebench parse`)")  # fmt: skip
        frames.append(clip.frames[..., 3] if expert.view == "mask" else rgbl(clip.frames)[..., :3])
        sounds.append(expert.audio_input(audio, len(clip.frames)))
    if not sounds:
        raise DataError(f"{data.name}: no training clip is long enough for the sync expert (at least {FRAMES_PER_WINDOW + recipe.min_offset + 1} "
                        "frames and as much audio)")  # fmt: skip
    return frames, sounds


def train_expert(data, recipe: ExpertRecipe = ExpertRecipe(), progress: bool = True) -> tuple[SyncExpert, dict]:
    """Contrastive training on in-sync windows and windows of the same clip at least `min_offset`
    frames apart (same voice and face: only the timing tells them apart), on `recipe.threads`
    threads whatever the caller's (restored after)."""
    with judge_training(recipe.threads, recipe.seed) as generator:
        return _train_expert(data, recipe, progress, generator)


def _train_expert(data, recipe: ExpertRecipe, progress: bool, generator: torch.Generator) -> tuple[SyncExpert, dict]:
    model = SyncExpert(recipe.width, recipe.embedding, recipe.view)
    frames, sounds = _training_clips(data, model, recipe)
    optimiser = torch.optim.Adam(model.parameters(), lr=recipe.lr)
    sizes = torch.tensor([len(s) for s in sounds])
    start = time.perf_counter()
    with Progress(console=console, disable=not progress, transient=True) as bar:
        task = bar.add_task(f"{recipe.view} sync expert for {data.name}", total=recipe.steps)
        for _ in range(recipe.steps):
            clip = torch.multinomial(sizes.float(), recipe.batch_size, replacement=True, generator=generator)
            at = (torch.rand(recipe.batch_size, generator=generator) * sizes[clip]).long()
            synced = torch.rand(recipe.batch_size, generator=generator) < 0.5
            shift = torch.randint(recipe.min_offset, 16, (recipe.batch_size,), generator=generator) * torch.where(torch.rand(recipe.batch_size, generator=generator) < 0.5, -1, 1)
            other = torch.where(synced, at, (at + shift).remainder(sizes[clip]))
            far = (other - at).abs() < recipe.min_offset  # a wrapped shift that landed close: in sync after all
            synced = synced | far
            lips = model.mouth_crop(torch.stack([frames[c][a : a + FRAMES_PER_WINDOW] for c, a in zip(clip.tolist(), at.tolist())]))
            if model.view == "mask":
                lips = one_hot_masks(lips)
            sound = torch.stack([sounds[c][o] for c, o in zip(clip.tolist(), other.tolist())])
            distance = nn.functional.pairwise_distance(model.forward_lip(model.lip_input(lips, cropped=True)), model.forward_aud(sound))
            loss = torch.where(synced, distance.pow(2), (recipe.margin - distance).clamp(min=0).pow(2)).mean()
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            bar.advance(task)
    model.eval()
    card = {"version": VERSIONS[recipe.view], "recipe": asdict(recipe), "dataset": data.name, "train_windows": int(sizes.sum()),
            "seconds": round(time.perf_counter() - start, 1), "calibration": calibration(model, data)}  # fmt: skip
    return model, card


def calibration(judge: nn.Module, data) -> dict:
    """LSE-D and LSE-C of the ground truth on every evaluation split, against its own audio and
    against the audio rolled by half the clip (what out-of-sync real video scores)."""
    result = {}
    for split in ("val", *data.test_split_names):
        clips = data.split_dataset(split)
        synced, rolled = [], []
        for i in range(len(clips)):
            frames, audio = rgbl(clips[i].frames), data.raw_audio(split, i)
            for out, sound in ((synced, audio), (rolled, np.roll(audio, len(audio) // 2))):
                scores = clip_scores(judge, frames, sound)
                if scores is not None:
                    out.append(scores[:2])
        mean = lambda rows: [round(float(v), 4) for v in np.mean(rows, 0)] if rows else None  # noqa: E731
        result[split] = {"ground_truth": mean(synced), "rolled_audio": mean(rolled)}
    return result


def stored_expert(data, progress: bool = True, view: str = "rgb") -> SyncExpert:
    """The dataset's sync expert of `view`, trained on first use (visibly, under a lock) and stored with it."""
    return stored_judge(expert_folder(data, view), f"the {view} sync expert of {data.name}", "expert.pt", lambda: train_expert(data, RECIPES[view], progress=progress),
                        lambda card: SyncExpert(card["recipe"]["width"], card["recipe"]["embedding"], card["recipe"].get("view", "rgb")))  # fmt: skip


def dataset_sync_judge(data, progress: bool = True, syncnet: str | None = None) -> tuple[nn.Module | None, str]:
    """(judge, identity) for a video dataset: the official SyncNet from `syncnet` or $FACEBENCH_SYNCNET
    where given; else the stored expert of a synthetic corpus (one with `pose/`); else (None, "")
    and LSE is not computed (said once)."""
    if data.preset.modality != "video":
        return None, ""
    path = syncnet or os.environ.get(SYNCNET_ENV)
    if path:
        return load_syncnet(path), judge_identity(Path(path))
    if (data.reader.root / "pose").is_dir():
        judge = stored_expert(data, progress)
        return judge, judge_identity(expert_folder(data))
    console.print(f"no SyncNet weights for {data.name}: LSE-D/LSE-C not computed (give syncnet_v2.model with ${SYNCNET_ENV})")
    return None, ""
