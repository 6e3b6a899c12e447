"""The video modality: the synthetic video corpus, the video layout's reader, the 2D metrics and a
bench run of the anchors on video (README, "The video modality")."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from facebench.bench.config import model_specs, resolve_models
from facebench.bench.runner import run_one
from facebench.data.datamodule import FaceDataModule
from facebench.data.segmentation import CLASSES, FACE_PARSING_TO_CLASSES, merge_face_parsing
from facebench.data.synth.generator import SYNTH_PRESETS, cached_corpus
from facebench.data.synth.mesh import build_face
from facebench.data.synth.video import (
    VIDEO_PRESETS,
    ClipPainter,
    _rng,
    cached_video_corpus,
    generate_video,
    speaker_palette,
)
from facebench.errors import DataError, FacebenchError
from facebench.metrics.video import VideoMetrics
from facebench.render.video import read_video
from tests.fabricate import write_video_dataset


@pytest.fixture(scope="module")
def video_tiny():
    return cached_video_corpus("video-tiny", progress=False)


def test_the_video_corpus_is_the_same_for_a_seed(tmp_path, video_tiny):
    clips = ["S02_s37", "U01_s38"]
    first = generate_video(VIDEO_PRESETS["video-tiny"], tmp_path / "a", clips=clips, progress=False)
    second = generate_video(VIDEO_PRESETS["video-tiny"], tmp_path / "b", clips=clips, progress=False)
    for name in clips:
        frames, fps = read_video(first / "video" / f"{name}.mp4")
        assert fps == 25 and frames.shape[1:] == (64, 64, 3)
        assert np.array_equal(frames, read_video(second / "video" / f"{name}.mp4")[0])
        # ... and the same as the cached corpus, made in one pass over every clip
        assert np.array_equal(frames, read_video(video_tiny / "video" / f"{name}.mp4")[0])
        for other in (second, video_tiny):
            assert np.array_equal(np.load(first / "masks" / f"{name}.npz")["masks"], np.load(other / "masks" / f"{name}.npz")["masks"])


def test_masks_are_the_regions_each_pixel_was_rendered_from():
    """Unshaded, a pixel has exactly the colour of the triangle it shows: its mask class must be
    that triangle's, for every pixel (and the codec keeps the stored frames to a level or two)."""
    corpus = cached_corpus("tiny", progress=False)
    face = build_face(SYNTH_PRESETS["tiny"].n_vertices)
    template = np.load(corpus / "vertices_npy" / "S01_s05.npy").reshape(-1, face.n_vertices, 3)
    rng = _rng(0, 1, 0)
    painter = ClipPainter(face, template[0], speaker_palette(rng), np.ones(len(face.faces)), 64)
    checked = 0
    for frame in (0, len(template) // 2):
        pose = np.array([0.03, -0.04, 0.02, 0.001, 0, 0], np.float32)
        _, mask = painter.paint(template[frame], pose)
        from facebench.data.synth.video import posed

        mesh = posed(np.concatenate([template[frame], painter.inside]), pose, painter.center)
        # Each triangle gets a colour of its own, so a pixel's colour names its triangle.
        ids = np.arange(len(painter.faces))
        unique = np.stack([ids % 251, (ids // 251) % 251, np.full_like(ids, 7)], 1) / 255.0
        shown = painter.renderer.render(mesh, face_colors=unique.astype(np.float32), ambient=1.0).astype(int)
        on_face = shown[..., 2] == 7
        triangle = shown[..., 0] + 251 * shown[..., 1]
        assert on_face.sum() > 1000
        assert np.array_equal(mask[on_face], painter.labels[triangle[on_face]])
        assert (mask[~on_face] == CLASSES.index("background")).all()
        checked += 1
    assert checked == 2 and CLASSES.index("mouth") in painter.labels


def test_the_stored_frames_decode_as_rendered(video_tiny):
    frames, _ = read_video(video_tiny / "video" / "S01_s37.mp4")
    masks = np.load(video_tiny / "masks" / "S01_s37.npz")["masks"]
    pose = np.load(video_tiny / "pose" / "S01_s37.npy")
    assert len(frames) == len(masks) == len(pose)
    present = set(np.unique(masks).tolist())
    assert {CLASSES.index(c) for c in ("background", "lip", "eyebrows", "eyes", "hair", "nose", "skin")} <= present
    # A region's pixels share its colour: within the skin the spread is the texture and shading, not the codec.
    skin = frames[masks == CLASSES.index("skin")].astype(float)
    background = frames[masks == CLASSES.index("background")].astype(float)
    assert background.std(0).max() < 2.0  # one flat colour, decoded within a level or two
    assert np.abs(skin.mean(0) - background.mean(0)).max() > 10


def test_the_face_parsing_merge_follows_e4s():
    assert len(FACE_PARSING_TO_CLASSES) == 19 and len(CLASSES) == 12
    parsed = np.array([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18])
    names = [CLASSES[c] for c in merge_face_parsing(parsed)]
    assert names == ["background", "skin", "eyebrows", "eyebrows", "eyes", "eyes", "eye_glass", "ears", "ears", "ear_rings", "nose",
                     "mouth", "lip", "lip", "neck", "background", "background", "hair", "background"]  # fmt: skip
    with pytest.raises(ValueError, match="19"):
        merge_face_parsing(np.array([19]))


# -- metrics -------------------------------------------------------------------------------------


def frames_of(rgb: np.ndarray, masks: np.ndarray) -> torch.Tensor:
    return torch.cat([torch.as_tensor(rgb, dtype=torch.float32), torch.as_tensor(masks, dtype=torch.float32)[..., None]], -1)


def test_psnr_ssim_and_ious_on_known_cases():
    rng = np.random.default_rng(0)
    rgb = rng.uniform(0.2, 0.8, (5, 32, 32, 3))
    masks = np.zeros((5, 32, 32), np.uint8)
    masks[:, 10:20, 8:24] = CLASSES.index("lip")  # 160 mouth pixels a frame
    same = VideoMetrics()
    same.update(frames_of(rgb, masks)[None], frames_of(rgb, masks)[None])
    values = same.compute()
    assert values["psnr"] == pytest.approx(80.0) and values["ssim"] == pytest.approx(1.0, abs=1e-5)
    assert values["mouth_iou"] == 1 and values["miou"] == 1 and values["frames_dropped"] == 0

    shifted = masks.copy()
    shifted[:, 10:20, 8:24] = 0
    shifted[:, 15:25, 8:24] = CLASSES.index("mouth")  # half the mouth overlaps: IoU 80 / 240
    other = VideoMetrics()
    other.update(frames_of(np.clip(rgb + 0.1, 0, 1), shifted)[None, :4], frames_of(rgb, masks)[None])
    values = other.compute()
    assert values["psnr"] == pytest.approx(20.0, abs=1e-4)  # every pixel off by 0.1: MSE 0.01
    assert values["mouth_iou"] == pytest.approx(80 / 240)
    # per class over the 4 compared frames: background 1024-160-80 / 1024-80, lip 0/160, mouth 0/160
    assert values["miou"] == pytest.approx(((1024 - 240) / (1024 - 80) + 0 + 0) / 3)
    assert values["frames_dropped"] == 1 and values["mask_frames"] == 4


def test_video_metrics_merge_exactly_across_processes():
    """Each state is a sum: clips scored on two processes and reduced give the one-process values."""
    rng = np.random.default_rng(1)
    clips = [(frames_of(rng.uniform(0, 1, (n, 16, 16, 3)), rng.integers(0, 12, (n, 16, 16))),
              frames_of(rng.uniform(0, 1, (n, 16, 16, 3)), rng.integers(0, 12, (n, 16, 16)))) for n in (3, 5, 4)]  # fmt: skip
    whole, left, right = VideoMetrics(), VideoMetrics(), VideoMetrics()
    for i, (pred, target) in enumerate(clips):
        whole.update(pred[None], target[None])
        (left if i % 2 == 0 else right).update(pred[None], target[None])
    left.merge_state(right)
    for key, value in whole.compute().items():
        assert float(left.compute()[key]) == pytest.approx(float(value), rel=1e-12)


def test_a_model_without_masks_has_no_iou():
    rgb = np.full((3, 16, 16, 3), 0.5)
    pred = frames_of(rgb, np.full((3, 16, 16), 255))
    metrics = VideoMetrics()
    metrics.update(pred[None], frames_of(rgb, np.zeros((3, 16, 16)))[None])
    values = metrics.compute()
    assert np.isnan(float(values["mouth_iou"])) and np.isnan(float(values["miou"])) and values["mask_frames"] == 0
    assert values["psnr"] == pytest.approx(80.0)


# -- LPIPS ---------------------------------------------------------------------------------------


def test_lpips_equals_torchmetrics_lpips_on_the_same_backbone(alexnet_checkpoint, monkeypatch):
    """Parity with torchmetrics' LPIPS (its own port of richzhang/PerceptualSimilarity, its v0.1
    heads), which needs torchvision only to build AlexNet: given our AlexNet's features instead,
    both compute the same distances and the same spatial maps."""
    import torchmetrics.functional.image.lpips as reference

    from facebench.metrics.lpips import load_lpips

    ours = load_lpips(alexnet_checkpoint)
    monkeypatch.setattr(reference, "_get_tv_model_features", lambda net, pretrained=False: ours.features)
    theirs, theirs_spatial = (reference._LPIPS(pretrained=True, net="alex", pnet_rand=True, spatial=s) for s in (False, True))
    a, b = torch.rand(2, 3, 64, 80), torch.rand(2, 3, 64, 80)
    b[1] = a[1] * 0.9 + 0.05  # a near pair beside a far one
    assert ours(a, b).tolist() == pytest.approx(theirs(a, b, normalize=True).flatten().tolist(), rel=1e-5)
    assert torch.allclose(ours.maps(a, b), theirs_spatial(a, b, normalize=True)[:, 0], rtol=1e-5, atol=1e-7)


def test_lpips_columns_load_torchvisions_alexnet_layout_and_follow_the_regions(alexnet_checkpoint, tmp_path, monkeypatch):
    from facebench.metrics.lpips import ALEXNET_ENV, lpips_from

    monkeypatch.delenv(ALEXNET_ENV, raising=False)
    assert lpips_from() == (None, "")
    lpips, identity = lpips_from(str(alexnet_checkpoint))
    assert identity.startswith("alexnet:") and identity.endswith("-lpips-v0.1")

    rng = np.random.default_rng(0)
    rgb = rng.uniform(0.2, 0.8, (4, 64, 64, 3))
    masks = np.full((4, 64, 64), CLASSES.index("skin"), np.uint8)
    masks[:, :20] = CLASSES.index("hair")
    same, without = VideoMetrics(lpips), VideoMetrics()
    for metrics in (same, without):
        metrics.update(frames_of(rgb, masks)[None], frames_of(rgb, masks)[None])
    assert "lpips" not in without.compute()
    assert all(float(same.compute()[k]) == pytest.approx(0, abs=1e-9) for k in ("lpips", "lpips_skin", "lpips_hair"))
    changed = rgb.copy()
    changed[:, :20] = rng.uniform(0, 1, (4, 20, 64, 3))  # the hair repainted, the skin untouched
    scored = VideoMetrics(lpips)
    scored.update(frames_of(changed, masks)[None], frames_of(rgb, masks)[None])
    values = {k: float(v) for k, v in scored.compute().items()}
    assert values["lpips_hair"] > 2 * values["lpips_skin"] and values["lpips"] > 0
    # two processes' sums merge into one's
    halves = VideoMetrics(lpips), VideoMetrics(lpips)
    for k, half in enumerate(halves):
        half.update(frames_of(changed[2 * k : 2 * k + 2], masks[:2])[None], frames_of(rgb[2 * k : 2 * k + 2], masks[:2])[None])
    halves[0].merge_state(halves[1])
    assert float(halves[0].compute()["lpips_hair"]) == pytest.approx(values["lpips_hair"], rel=1e-9)

    torch.save({"features.0.weight": torch.zeros(1)}, tmp_path / "other.pth")
    for path, message in ((tmp_path / "none.pth", "no such file"), (tmp_path / "other.pth", "keys and shapes")):
        with pytest.raises(FacebenchError, match=message):
            lpips_from(str(path))

def fid_of(a: np.ndarray, b: np.ndarray) -> float:
    """The Fréchet distance of two feature sets (N, D), written from the formula with scipy's
    matrix square root (pytorch-fid's `calculate_frechet_distance`), independent of torchmetrics."""
    from scipy import linalg

    mu_a, mu_b, sigma_a, sigma_b = a.mean(0), b.mean(0), np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = linalg.sqrtm(sigma_a @ sigma_b).real
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(sigma_a) + np.trace(sigma_b) - 2 * np.trace(root))


class ColourFeatures(torch.nn.Module):
    """A stand-in feature extractor (8 features: each channel's mean and spread, two products), so
    covariances are full rank with a few dozen frames."""

    num_features = 8

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean, spread = x.mean((2, 3)), x.std((2, 3))
        return torch.cat([mean, spread, mean[:, :1] * mean[:, 1:2], spread[:, :1] * mean[:, 2:]], 1)


def test_fid_streams_clips_into_the_fid_formula_and_merges_across_processes():
    """FrameFID fed clip by clip (chunked, the frames both sides have) equals the closed-form
    Fréchet distance of all frames' features, and two processes' states merge into one's."""
    from facebench.metrics.fid import FrameFID

    rng = np.random.default_rng(0)
    masks = np.zeros((64, 16, 16), np.uint8)
    real, fake = rng.uniform(0, 1, (64, 16, 16, 3)), rng.uniform(0, 1, (64, 16, 16, 3)) ** 1.5
    whole, halves = FrameFID(ColourFeatures()), (FrameFID(ColourFeatures()), FrameFID(ColourFeatures()))
    whole.chunk = 5
    for start in range(0, 64, 16):
        part = slice(start, start + 16)
        longer = np.concatenate([fake[part], fake[part][:3]])  # 3 frames more than the truth: not scored
        whole.update(frames_of(longer, np.concatenate([masks[part], masks[:3]]))[None], frames_of(real[part], masks[part])[None])
        halves[start // 32].update(frames_of(fake[part], masks[part])[None], frames_of(real[part], masks[part])[None])
    features = lambda x: ColourFeatures()(torch.from_numpy(x).permute(0, 3, 1, 2).float()).double().numpy()  # noqa: E731
    expected = fid_of(features(fake), features(real))
    assert float(whole.compute()["fid"]) == pytest.approx(expected, rel=1e-4)
    halves[0].merge_state(halves[1])
    assert float(halves[0].compute()["fid"]) == pytest.approx(expected, rel=1e-4)
    one = FrameFID(ColourFeatures())
    one.update(frames_of(fake[:1], masks[:1])[None], frames_of(real[:1], masks[:1])[None])
    assert np.isnan(float(one.compute()["fid"]))  # a covariance needs two frames


def test_fid_inception_loads_the_checkpoint_layout(inception_checkpoint, tmp_path, monkeypatch):
    from facebench.metrics.fid import INCEPTION_ENV, FIDInception, FrameFID, inception_from

    # pytorch-fid's fid_inception_v3() state dict, counted side by side: 566 entries, 23,885,392 numbers.
    state = torch.load(inception_checkpoint, weights_only=True)
    assert len(FIDInception().state_dict()) == 566 and sum(v.numel() for v in state.values()) == 23_885_392
    assert state["Mixed_7c.branch_pool.conv.weight"].shape == (192, 2048, 1, 1) and state["fc.weight"].shape == (1008, 2048)
    monkeypatch.delenv(INCEPTION_ENV, raising=False)
    assert inception_from() == (None, "")
    network, identity = inception_from(str(inception_checkpoint))
    assert identity.startswith("inception:") and identity.endswith("-pool3")
    rng = np.random.default_rng(1)
    rgb, masks = rng.uniform(0, 1, (6, 48, 48, 3)), np.zeros((6, 48, 48), np.uint8)
    assert network(torch.from_numpy(rgb).permute(0, 3, 1, 2).float()).shape == (6, 2048)
    same, other = FrameFID(network), FrameFID(network)
    same.update(frames_of(rgb, masks)[None], frames_of(rgb, masks)[None])
    other.update(frames_of(rgb[::-1] ** 3, masks)[None], frames_of(rgb, masks)[None])
    assert float(same.compute()["fid"]) == pytest.approx(0, abs=1e-3) and float(other.compute()["fid"]) > 1e-2
    torch.save({"Conv2d_1a_3x3.conv.weight": torch.zeros(1)}, tmp_path / "other.pth")
    for path, message in ((tmp_path / "none.pth", "no such file"), (tmp_path / "other.pth", "keys and shapes")):
        with pytest.raises(FacebenchError, match=message):
            inception_from(str(path))


class PixelLandmarks(torch.nn.Module):
    """A stand-in landmark judge: three 'landmarks' read from the first row's pixels (x from red,
    y from green, times 10), so a known pixel change is a known landmark shift."""

    def landmarks(self, frames: torch.Tensor) -> torch.Tensor:
        return frames[:, 0, :3, :2] * 10


def test_lmd_is_the_mean_absolute_coordinate_difference():
    """ViCo's recipe: |dx| and |dy| averaged (not the Euclidean distance), frames both sides have."""
    from facebench.metrics.landmarks import LandmarkDistance

    rgb, masks = np.full((4, 8, 8, 3), 0.2), np.zeros((4, 8, 8), np.uint8)
    moved = rgb.copy()
    moved[:, 0, :3, 0] += 0.3  # every landmark 3 px right
    moved[:, 0, :3, 1] += 0.4  # and 4 px down: Euclidean 5, L1 per coordinate 3.5
    metric = LandmarkDistance(PixelLandmarks())
    metric.update(frames_of(np.concatenate([moved, moved[:2]]), np.concatenate([masks, masks[:2]]))[None], frames_of(rgb, masks)[None])
    assert float(metric.compute()["lmd"]) == pytest.approx(3.5)


def test_the_lip_landmark_judge_finds_the_projected_lips(video_tiny):
    """The synthetic corpus' judge, trained once on the training split against the exact lip
    vertices projected to pixels, finds them on held-out frames to well under a pixel."""
    from facebench.metrics.landmarks import dataset_landmark_judge, judge_error, judge_folder

    data = FaceDataModule("synth-video-tiny")
    judge, identity = dataset_landmark_judge(data, progress=False)
    assert identity.startswith("lipjudge-v1:") and (judge_folder(data) / "card.json").is_file()
    assert judge_error(judge, data, "test_unseen") < 0.6


def test_fan_reads_heatmaps_as_face_alignment_does(tmp_path, monkeypatch):
    """2D-FAN for real video: the checkpoint layout loads (counts measured on face-alignment's
    `FAN(4)`), lips come back in frame pixels, and heatmap maxima are read with face-alignment's
    quarter-pixel rule (checked value by value against its `get_preds_fromhm` side by side, README)."""
    from facebench.metrics.fan import FAN, heatmap_points
    from facebench.metrics.landmarks import LANDMARKS_ENV, dataset_landmark_judge
    from tests.fabricate import write_fan_checkpoint

    heatmaps = torch.zeros(1, 2, 64, 64)
    heatmaps[0, 0, 20, 10], heatmaps[0, 0, 20, 11], heatmaps[0, 0, 19, 10] = 1.0, 0.5, 0.3  # right and up are higher
    heatmaps[0, 1, 5, 0] = 1.0  # on the border: no shift
    assert heatmap_points(heatmaps).tolist() == [[[10.75, 20.25], [0.5, 5.5]]]
    path = write_fan_checkpoint(tmp_path / "2DFAN4-11f355bf06.pth.tar")
    state = torch.load(path, weights_only=True)
    assert len(FAN().state_dict()) == 1129 and sum(v.numel() for k, v in state.items() if not k.endswith("num_batches_tracked")) == 23_874_320
    monkeypatch.setenv(LANDMARKS_ENV, str(path))
    judge, identity = dataset_landmark_judge(FaceDataModule("synth-video-tiny"), progress=False)  # given weights win over the stored judge
    assert identity.startswith("fan:")
    lips = judge.landmarks(torch.rand(1, 64, 64, 3))
    assert lips.shape == (1, 20, 2) and torch.equal(lips, lips.trunc())


# -- the reader ----------------------------------------------------------------------------------


def hdtf_clips(frames: int = 6) -> dict[str, int]:
    """Nine HDTF subjects (the eighth is held out for test, the seventh for validation)."""
    return {f"WDA_Speaker{k}_{c:03d}": frames for k in range(9) for c in (0, 1)}


@pytest.fixture(scope="module")
def hdtf_root(tmp_path_factory):
    return write_video_dataset(tmp_path_factory.mktemp("hdtf"), hdtf_clips(), size=512)


def test_hdtf_layout_reads_with_identity_disjoint_splits(hdtf_root):
    data = FaceDataModule("hdtf", root=str(hdtf_root))
    data.setup()
    preset = data.preset
    assert preset.splits["test"].subjects == ("WDA_Speaker7",) and preset.splits["val"].subjects == ("WDA_Speaker6",)
    assert not set(preset.splits["test"].subjects) & set(preset.train_subjects)
    clip = data.clip("test", 0)
    assert clip.frames.shape == (6, 512, 512, 4) and clip.frames.dtype == torch.uint8 and clip.vertices is None
    assert torch.equal(clip.template, clip.frames[0])  # the reference is the clip's first frame
    assert clip.frames[..., 3].max() < 12 and len(clip.audio) == pytest.approx(6 / 25 * 16000, abs=2)


@pytest.mark.parametrize(
    ("change", "message"),
    [("fps", "25 fps"), ("size", "512 x 512 frames"), ("wav", "the audio of"), ("long_audio", "equal duration"), ("masks", "masks of shape")],
)
def test_bad_video_clips_get_one_clear_error(tmp_path, change, message):
    clips = {f"WDA_Speaker{k}_000": 4 for k in range(8)}
    root = write_video_dataset(tmp_path / "hdtf", clips, size=512)
    bad = "WDA_Speaker7_000"
    if change in ("fps", "size"):
        write_video_dataset(tmp_path / "other", {bad: 4}, size=256 if change == "size" else 512, fps=30 if change == "fps" else 25)
        (tmp_path / "other" / "video" / f"{bad}.mp4").replace(root / "video" / f"{bad}.mp4")
    elif change == "wav":
        (root / "wav" / f"{bad}.wav").unlink()
    elif change == "long_audio":
        import soundfile

        soundfile.write(root / "wav" / f"{bad}.wav", np.zeros(16000 * 2, np.float32), 16000)
    elif change == "masks":
        np.savez_compressed(root / "masks" / f"{bad}.npz", masks=np.zeros((3, 512, 512), np.uint8))
    data = FaceDataModule("hdtf", root=str(root))
    with pytest.raises(DataError, match=message) as error:
        data.setup()
        data.clip("test", 0)
    assert bad in str(error.value)


def test_a_missing_video_dataset_says_where_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setenv("FACEBENCH_DATA", str(tmp_path))
    with pytest.raises(DataError, match="HDTF") as error:
        FaceDataModule("hdtf").setup()
    assert "video/<subject>_<clip>.mp4" in str(error.value)


# -- bench rows ----------------------------------------------------------------------------------


ANCHORS = ("template", "oracle", "ground_truth", "ground_truth_offset")


@pytest.fixture(scope="module")
def anchor_rows(tmp_path_factory, video_tiny):
    """The anchor and calibration rows of the tiny video corpus (ci profile), and their folder."""
    root = tmp_path_factory.mktemp("video_anchors")
    rows = {name: {r["split"]: r for r in run_one(model_specs()[name], "synth-video-tiny", "ci", 0, leaderboards=root, runs=root / "runs",
                                                   progress=False)} for name in ANCHORS}  # fmt: skip
    return rows, root


def test_anchor_and_calibration_rows_on_synthetic_video(anchor_rows):
    rows, tmp_path = anchor_rows
    names = ANCHORS
    for split in ("test_seen", "test_unseen"):
        template, oracle, truth, offset = (rows[n][split] for n in names)
        assert oracle["psnr"] > template["psnr"] + 5 and oracle["ssim"] > template["ssim"]
        assert oracle["mouth_iou"] > 0.9 > template["mouth_iou"] and oracle["miou"] > template["miou"]
        assert template["protocol"] == "own reference frame" and "privileged: deterministic" in oracle["inputs"]
        assert "reference frame" in template["inputs"] and template["clips"] == {"test_seen": 16, "test_unseen": 8}[split]
        # calibration: the ground truth scores each metric's best; the sync judge finds real sync, and not when offset
        assert truth["psnr"] == pytest.approx(80) and truth["mouth_iou"] == 1 and truth["miou"] == 1 and "privileged: frames" in truth["inputs"]
        assert truth["lse_c"] > offset["lse_c"] + 0.05 and truth["lse_d"] < offset["lse_d"] - 0.05, (truth, offset)
        assert oracle["lse_c"] > template["lse_c"] + 0.1 and truth["lse_clips"] == template["clips"]
        assert truth["sync_judge"].startswith("expert-v") and truth["sync_judge"] == template["sync_judge"]
        # mouth landmarks: the judge agrees with itself on the truth; the oracle's mouths are closer than a still one
        assert truth["lmd"] == 0 and oracle["lmd"] < template["lmd"] / 2 and truth["lmd_judge"].startswith("lipjudge-v1:")
        assert "fid" not in template and template["fid_net"] == ""  # no Inception weights given
    table = pd.read_csv(tmp_path / "synth-video-tiny.csv")
    assert {"psnr", "ssim", "mouth_iou", "miou", "lse_d", "lse_c"} <= set(table.columns) and table["lve"].isna().all()
    saved = next((tmp_path / "runs").glob("synth-video-tiny/template-*/predictions/test_seen/*.npz"))
    kept = np.load(saved)
    assert kept["frames"].dtype == np.uint8 and kept["frames"].shape[1:] == (64, 64, 3) and kept["masks"].max() < 12
    assert [s.name for s in resolve_models("all", "synth-video-tiny")] == ["ground_truth", "ground_truth_offset", "oracle", "segtalker", "template"]
    assert "ground_truth" not in [s.name for s in resolve_models("all", "synth-tiny")]


@torch.no_grad()
def test_video_generation_is_sealed(video_tiny):
    """The template sees the reference frame, not the clip's frames; the calibration rows see the
    frames only as their declared privileged input, at the ground truth's length."""
    from dataclasses import replace

    from facebench.bench.config import resolve
    from facebench.bench.runner import build
    from facebench.data.sequence import SealedInputError, collate

    for name in ("template", "ground_truth"):
        data, model = build(resolve(model_specs()[name], "synth-video-tiny", "ci", 0), None)
        batch = collate([data.clip("test_unseen", 0)])
        inputs = model.generation_inputs(batch)
        with pytest.raises(SealedInputError):
            inputs.frames  # noqa: B018
        reference = model.generate_conditions(inputs)
        garbage = replace(batch, frames=torch.randint_like(batch.frames, 0, 12), names=["x"], subjects=["y"])
        again = model.generate_conditions(model.generation_inputs(garbage))
        if model.privileged_inputs:
            assert inputs.privileged.keys() == {"frames"} and reference[0].shape[1] == len(batch.frames[0])
            assert not torch.equal(reference[0], again[0])
        else:
            assert torch.equal(reference[0], again[0]) and reference[0].shape[1] == int(inputs.n_frames[0])


def test_a_mesh_model_is_refused_on_video(tmp_path, video_tiny):
    with pytest.raises(FacebenchError, match="generates mesh, but dataset synth-video-tiny is video"):
        run_one(model_specs()["faceformer"], "synth-video-tiny", "ci", 0, leaderboards=None, runs=tmp_path, progress=False)
    with pytest.raises(FacebenchError, match="'faceformer' generates mesh, but dataset synth-video-tiny is video"):
        resolve_models("ff", "synth-video-tiny")


def test_template_and_calibration_run_end_to_end_on_a_fabricated_hdtf_set(tmp_path, hdtf_root):
    rows = run_one(model_specs()["template"], "hdtf", "ci", 0, root=str(hdtf_root), leaderboards=tmp_path, runs=tmp_path / "runs", progress=False)
    assert [r["split"] for r in rows] == ["test"] and rows[0]["clips"] == 2
    assert 0 < rows[0]["psnr"] < 80 and 0 <= rows[0]["mouth_iou"] <= 1
    assert rows[0]["sync_judge"] == "" and "lse_c" not in rows[0]  # no SyncNet weights given: no LSE, said in one line
    truth = run_one(model_specs()["ground_truth"], "hdtf", "ci", 0, root=str(hdtf_root), leaderboards=tmp_path, runs=tmp_path / "runs", progress=False)
    assert truth[0]["psnr"] == pytest.approx(80) and truth[0]["mouth_iou"] == 1
    with pytest.raises(FacebenchError, match="synthetic corpora only"):
        resolve_models("oracle", "hdtf")


# -- lip sync --------------------------------------------------------------------------------------


def official_syncnet_keys() -> dict[str, tuple[int, ...]]:
    """The official `syncnet_v2.model` keys and shapes, written out from SyncNetModel.py's layout
    (docs: README "The video modality"): conv at these Sequential indices, BatchNorm right after."""
    keys = {}

    def conv(prefix, index, shape):
        keys[f"{prefix}.{index}.weight"], keys[f"{prefix}.{index}.bias"] = shape, (shape[0],)
        for name in ("weight", "bias", "running_mean", "running_var"):
            keys[f"{prefix}.{index + 1}.{name}"] = (shape[0],)

    for index, shape in zip((0, 4, 8, 11, 14, 18), ((64, 1, 3, 3), (192, 64, 3, 3), (384, 192, 3, 3), (256, 384, 3, 3), (256, 256, 3, 3), (512, 256, 5, 4))):
        conv("netcnnaud", index, shape)
    for index, shape in zip((0, 4, 8, 11, 14, 18), ((96, 3, 5, 7, 7), (256, 96, 1, 5, 5), (256, 256, 1, 3, 3), (256, 256, 1, 3, 3),
                                                    (256, 256, 1, 3, 3), (512, 256, 1, 6, 6))):  # fmt: skip
        conv("netcnnlip", index, shape)
    for prefix in ("netfcaud", "netfclip"):
        keys[f"{prefix}.0.weight"], keys[f"{prefix}.0.bias"] = (512, 512), (512,)
        for name in ("weight", "bias", "running_mean", "running_var"):
            keys[f"{prefix}.1.{name}"] = (512,)
        keys[f"{prefix}.3.weight"], keys[f"{prefix}.3.bias"] = (1024, 512), (1024,)
    return keys


def test_syncnet_loads_a_checkpoint_with_the_official_keys(tmp_path):
    from facebench.sync import load_syncnet

    generator = torch.Generator().manual_seed(0)
    state = {k: torch.randn(shape, generator=generator) * 0.05 for k, shape in official_syncnet_keys().items()}
    for key in state:
        if key.endswith("running_var"):
            state[key] = state[key].abs() + 1
    torch.save(state, tmp_path / "syncnet_v2.model")
    model = load_syncnet(tmp_path / "syncnet_v2.model")
    assert torch.equal(model.state_dict()["netcnnlip.18.weight"], state["netcnnlip.18.weight"])
    with torch.no_grad():
        lips = model.lip_input(torch.rand(2, 5, 96, 96, 3))  # resized to 224, BGR, 0-255
        assert lips.shape == (2, 3, 5, 224, 224) and lips.max() > 1
        assert model.forward_lip(lips).shape == (2, 1024) and model.forward_aud(torch.randn(2, 1, 13, 20)).shape == (2, 1024)
    del state["netfcaud.3.bias"]
    torch.save(state, tmp_path / "broken.model")
    with pytest.raises(FacebenchError, match=r"broken.model.*missing \['netfcaud.3.bias'\]"):
        load_syncnet(tmp_path / "broken.model")
    with pytest.raises(FacebenchError, match="syncnet_v2.model"):
        load_syncnet(tmp_path / "absent.model")


def test_the_sync_expert_is_the_same_whatever_threads_its_caller_has(video_tiny):
    """A stored judge is trained on its recipe's threads (1 and 2 threads would give two experts)."""
    from dataclasses import replace

    from facebench.sync.expert import RECIPES, train_expert

    data = FaceDataModule("synth-video-tiny")
    data.setup("fit")
    recipe, weights = replace(RECIPES["mask"], steps=15), []
    before = torch.get_num_threads()
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            weights.append(train_expert(data, recipe, progress=False)[0].state_dict())
            assert torch.get_num_threads() == threads  # the caller's setting is given back
    finally:
        torch.set_num_threads(before)
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


def test_lse_scores_follow_the_official_offset_search():
    """Checked against a loop written from the official `calc_pdist` and `evaluate` (a second
    implementation of the recipe in this test, not the official code run)."""
    from facebench.sync import sync_scores

    rng = np.random.default_rng(0)
    audio = rng.normal(size=(30, 8)).astype(np.float32)
    video = np.roll(audio, -2, axis=0) + 0.01 * rng.normal(size=(30, 8)).astype(np.float32)  # video i shows audio i+2
    lse_d, lse_c, offset = sync_scores(torch.from_numpy(video), torch.from_numpy(audio))
    padded = np.concatenate([np.zeros((15, 8)), audio, np.zeros((15, 8))])
    mean = np.array([np.mean([np.linalg.norm(video[i] - padded[i + k] + 1e-6) for i in range(30)]) for k in range(31)])
    assert offset == -2 and lse_d == pytest.approx(mean.min(), rel=1e-4)
    assert lse_c == pytest.approx(np.median(mean) - mean.min(), rel=1e-4)


# -- face parsing ----------------------------------------------------------------------------------


def official_face_parser_keys() -> dict[str, tuple[int, ...]]:
    """`79999_iter.pth`'s keys and shapes, written out from face-parsing.PyTorch's model.py and
    resnet.py (module names, channels and kernels), not taken from our module."""
    keys: dict[str, tuple[int, ...]] = {}

    def bn(prefix, channels):
        for name in ("weight", "bias", "running_mean", "running_var"):
            keys[f"{prefix}.{name}"] = (channels,)

    def conv_bn_relu(prefix, i, o, k):
        keys[f"{prefix}.conv.weight"] = (o, i, k, k)
        bn(f"{prefix}.bn", o)

    keys["cp.resnet.conv1.weight"] = (64, 3, 7, 7)
    bn("cp.resnet.bn1", 64)
    for layer, (i, o) in enumerate(((64, 64), (64, 128), (128, 256), (256, 512)), start=1):
        for block in (0, 1):
            prefix, first = f"cp.resnet.layer{layer}.{block}", i if block == 0 else o
            keys[f"{prefix}.conv1.weight"], keys[f"{prefix}.conv2.weight"] = (o, first, 3, 3), (o, o, 3, 3)
            bn(f"{prefix}.bn1", o)
            bn(f"{prefix}.bn2", o)
            if block == 0 and layer > 1:
                keys[f"{prefix}.downsample.0.weight"] = (o, i, 1, 1)
                bn(f"{prefix}.downsample.1", o)
    for arm, i in (("arm16", 256), ("arm32", 512)):
        conv_bn_relu(f"cp.{arm}.conv", i, 128, 3)
        keys[f"cp.{arm}.conv_atten.weight"] = (128, 128, 1, 1)
        bn(f"cp.{arm}.bn_atten", 128)
    conv_bn_relu("cp.conv_head32", 128, 128, 3)
    conv_bn_relu("cp.conv_head16", 128, 128, 3)
    conv_bn_relu("cp.conv_avg", 512, 128, 1)
    conv_bn_relu("ffm.convblk", 256, 256, 1)
    keys["ffm.conv1.weight"], keys["ffm.conv2.weight"] = (64, 256, 1, 1), (256, 64, 1, 1)
    for head, i, mid in (("conv_out", 256, 256), ("conv_out16", 128, 64), ("conv_out32", 128, 64)):
        conv_bn_relu(f"{head}.conv", i, mid, 3)
        keys[f"{head}.conv_out.weight"] = (19, mid, 1, 1)
    return keys


def test_face_parser_loads_the_checkpoint_layout_and_writes_masks(tmp_path):
    from facebench.cli import main
    from facebench.parsing import load_face_parser

    generator = torch.Generator().manual_seed(0)
    state = {k: torch.randn(shape, generator=generator) * 0.1 for k, shape in official_face_parser_keys().items()}
    state |= {k: v.abs() + 1 for k, v in state.items() if k.endswith("running_var")}
    torch.save(state, tmp_path / "79999_iter.pth")
    parser = load_face_parser(tmp_path / "79999_iter.pth")
    assert torch.equal(parser.state_dict()["cp.arm32.conv_atten.weight"], state["cp.arm32.conv_atten.weight"])
    root = write_video_dataset(tmp_path / "hdtf", {"WDA_A_000": 3, "WDA_B_000": 2}, size=64, masks=False)
    main(["parse", "--data", "hdtf", "--root", str(root), "--checkpoint", str(tmp_path / "79999_iter.pth")])
    masks = np.load(root / "masks" / "WDA_A_000.npz")["masks"]
    assert masks.shape == (3, 64, 64) and masks.dtype == np.uint8 and masks.max() < 12
    assert set(np.unique(masks).tolist()) <= set(FACE_PARSING_TO_CLASSES.tolist())
    del state["ffm.conv2.weight"]
    torch.save(state, tmp_path / "broken.pth")
    with pytest.raises(FacebenchError, match=r"missing \['ffm.conv2.weight'\]"):
        load_face_parser(tmp_path / "broken.pth")


def test_mead_video_names_give_labels_and_identity_splits(tmp_path):
    clips = {f"M{k:03d}_{'angry' if k % 2 else 'happy'}_level_{1 + k % 3}_001": 3 for k in range(9)}
    root = write_video_dataset(tmp_path / "mead", clips, size=256, masks=False)
    data = FaceDataModule("mead", root=str(root))
    data.setup()
    assert data.preset.splits["test"].subjects == ("M007",) and "M007" not in data.preset.train_subjects
    clip = data.clip("test", 0)
    assert (clip.emotion, clip.intensity) == (data.preset.emotions.index("angry"), 1)
    assert (clip.frames[..., 3] == 255).all()  # no masks: the classes are unknown
    (root / "video" / "M001_bored_level_1_001.mp4").write_bytes((root / "video" / "M001_angry_level_2_001.mp4").read_bytes())
    with pytest.raises(DataError, match="M001_bored_level_1_001.mp4.*an emotion of MEAD's"):
        FaceDataModule("mead", root=str(root)).setup()


def test_evaluate_scores_video_predictions_as_bench_does(tmp_path, anchor_rows):
    """The ground truth written as `.npz` predictions scores what the `ground_truth` row scores."""
    from facebench.metrics.evaluate import evaluate_folder

    data = FaceDataModule("synth-video-tiny")
    clips = data.split_dataset("test_unseen")
    for i, entry in enumerate(clips.entries):
        frames = clips[i].frames.numpy()
        np.savez_compressed(tmp_path / f"{entry.name}.npz", frames=frames[..., :3], masks=frames[..., 3])
    result = evaluate_folder(tmp_path, "synth-video-tiny", "test_unseen", progress=False)
    truth = anchor_rows[0]["ground_truth"]["test_unseen"]
    for key in ("psnr", "ssim", "mouth_iou", "miou", "lse_d", "lse_c", "lmd", "clips"):
        assert result[key] == pytest.approx(truth[key], rel=1e-9), key
    assert result["sync_judge"] == truth["sync_judge"] and result["lmd_judge"] == truth["lmd_judge"] and result["protocol"] == "own reference frame"
    (tmp_path / f"{clips.entries[0].name}.npz").unlink()
    with pytest.raises(DataError, match=f"{clips.entries[0].name}.npz or {clips.entries[0].name}.mp4"):
        evaluate_folder(tmp_path, "synth-video-tiny", "test_unseen", progress=False)


def test_the_pose_condition_is_a_driving_videos_masks_without_the_lower_face(video_tiny, synth_tiny):
    """`pose` (declared by SegTalker's `driving_pose`): the clip's masks with the lower half unknown,
    at the frame count the audio implies, never the ground truth's length; a mesh set has none."""
    from dataclasses import replace

    from facebench.bench.config import resolve
    from facebench.bench.runner import build
    from facebench.data.segmentation import MOUTH_CLASSES, UNKNOWN
    from facebench.data.sequence import SealedInputError, collate

    data, model = build(resolve(model_specs()["segtalker"], "synth-video-tiny", "ci", 0, "driving_pose"), None)
    assert model.conditions_used == ("pose",) and "pose: the driving video's masks, lower half hidden" in model.describe_inputs("video")
    batch = collate([data.clip("test_unseen", 0)])
    inputs = model.generation_inputs(batch)
    pose, classes, half = inputs.condition("pose"), batch.frames[..., 3], batch.frames.shape[2] // 2
    n = int(inputs.n_frames[0])
    assert pose.shape == (1, n, *classes.shape[2:]) and pose.dtype == torch.uint8
    assert (pose[:, :, half:] == UNKNOWN).all() and torch.equal(pose[0, :, :half], classes[0, :n, :half])
    assert not any((classes[0, :, :half] == c).any() for c in MOUTH_CLASSES)  # on this corpus the mouth is below the hidden row
    short = replace(batch, frames=batch.frames[:, :5], frame_lengths=torch.tensor([5]))  # a driving video shorter than the audio
    driven = short.pose_source(inputs.n_frames)[0]  # its last frame held, not the audio cut
    assert len(driven) == n and torch.equal(driven[:5], pose[0, :5]) and (driven[5:] == driven[4]).all()
    # SegTalker generates from it: the upper face of the frames moves its masks, the lower face and
    # every other ground-truth field do not.
    torch.manual_seed(0)
    for p in model.parameters():
        p.data.add_(0.05 * torch.randn_like(p))
    model.eval()
    with torch.no_grad():
        reference = model.generate_conditions(inputs)[0]
        lower = batch.frames.clone()
        lower[:, :, half:] = torch.randint_like(lower[:, :, half:], 0, 12)
        again = model.generate_conditions(model.generation_inputs(replace(batch, frames=lower, names=["x"], subjects=["y"])))[0]
        upper = batch.frames.clone()
        upper[:, :, :half, :, 3] = upper[:, :1, :half, :, 3]  # the first frame's pose throughout
        moved = model.generate_conditions(model.generation_inputs(replace(batch, frames=upper)))[0]
    assert torch.equal(reference, again) and not torch.equal(reference, moved)
    mesh = collate([FaceDataModule("synth-tiny", root=str(synth_tiny)).split_dataset("test_seen")[0]])
    with pytest.raises(SealedInputError, match="declares 'pose' as an input, but this dataset's clips have none"):
        mesh.inputs(1, ("pose",))
