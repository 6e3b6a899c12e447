"""Tiny datasets and releases in the exact on-disk formats of the real ones, for the tests."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import soundfile
import torch


def write_clip(root: Path, name: str, n_frames: int, n_vertices: int, fps: float, sample_rate: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    vertices = rng.normal(size=(n_frames, n_vertices * 3)).astype(np.float32) * 0.01
    np.save(root / "vertices_npy" / f"{name}.npy", vertices)
    n_samples = int(round(n_frames / fps * sample_rate))
    soundfile.write(root / "wav" / f"{name}.wav", rng.normal(size=n_samples).astype(np.float32) * 0.1, sample_rate)
    return vertices


def write_dataset(
    root: Path,
    clips: dict[str, int],
    n_vertices: int,
    fps: float,
    sample_rate: int = 16000,
    templates: dict[str, np.ndarray] | None = None,
) -> Path:
    """`clips`: {'<subject>_<sentence>': stored frame count}."""
    (root / "wav").mkdir(parents=True, exist_ok=True)
    (root / "vertices_npy").mkdir(parents=True, exist_ok=True)
    subjects = sorted({name.rsplit("_", 1)[0] for name in clips})
    if templates is None:
        rng = np.random.default_rng(0)
        templates = {s: rng.normal(size=(n_vertices, 3)).astype(np.float32) for s in subjects}
    with open(root / "templates.pkl", "wb") as f:
        pickle.dump(templates, f)
    for i, (name, n_frames) in enumerate(sorted(clips.items())):
        write_clip(root, name, n_frames, n_vertices, fps, sample_rate, seed=i)
    return root


def write_regions(root: Path, regions: dict[str, list[int]]) -> None:
    (root / "regions").mkdir(exist_ok=True)
    for key, indices in regions.items():
        (root / "regions" / f"{key}.txt").write_text(", ".join(map(str, indices)))


def strip_faces(n_vertices: int) -> np.ndarray:
    """A triangle strip over the vertices in index order: a valid mesh of any size for tests."""
    return np.stack([np.arange(n_vertices - 2), np.arange(1, n_vertices - 1), np.arange(2, n_vertices)], 1)


def write_template_mesh(root: Path, relative: str, n_vertices: int) -> None:
    """A template mesh where FaceFormer's and CodeTalker's layouts keep it (`templates/FLAME_sample.ply`,
    `templates/BIWI.ply`): the faces a mesh-topology model reads."""
    import trimesh

    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    vertices = np.random.default_rng(0).normal(size=(n_vertices, 3))
    trimesh.Trimesh(vertices, strip_faces(n_vertices), process=False).export(path)


def write_flame_assets(root: Path, n_vertices: int = 5023) -> None:
    """FLAME_masks.pkl with the keys the presets use, and the mesh's faces."""
    masks = {"lips": np.arange(1576, 1600), "forehead": np.arange(10, 30), "eye_region": np.arange(30, 60)}
    with open(root / "FLAME_masks.pkl", "wb") as f:
        pickle.dump(masks, f)
    np.save(root / "faces.npy", strip_faces(n_vertices))


def write_ravdess(root: Path, clips: list[tuple[int, int, int, int, int]], n_vertices: int = 5023, frames: int = 9) -> Path:
    """3D-RAVDESS: clips as (actor, emotion 1-8, intensity 1-2, statement 1-2, repetition 1-2)."""
    rng = np.random.default_rng(0)
    actors = sorted({c[0] for c in clips})
    for actor, emotion, intensity, statement, repetition in clips:
        folder = root / f"Actor_{actor:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        name = f"01-01-{emotion:02d}-{intensity:02d}-{statement:02d}-{repetition:02d}-{actor:02d}"
        np.save(folder / f"{name}.npy", (rng.normal(size=(frames, n_vertices * 3)) * 0.001).astype(np.float32))
        soundfile.write(folder / f"{name}.wav", rng.normal(size=int(frames / 30 * 48000)).astype(np.float32) * 0.1, 48000)
    with open(root / "templates.pkl", "wb") as f:
        pickle.dump({f"Actor_{a:02d}": rng.normal(size=(n_vertices, 3)).astype(np.float32) * 0.05 for a in actors}, f)
    write_flame_assets(root, n_vertices)
    return root


def write_mead3d(root: Path, clips: list[tuple[str, str, int, int]], n_vertices: int = 5023, frames: int = 8) -> Path:
    """MEAD-3D: clips as (speaker, emotion, level, id); meshes as pickled dicts, 16 kHz wav audio."""
    rng = np.random.default_rng(1)
    for speaker, emotion, level, clip in clips:
        mesh = root / speaker / "video" / "front" / emotion / f"level_{level}"
        audio = root / speaker / "audio" / emotion / f"level_{level}"
        mesh.mkdir(parents=True, exist_ok=True)
        audio.mkdir(parents=True, exist_ok=True)
        verts = (rng.normal(size=(frames, n_vertices, 3)) * 0.001).astype(np.float32)
        np.save(mesh / f"{clip:03d}.npy", np.array({"verts": verts, "beta": np.zeros(100)}, dtype=object), allow_pickle=True)
        soundfile.write(audio / f"{clip:03d}.wav", rng.normal(size=int(frames / 30 * 16000)).astype(np.float32) * 0.1, 16000)
    write_flame_assets(root, n_vertices)
    return root


def write_own_dataset(folder: Path, test_subjects: list[str]) -> Path:
    """The README's own-dataset example: training speakers anna and ben, a test split of
    `test_subjects` (cleo is new), 20 vertices, a facebench.yaml."""
    write_dataset(folder, {f"{s}_{n:02d}": 12 for s in ("anna", "ben", "cleo") for n in (1, 2, 31, 36)}, 20, fps=30)
    write_regions(folder, {"lve": [1, 2, 3], "fdd": [10, 11]})
    (folder / "facebench.yaml").write_text(
        "name: mine\nfps: 30\ntrain_subjects: [anna, ben]\ntest_splits: [test]\nsplits:\n"
        "  train: {subjects: [anna, ben], sentences: [1, 30]}\n  val: {subjects: [anna, ben], sentences: [31, 35]}\n"
        f"  test: {{subjects: [{', '.join(test_subjects)}], sentences: [36, 40]}}\nregions: {{lve: regions/lve.txt, fdd: regions/fdd.txt}}\n"
    )
    return folder


def write_video_dataset(root: Path, clips: dict[str, int], size: int, fps: float = 25, sample_rate: int = 44100,
                        masks: bool = True, seed: int = 0) -> Path:  # fmt: skip
    """The video layout (HDTF, MEAD's frontal view): `video/<name>.mp4` (H.264 as ffmpeg writes a
    preprocessed crop), `wav/<name>.wav` at `sample_rate`, and `masks/<name>.npz` where asked.
    `clips`: {name: frame count}; each frame a moving gradient, each mask a band of classes."""
    from facebench.render.video import write_video

    rng = np.random.default_rng(seed)
    for sub in ("video", "wav", "masks"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    y, x = np.mgrid[0:size, 0:size] / size
    for name, n_frames in sorted(clips.items()):
        colour = rng.uniform(0.2, 0.8, 3)
        frames = [np.round(255 * np.clip(colour * (0.6 + 0.4 * np.sin(6 * x + t / 3))[..., None] + 0.1 * y[..., None], 0, 1)).astype(np.uint8)
                  for t in range(n_frames)]  # fmt: skip
        write_video(frames, root / "video" / f"{name}.mp4", fps)
        soundfile.write(root / "wav" / f"{name}.wav", rng.normal(size=int(round(n_frames / fps * sample_rate))).astype(np.float32) * 0.1, sample_rate)
        if masks:
            labels = np.stack([np.minimum((y * 12 + t / n_frames) .astype(np.uint8), 11) for t in range(n_frames)])
            np.savez_compressed(root / "masks" / f"{name}.npz", masks=labels)
    return root


# torchvision's AlexNet checkpoint (alexnet-owt-7be5be79.pth): its layers' names and weight shapes,
# as `torchvision.models.alexnet().state_dict()` has them (each with a bias of the first dimension).
TORCHVISION_ALEXNET = {"features.0": (64, 3, 11, 11), "features.3": (192, 64, 5, 5), "features.6": (384, 192, 3, 3), "features.8": (256, 384, 3, 3),
                       "features.10": (256, 256, 3, 3), "classifier.1": (4096, 9216), "classifier.4": (4096, 4096), "classifier.6": (1000, 4096)}  # fmt: skip


def write_alexnet_checkpoint(path: Path, seed: int = 0) -> Path:
    """A state dict in torchvision's AlexNet layout, random weights (He-scaled, so features neither
    vanish nor explode): the layout is tested, not ImageNet's features."""
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for name, shape in TORCHVISION_ALEXNET.items():
        fan_in = int(np.prod(shape[1:]))
        state[f"{name}.weight"] = torch.randn(shape, generator=generator) * (2 / fan_in) ** 0.5
        state[f"{name}.bias"] = torch.zeros(shape[0])
    torch.save(state, path)
    return path


def write_parsing_unet_checkpoint(path: Path, seed: int = 0) -> Path:
    """A state dict in the layout of CelebAMask-HQ's face-parsing U-Net (E4S's `unet()`: feature
    scale 4, so widths 16-256, 19 classes), random weights, the key names spelt out here from that
    network's module tree rather than taken from ours. Key for key and output for output it was
    checked against E4S's code side by side (README, "SegTalker")."""
    generator = torch.Generator().manual_seed(seed)
    widths = [16, 32, 64, 128, 256]
    state = {}

    def conv_block(name: str, cin: int, cout: int) -> None:  # unetConv2: (Conv2d, BatchNorm2d, ReLU) twice
        for k, c in (("conv1", cin), ("conv2", cout)):
            state[f"{name}.{k}.0.weight"] = torch.randn(cout, c, 3, 3, generator=generator) * (2 / (9 * c)) ** 0.5
            state[f"{name}.{k}.0.bias"] = torch.zeros(cout)
            state[f"{name}.{k}.1.weight"], state[f"{name}.{k}.1.bias"] = torch.ones(cout), torch.zeros(cout)
            state[f"{name}.{k}.1.running_mean"], state[f"{name}.{k}.1.running_var"] = torch.zeros(cout), torch.ones(cout)
            state[f"{name}.{k}.1.num_batches_tracked"] = torch.tensor(0)

    for level, (cin, cout) in enumerate(zip([3, *widths[:3]], widths[:4]), start=1):
        conv_block(f"conv{level}", cin, cout)
    conv_block("center", widths[3], widths[4])
    for level in (4, 3, 2, 1):  # unetUp: a ConvTranspose2d(in, out, 2, 2) `up`, then unetConv2 `conv`
        cin, cout = widths[level], widths[level - 1]
        conv_block(f"up_concat{level}.conv", cin, cout)
        state[f"up_concat{level}.up.weight"] = torch.randn(cin, cout, 2, 2, generator=generator) * (2 / (4 * cin)) ** 0.5
        state[f"up_concat{level}.up.bias"] = torch.zeros(cout)
    state["final.weight"], state["final.bias"] = torch.randn(19, widths[0], 1, 1, generator=generator) * 0.1, torch.zeros(19)
    torch.save(state, path)
    return path


def write_arcface_checkpoint(path: Path, seed: int = 0) -> Path:
    """A state dict in the layout of ArcFace IR-SE50 (`model_ir_se50.pth`: pixel2style2pixel's and
    E4S's `Backbone(112, 50, mode="ir_se")`), random weights, the key names spelt out here from that
    network's module tree rather than taken from ours. Key for key and output for output it was
    checked against E4S's code side by side (README, "SegTalker")."""
    generator = torch.Generator().manual_seed(seed)
    state = {}

    def conv(name: str, cout: int, cin: int, k: int) -> None:
        state[f"{name}.weight"] = torch.randn(cout, cin, k, k, generator=generator) * (2 / (k * k * cin)) ** 0.5

    def batchnorm(name: str, n: int) -> None:
        state[f"{name}.weight"], state[f"{name}.bias"] = torch.ones(n), torch.zeros(n)
        state[f"{name}.running_mean"], state[f"{name}.running_var"] = torch.zeros(n), torch.ones(n)
        state[f"{name}.num_batches_tracked"] = torch.tensor(0)

    conv("input_layer.0", 64, 3, 3)
    batchnorm("input_layer.1", 64)
    state["input_layer.2.weight"] = torch.full((64,), 0.25)  # PReLU
    unit = 0
    for cin, cout, n in ((64, 64, 3), (64, 128, 4), (128, 256, 14), (256, 512, 3)):
        for k in range(n):
            inner = cin if k == 0 else cout
            name = f"body.{unit}"
            if inner != cout:  # a strided 1x1 conv and BN; else MaxPool2d(1, stride), no weights
                conv(f"{name}.shortcut_layer.0", cout, inner, 1)
                batchnorm(f"{name}.shortcut_layer.1", cout)
            batchnorm(f"{name}.res_layer.0", inner)
            conv(f"{name}.res_layer.1", cout, inner, 3)
            state[f"{name}.res_layer.2.weight"] = torch.full((cout,), 0.25)
            conv(f"{name}.res_layer.3", cout, cout, 3)
            batchnorm(f"{name}.res_layer.4", cout)
            conv(f"{name}.res_layer.5.fc1", cout // 16, cout, 1)
            conv(f"{name}.res_layer.5.fc2", cout, cout // 16, 1)
            unit += 1
    batchnorm("output_layer.0", 512)
    state["output_layer.3.weight"] = torch.randn(512, 512 * 7 * 7, generator=generator) * (1 / (512 * 7 * 7)) ** 0.5
    state["output_layer.3.bias"] = torch.zeros(512)
    batchnorm("output_layer.4", 512)
    torch.save(state, path)
    return path


def write_fid_inception_checkpoint(path: Path, seed: int = 0) -> Path:
    """A state dict in the FID Inception's layout (pt_inception-2015-12-05), random weights
    (He-scaled convolutions, unit BatchNorm statistics). The key names come from our network: that
    they are the checkpoint's was checked side by side with pytorch-fid's network (README, "FID"),
    and tests/test_video.py pins the counts measured there."""
    from facebench.metrics.fid import FIDInception

    generator = torch.Generator().manual_seed(seed)
    state = {}
    for name, value in FIDInception().state_dict().items():
        if name.endswith(("conv.weight", "fc.weight")):
            state[name] = torch.randn(value.shape, generator=generator) * (2 / int(np.prod(value.shape[1:]))) ** 0.5
        elif not name.endswith("num_batches_tracked"):  # the TensorFlow port's file has no batch counts
            state[name] = torch.ones_like(value) if name.endswith(("running_var", "bn.weight")) else torch.zeros_like(value)
    torch.save(state, path)
    return path


def write_fan_checkpoint(path: Path, seed: int = 0) -> Path:
    """A state dict in face-alignment's 2D-FAN layout (2DFAN4-11f355bf06.pth.tar), random weights.
    The key names come from our network: that they are face-alignment's `FAN(4)` was checked side by
    side with its code (README, "LMD"), and tests/test_video.py pins the counts measured there."""
    from facebench.metrics.fan import FAN

    generator = torch.Generator().manual_seed(seed)
    state = {}
    for name, value in FAN().state_dict().items():
        if name.endswith("num_batches_tracked"):
            state[name] = value
        elif value.ndim == 4:
            state[name] = torch.randn(value.shape, generator=generator) * (1 / int(np.prod(value.shape[1:]))) ** 0.5
        else:
            state[name] = torch.ones_like(value) if name.endswith(("running_var", "weight")) else torch.zeros_like(value)
    torch.save(state, path)
    return path
