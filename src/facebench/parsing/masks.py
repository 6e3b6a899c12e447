"""`facebench parse`: masks for every clip of a video dataset, from the face parser, merged to the
12 classes and written as `masks/<clip>.npz` (written beside and renamed in: a clip's masks are
whole or absent)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from rich.progress import track

from facebench.data.segmentation import merge_face_parsing
from facebench.parsing.bisenet import load_face_parser, parse_frames
from facebench.storage import write_atomically


def write_masks(root: str | Path, checkpoint: str | Path, overwrite: bool = False, progress: bool = True, device: str = "cpu") -> list[Path]:
    """Parse `<root>/video/*.mp4` into `<root>/masks/*.npz`; clips that have masks are kept unless
    `overwrite`. Returns the files written."""
    from facebench.render.video import read_video

    root = Path(root)
    videos = sorted((root / "video").glob("*.mp4"))
    if not videos:
        from facebench.errors import DataError

        raise DataError(root / "video", "the dataset's .mp4 clips (the video layout)", "none")
    parser = load_face_parser(checkpoint).to(device)
    (root / "masks").mkdir(exist_ok=True)
    written = []
    for video in track(videos, description="face parsing", disable=not progress):
        out = root / "masks" / f"{video.stem}.npz"
        if out.is_file() and not overwrite:
            continue
        frames, _ = read_video(video)
        masks = merge_face_parsing(parse_frames(parser, frames))
        write_atomically(out, lambda f, masks=masks: np.savez_compressed(f, masks=masks))
        written.append(out)
    return written
