"""Lip sync of video: SyncNet's embeddings of five frames and of 0.2 s of audio, and the LSE-D /
LSE-C scores computed from them as the official SyncNet scripts do (docs/architecture.md, "The
video modality"). The judge is the official SyncNet (`syncnet_v2.model`, from a path the user
gives) on real video, and on the synthetic video corpus a sync expert trained once on its training
split and stored with it."""

from facebench.sync.expert import SyncExpert, dataset_sync_judge
from facebench.sync.scores import audio_windows, sync_scores
from facebench.sync.syncnet import SyncNet, load_syncnet

__all__ = ["SyncExpert", "SyncNet", "audio_windows", "dataset_sync_judge", "load_syncnet", "sync_scores"]
