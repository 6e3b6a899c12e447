"""The frozen networks that score video, gathered once per run (docs/architecture.md, "Video
judges"): the dataset's lip-sync judge, LPIPS's AlexNet, FID's Inception and the mouth-landmark
judge. Each is optional: without it its columns stay empty, and the row's provenance column (which
weights scored it) says none. Weights the user gives come from the run's `evaluation` settings or
their environment variables; the synthetic corpus' own judges are trained once and stored with it."""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import nn

# The rows' provenance column of each judge (facebench.bench.leaderboard.PROVENANCE).
JUDGE_COLUMNS = ("sync_judge", "lpips_net", "fid_net", "lmd_judge")


@dataclass
class VideoJudges:
    sync: nn.Module | None = None
    lpips: nn.Module | None = None
    inception: nn.Module | None = None
    landmarks: nn.Module | None = None
    identities: dict[str, str] = field(default_factory=dict)  # provenance column -> the weights' identity

    def provenance(self) -> dict[str, str]:
        return {column: self.identities.get(column, "") for column in JUDGE_COLUMNS}


def video_judges(data, evaluation: dict | None = None, progress: bool = True) -> VideoJudges:
    """The judges of a video dataset's rows; `evaluation`: the run's `evaluation` settings
    (`syncnet`, `alexnet`, `inception`, `landmarks`: paths to published weights)."""
    from facebench.metrics.fid import inception_from
    from facebench.metrics.landmarks import dataset_landmark_judge
    from facebench.metrics.lpips import lpips_from
    from facebench.sync.expert import dataset_sync_judge

    evaluation = evaluation or {}
    sync, sync_identity = dataset_sync_judge(data, progress, evaluation.get("syncnet"))
    lpips, lpips_identity = lpips_from(evaluation.get("alexnet"))
    inception, inception_identity = inception_from(evaluation.get("inception"))
    landmarks, landmarks_identity = dataset_landmark_judge(data, progress, evaluation.get("landmarks"))
    identities = dict(zip(JUDGE_COLUMNS, (sync_identity, lpips_identity, inception_identity, landmarks_identity)))
    return VideoJudges(sync, lpips, inception, landmarks, identities)
