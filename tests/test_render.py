"""Headless rendering: videos with the right frames, rate, size and sound, change only where the
mesh moves, the software fallback, no file on failure; `facebench animate` on real speech and
`facebench render` comparisons."""

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from facebench.cli import main
from facebench.data.audio import frames_from_audio, load_audio
from facebench.data.synth.mesh import build_face
from facebench.render import renderer as rendering
from facebench.render.renderer import Camera, RenderError, SoftwareRenderer, make_renderer
from facebench.render.video import video_info, write_video

SPEECH = Path(__file__).parent / "data" / "speech.wav"  # espeak-ng -v en -s 150, "The quick brown fox jumps over the lazy dog."


@pytest.fixture(scope="module")
def face():
    return build_face(1000)


def jaw_sequence(face, frames: int = 24) -> np.ndarray:
    return np.stack([face.vertices + 0.8 * np.sin(t / 3) ** 2 * face.blendshapes[0] for t in range(frames)])


@pytest.mark.parametrize("backend", ["gl", "software"])
def test_a_video_has_the_frames_rate_size_and_sound(face, backend, tmp_path):
    motion = jaw_sequence(face)
    render = make_renderer(face.faces, face.vertices, 128, backend)
    sound = np.random.default_rng(0).normal(size=int(len(motion) / 30 * 16000)).astype(np.float32) * 0.1
    info = video_info(write_video((render.render(v) for v in motion), tmp_path / "v.mp4", 30, sound))
    assert info["frames"] == len(motion) and info["fps"] == 30 and info["size"] == (128, 128)
    assert info["audio_seconds"] == pytest.approx(len(motion) / 30, abs=0.05)


@pytest.mark.parametrize("backend", ["gl", "software"])
def test_frames_change_where_the_mesh_moves_and_not_elsewhere(face, backend):
    render = make_renderer(face.faces, face.vertices, 192, backend)
    still, moved = render.render(face.vertices), render.render(face.vertices + 0.8 * face.blendshapes[0])  # the jaw opens
    changed = np.abs(still.astype(int) - moved.astype(int)).sum(-1) > 24
    # The jaw moves the lower face only: rows above the mouth (with a margin) do not change.
    mouth = face.vertices[face.regions["lips"]]
    top_of_mouth = Camera(face.vertices, 192).to_clip(mouth)[:, 1].max()
    mouth_row = int((1 - top_of_mouth) / 2 * 192)
    assert changed[mouth_row:].sum() > 100 and changed[: mouth_row - 12].sum() == 0


def test_without_gl_the_software_renderer_is_chosen_and_said(face, monkeypatch):
    def no_context(*args, **kwargs):
        raise RenderError("OpenGL: expected an EGL context, found none")

    monkeypatch.setattr(rendering, "GLRenderer", no_context)
    said = []
    render = make_renderer(face.faces, face.vertices, 64, say=said.append)
    assert isinstance(render, SoftwareRenderer) and len(said) == 1 and "software" in said[0]
    with pytest.raises(RenderError, match="EGL"):
        make_renderer(face.faces, face.vertices, 64, "gl")


def test_a_failed_render_writes_no_file(face, tmp_path):
    render = make_renderer(face.faces, face.vertices, 64, "software")

    def frames():
        yield render.render(face.vertices)
        raise RuntimeError("the mesh went away")

    with pytest.raises(RenderError, match="ffmpeg failed|the mesh went away"):
        write_video(frames(), tmp_path / "v.mp4", 30)
    assert not list(tmp_path.iterdir())


@pytest.mark.slow
def test_animate_real_speech_with_a_trained_run(short_run, synth_tiny, tmp_path, capsys):
    """Speech none of the synthetic voices resembles: a .npy of the length the audio implies, and an
    MP4 of as many frames with the audio; an mp3 of it gives the same length."""
    out, rows = short_run
    run = out / "runs" / rows[0]["run_dir"]
    main(["animate", "--run", str(run), "--audio", str(SPEECH), "--style", "S01", "--root", str(synth_tiny), "--out", str(tmp_path),
          "--size", "128"])  # fmt: skip
    frames = frames_from_audio(len(load_audio(SPEECH)), 30, 1)
    motion = np.load(tmp_path / "speech.npy")
    assert motion.shape == (frames, 306 * 3) and np.isfinite(motion).all()
    info = video_info(tmp_path / "speech.mp4")
    assert info["frames"] == frames and info["audio_seconds"] == pytest.approx(len(load_audio(SPEECH)) / 16000, abs=0.1)
    import imageio_ffmpeg

    mp3 = tmp_path / "speech.mp3"
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-i", str(SPEECH), str(mp3)], check=True)
    main(["animate", "--run", str(run), "--audio", str(mp3), "--style", "all", "--root", str(synth_tiny), "--out", str(tmp_path / "all"), "--no-video"])
    assert len(list((tmp_path / "all").glob("speech_condition_S0*.npy"))) == 4
    assert abs(len(np.load(tmp_path / "all" / "speech_condition_S01.npy")) - frames) <= 2  # mp3 framing may add a frame or two


@pytest.mark.slow
def test_render_compares_predictions_with_the_ground_truth(short_run, synth_tiny, tmp_path):
    out, rows = short_run
    run = out / "runs" / rows[0]["run_dir"]
    prediction = sorted((run / "predictions" / "test_seen").glob("*.npy"))[0]
    video = tmp_path / "compare.mp4"
    main(["render", "--data", "synth-tiny", "--root", str(synth_tiny), "--clip", prediction.stem, "--pred", str(prediction), "--name", "faceformer",
          "--heatmap", "--size", "96", "--out", str(video)])  # fmt: skip
    info = video_info(video)
    assert info["frames"] == len(np.load(prediction)) and info["size"][0] > 3 * 96  # truth, model, its error, colour bar
    shutil.rmtree(run / "renders", ignore_errors=True)
    main(["render", "--run", str(run), "--root", str(synth_tiny), "--size", "96"])
    assert len(list((run / "renders").glob("*.mp4"))) == 4  # two clips of each of the two test splits
