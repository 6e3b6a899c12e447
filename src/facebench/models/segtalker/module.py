"""SegTalker training and generation under Lightning: stage `tsg` learns talking segmentation
(audio to masks), stage `sgi` learns to paint masks with the reference frame's region codes, each
with its own optimiser, validation monitor and checkpoint (docs/architecture.md, "Models"). A
facebench reconstruction: CARD.md gives every choice and its source."""

from __future__ import annotations

import os

import torch
from torch.nn import functional as F

from facebench.data.segmentation import (
    MOUTH_CLASSES,
    N_CLASSES,
    UNKNOWN,
    frames_to_working,
    masks_at,
    one_hot_masks,
)
from facebench.data.sequence import Batch, ModelInputs, rgbl, without_lower_face
from facebench.errors import FacebenchError
from facebench.metrics.lpips import ALEXNET_ENV, ALEXNET_FILE, load_lpips
from facebench.models.base import Stage, TalkingFaceModule
from facebench.models.components.arcface import ARCFACE_ENV, ARCFACE_FILE, identity_loss, load_arcface
from facebench.models.segtalker.network import SegTalkerNetwork, classes_at, working_to_frames
from facebench.parsing.unet import dataset_parser, parsing_feature_loss
from facebench.sync.expert import stored_expert
from facebench.sync.scores import FRAMES_PER_WINDOW, window_count

POSE_SOURCES = ("reference", "target", "driving")
# SGI's losses through a frozen network, RGB in [-1, 1] (LPIPS takes [0, 1]).
PAINTER_LOSSES = {
    "lpips": lambda lpips, fake, real: lpips((fake + 1) / 2, (real + 1) / 2).mean(),
    "parsing": parsing_feature_loss,
    "identity": identity_loss,
}
FROZEN_NETWORKS = ("sync", *PAINTER_LOSSES)


def one_hot(labels: torch.Tensor) -> torch.Tensor:
    """(N, R, R) classes -> (N, 12, R, R) one-hot (unknown pixels all zero)."""
    return one_hot_masks(labels).permute(0, 3, 1, 2)


class SegTalker(TalkingFaceModule):
    """SegTalker (arXiv 2409.03605), reconstructed.

    Args:
        image_size: the dataset's frame size (filled in by the runner).
        resolution: the working resolution R; frames are resized to it and the generations back
            (None: the frame size). [ours]
        audio_encoder: the shared audio encoder (default the log-mel front end). [ours]
        tsg_width, tsg_depth, hide_from: TSG's U-Net, and the rows of the pose source hidden (from
            `hide_from` x R down: Wav2Lip's lower half). [ours]
        reference_skip: the reference mask added to TSG's logits with this (learnt) initial weight,
            so TSG starts from copying it (0: off). [ours]
        audio_film: the audio window also scales and shifts every level of TSG's decoder (FiLM),
            not only the bottleneck. [ours]
        tsg_downsample: TSG's U-Net runs at R / tsg_downsample and its logits are resized to R (the
            reference mask is added at R). [ours]
        pose_source: TSG's pose-source mask: "reference" (the clip's first frame, in training and
            at generation: the default protocol gives no driving video), "target" (in training the
            frame's own mask, lower face hidden; generation still uses the reference) or "driving"
            (the paper's reading: the model declares the `pose` condition, a driving video's masks
            with the lower half hidden, and TSG takes each frame's from it, in training from the
            ground truth by the same rule, `Batch.pose_source`). [ours]
        generator: "regions" (SGI: region codes, mask-guided modulation) or "plain" (the ablation:
            an image-to-image U-Net, no region codes). [ours]
        sgi_width, style_dim, levels, disc_width: SGI's and the discriminator's sizes. [ours]
        windows_per_clip: TSG's training windows of 5 frames per clip and step. [ours]
        frames_per_clip: SGI's training frames per clip and step. [ours]
        mouth_weight: the cross-entropy weight of the mouth classes (lips, inside of the mouth); the
            others weigh 1. [ours]
        sync_weight: TSG's sync loss from the dataset's frozen mask-sync expert (0: off). [paper]
            the term; [ours] the weight and its form (the expert's in-sync distance squared).
        colour_jitter: SGI's training colour augmentation: per clip and region, the RGB of the
            reference and of the target frames multiplied by the same random gains in
            [1 - colour_jitter, 1 + colour_jitter], so the region codes must carry the reference's
            colours rather than recognise the few training speakers (0: off). [ours]
        l1_weight, adversarial_weight, r1_weight, r1_every: SGI's reconstruction (L1, RGB in
            [-1, 1]), non-saturating adversarial loss, and R1 penalty on real frames every
            `r1_every` steps (E4S: adversarial 0.01, R1 10). [ours]
        lpips_weight, alexnet: SGI's LPIPS loss (v0.1, AlexNet; facebench.metrics.lpips) and the
            path of torchvision's AlexNet weights it needs (else $FACEBENCH_ALEXNET); E4S weighs it
            0.8. 0: off (the CPU profiles: no ImageNet weights can be assumed there). [paper] the
            term, E4S's weight.
        parsing_weight, face_parser: SGI's face-parsing loss (E4S's: how a frozen face parser's
            encoder sees the painted and the real frame, facebench.parsing.unet) and the path of
            the published CelebAMask-HQ U-Net it reads; without a path, the dataset's own parser,
            trained once on its training split's masks and stored with it [ours]. E4S weighs it
            0.1. 0: off. [reference code] E4S.
        identity_weight, arcface: SGI's identity loss (E4S's multi-scale ArcFace loss,
            facebench.models.components.arcface) and the path of the IR-SE50 weights it needs
            (else $FACEBENCH_ARCFACE). E4S weighs it 0.1. 0: off (the CPU profiles: no such weights
            can be assumed there). [reference code] E4S.
        lr: TSG's Adam learning rate; sgi_lr and betas: SGI's (generator and discriminator). [ours]
    """

    stages = (Stage("tsg", monitor="val/mouth_iou", mode="max"), Stage("sgi", monitor="val/psnr", mode="max"))
    modalities = ("video",)

    def __init__(
        self,
        n_vertices: int = 0,
        n_styles: int = 1,
        fps: float = 25,
        period: int = 25,
        audio_per_frame: int = 1,
        lr: float = 1e-3,
        image_size: int = 64,
        resolution: int | None = None,
        audio_encoder: dict | None = None,
        tsg_width: int = 32,
        tsg_depth: int = 3,
        hide_from: float = 0.5,
        reference_skip: float = 3.0,
        tsg_downsample: int = 1,
        audio_film: bool = True,
        pose_source: str = "reference",
        generator: str = "regions",
        sgi_width: int = 32,
        style_dim: int = 64,
        levels: int = 4,
        disc_width: int = 32,
        windows_per_clip: int = 4,
        frames_per_clip: int = 8,
        mouth_weight: float = 1.0,
        sync_weight: float = 0.1,
        colour_jitter: float = 0.0,
        l1_weight: float = 1.0,
        adversarial_weight: float = 0.01,
        r1_weight: float = 10.0,
        r1_every: int = 4,
        lpips_weight: float = 0.0,
        alexnet: str | None = None,
        parsing_weight: float = 0.0,
        face_parser: str | None = None,
        identity_weight: float = 0.0,
        arcface: str | None = None,
        sgi_lr: float = 2e-3,
        betas: tuple[float, float] = (0.0, 0.99),
    ):
        super().__init__(n_vertices, n_styles, fps, period, audio_per_frame, lr)
        self.save_hyperparameters()
        if pose_source not in POSE_SOURCES:
            raise ValueError(f"pose_source: expected one of {', '.join(POSE_SOURCES)}, found {pose_source!r}")
        if pose_source == "driving":
            self.conditions_used = ("pose",)
        self.image_size, self.resolution = image_size, resolution or image_size
        self.network = SegTalkerNetwork(self.resolution, audio_encoder, tsg_width, tsg_depth, hide_from, sgi_width, style_dim, levels, disc_width, generator,
                                        reference_skip, tsg_downsample, audio_per_frame, audio_film)  # fmt: skip
        self.pose_source, self.windows_per_clip, self.frames_per_clip = pose_source, windows_per_clip, frames_per_clip
        class_weights = torch.ones(N_CLASSES)
        class_weights[list(MOUTH_CLASSES)] = mouth_weight
        self.register_buffer("class_weights", class_weights, persistent=False)
        self.weights = {"sync": sync_weight, "l1": l1_weight, "adversarial": adversarial_weight, "r1": r1_weight, "lpips": lpips_weight, "parsing": parsing_weight,
                        "identity": identity_weight}  # fmt: skip
        self.alexnet, self.face_parser, self.arcface = alexnet, face_parser, arcface
        self.r1_every, self.sgi_lr, self.betas, self.colour_jitter = r1_every, sgi_lr, tuple(betas), colour_jitter
        # The frozen networks of the losses, by loss: the mask-sync expert, LPIPS, the face parser,
        # ArcFace. Outside the module tree: never trained, never saved in a checkpoint.
        self._frozen: dict[str, torch.nn.Module] = {}

    # -- dataset facts ---------------------------------------------------------------------------

    def setup(self, stage: str) -> None:
        """The frozen networks of the losses that are on: the training dataset's mask-sync expert
        and face parser (trained once and stored with it; a published parser where given), LPIPS
        and ArcFace (published weights only: one error without them)."""
        datamodule = getattr(getattr(self, "_trainer", None), "datamodule", None)
        wanted = {name for name, weight in self.weights.items() if weight > 0 and name in FROZEN_NETWORKS} - set(self._frozen)
        if datamodule is not None and "sync" in wanted:  # its network's initial draws move the run's random state, as in every row so far
            self._frozen["sync"] = stored_expert(datamodule, progress=False, view="mask")
        # Building the others draws their random initial weights: on a forked random state, so
        # that turning a loss on changes nothing else in the run (TSG trains exactly as without it).
        published = {"lpips": (self.alexnet or os.environ.get(ALEXNET_ENV), ALEXNET_FILE, "alexnet", ALEXNET_ENV),
                     "identity": (self.arcface or os.environ.get(ARCFACE_ENV), ARCFACE_FILE, "arcface", ARCFACE_ENV)}  # fmt: skip
        missing = [f"{name}_weight is {self.weights[name]}: SGI's {name} loss needs {file}; give its path with --set model.init_args.{argument}=PATH "
                   f"or ${variable}, or turn the loss off with --set model.init_args.{name}_weight=0"
                   for name, (path, file, argument, variable) in published.items() if name in wanted and not path]  # fmt: skip
        if missing:  # all of them in one error, before anything trains
            raise FacebenchError("; ".join(missing))
        with torch.random.fork_rng(devices=[]):
            if datamodule is not None and "parsing" in wanted:
                self._frozen["parsing"] = dataset_parser(datamodule, self.face_parser, progress=False)
            if "lpips" in wanted:
                self._frozen["lpips"] = load_lpips(published["lpips"][0])
            if "identity" in wanted:
                self._frozen["identity"] = load_arcface(published["identity"][0])
        for network in self._frozen.values():
            network.requires_grad_(False)

    def frozen(self, loss: str) -> torch.nn.Module | None:
        """The frozen network of `loss` on the module's device, or None where it is not loaded."""
        network = self._frozen.get(loss)
        if network is not None and next(network.parameters()).device != self.device:
            self._frozen[loss] = network = network.to(self.device)
        return network

    # -- stages ----------------------------------------------------------------------------------

    def in_sgi_stage(self) -> bool:
        return self.stage is not None and self.stage.name == "sgi"

    def set_stage(self, name: str, lr: float | None = None) -> None:
        """`tsg` trains the audio encoder and TSG; `sgi` the painter and the discriminator, with
        manual (alternating) optimisation."""
        super().set_stage(name, lr)
        sgi = self.in_sgi_stage()
        self.network.requires_grad_(False)
        for module in [*self.network.painter_modules(), self.network.discriminator] if sgi else [self.network.audio_encoder, self.network.tsg]:
            module.requires_grad_(True)
        self.automatic_optimization = not sgi

    def configure_optimizers(self):
        if not self.in_sgi_stage():
            return torch.optim.Adam([p for p in self.parameters() if p.requires_grad], lr=self.learning_rate)
        lr = self.stage_lr or self.sgi_lr
        painter = [p for m in self.network.painter_modules() for p in m.parameters()]
        return [torch.optim.Adam(painter, lr=lr, betas=self.betas), torch.optim.Adam(self.network.discriminator.parameters(), lr=lr, betas=self.betas)]

    # -- inputs ----------------------------------------------------------------------------------

    def audio_features(self, audio: torch.Tensor, audio_lengths: torch.Tensor, n_frames: torch.Tensor) -> torch.Tensor:
        """(B, T, C): each frame's window of audio features (a frame's `audio_per_frame` features concatenated)."""
        features = self.network.audio_encoder(audio, audio_lengths, n_frames, self.audio_per_frame)
        return self.network.tsg.audio_windows(features.reshape(len(features), -1, self.audio_per_frame * features.shape[-1]))

    def working(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(N, H, W, 4) frames (stored or float) -> at R: RGB (N, 3, R, R) in [-1, 1], classes
        (N, R, R) and each class's share of each pixel (N, 12, R, R) (`frames_to_working`)."""
        return frames_to_working(rgbl(frames), self.resolution)

    # -- losses ----------------------------------------------------------------------------------

    def losses(self, batch: Batch) -> dict[str, torch.Tensor]:
        return self.painter_losses(batch)[0] if self.in_sgi_stage() else self.segmentation_losses(batch)

    def segmentation_losses(self, batch: Batch) -> dict[str, torch.Tensor]:
        """TSG: per clip, `windows_per_clip` windows of 5 consecutive frames; cross-entropy of every
        frame's mask (ignoring unknown pixels) and the mask-sync expert's in-sync distance squared
        of each window that has a full audio window."""
        features = self.audio_features(batch.audio, batch.audio_lengths, batch.frame_lengths)
        _, _, reference = self.working(batch.templates)
        logits, labels, sync = [], [], []
        for b, length in enumerate(batch.frame_lengths.tolist()):
            starts = torch.randint(0, max(length - FRAMES_PER_WINDOW, 0) + 1, (self.windows_per_clip,)).tolist()
            index = torch.tensor([min(s + k, length - 1) for s in starts for k in range(FRAMES_PER_WINDOW)], device=self.device)
            _, target, target_masks = self.working(batch.frames[b, index])
            if self.pose_source == "driving":  # the `pose` condition's rule, on this window's frames only
                source = masks_at(without_lower_face(batch.frames[b, index, ..., 3]), self.resolution)
            elif self.pose_source == "target":
                source = target_masks
            else:
                source = reference[b : b + 1].expand(len(index), -1, -1, -1)
            logits.append(self.network.tsg(source, reference[b : b + 1].expand(len(index), -1, -1, -1), features[b, index]))
            labels.append(target)
            n_windows = window_count(length, int(batch.audio_lengths[b]))
            sync.append([(w, s) for w, s in enumerate(starts) if s < n_windows])
        logits, labels = torch.cat(logits), torch.cat(labels)
        losses = {"cross_entropy": F.cross_entropy(logits, labels, weight=self.class_weights, ignore_index=UNKNOWN)}
        losses["loss"] = losses["cross_entropy"]
        if self.weights["sync"] > 0 and self.frozen("sync") is not None:
            losses["sync"] = self.sync_loss(logits, sync, batch)
            losses["loss"] = losses["loss"] + self.weights["sync"] * losses["sync"]
        return losses

    def sync_loss(self, logits: torch.Tensor, windows: list[list[tuple[int, int]]], batch: Batch) -> torch.Tensor:
        expert = self.frozen("sync")
        probabilities = logits.softmax(1).permute(0, 2, 3, 1).reshape(-1, FRAMES_PER_WINDOW, *logits.shape[-2:], N_CLASSES)
        lips, sounds = [], []
        for b, chosen in enumerate(windows):
            if not chosen:
                continue
            audio = batch.audio[b, : int(batch.audio_lengths[b])].detach().cpu().numpy()
            mfcc = expert.audio_input(audio, int(batch.frame_lengths[b]))
            lips += [probabilities[b * self.windows_per_clip + w] for w, _ in chosen]
            sounds += [mfcc[s] for _, s in chosen]
        if not lips:
            return logits.new_zeros(())
        video = expert.forward_lip(expert.lip_input(torch.stack(lips)))
        return F.pairwise_distance(video, expert.forward_aud(torch.stack(sounds).to(self.device))).pow(2).mean()

    def painter_batch(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """SGI's training view: `frames_per_clip` random frames per clip, painted from their
        ground-truth masks with their clip's reference frame: (fake, real, masks) at R."""
        ref_rgb, _, ref_masks = self.working(batch.templates)
        rows, clip_of = [], []
        for b, length in enumerate(batch.frame_lengths.tolist()):
            rows.append(batch.frames[b, torch.randint(0, length, (self.frames_per_clip,), device=self.device)])
            clip_of += [b] * self.frames_per_clip
        real, labels, _ = self.working(torch.cat(rows))
        masks = one_hot(labels)  # painted from whole classes, as at generation
        clip_of = torch.tensor(clip_of, device=self.device)
        if self.training and self.colour_jitter > 0:
            gains = 1 + self.colour_jitter * (2 * torch.rand(len(batch), N_CLASSES, 3, device=self.device) - 1)
            # unknown pixels (no class) keep their colour
            recolour = lambda rgb, m, g: ((rgb + 1) * (torch.einsum("nrc,nrhw->nchw", g, m) + 1 - m.sum(1, keepdim=True)) - 1).clamp(-1, 1)  # noqa: E731
            ref_rgb, real = recolour(ref_rgb, ref_masks, gains), recolour(real, masks, gains[clip_of])
        codes = self.network.style_codes(ref_rgb, ref_masks)
        fake = self.network.paint(masks, None if codes is None else codes[clip_of], ref_rgb[clip_of], ref_masks[clip_of])
        return fake, real, masks

    def painter_losses(self, batch: Batch) -> tuple[dict[str, torch.Tensor], tuple]:
        """L1, then each frozen network's loss that is on (LPIPS, face parsing, identity)."""
        fake, real, masks = self.painter_batch(batch)
        losses = {"l1": (fake - real).abs().mean()}
        losses["loss"] = self.weights["l1"] * losses["l1"]
        for name, loss in PAINTER_LOSSES.items():
            if self.weights[name] > 0:
                network = self.frozen(name)
                if network is None:
                    raise FacebenchError(f"{name}_weight is {self.weights[name]}: its network is loaded in setup(), from the training "
                                         "datamodule (train through the runner or a Trainer)")  # fmt: skip
                losses[name] = loss(network, fake, real)
                losses["loss"] = losses["loss"] + self.weights[name] * losses[name]
        return losses, (fake, real, masks)

    def training_step(self, batch: Batch, batch_idx: int):
        if not self.in_sgi_stage():
            return super().training_step(batch, batch_idx)
        generator_opt, discriminator_opt = self.optimizers()
        losses, (fake, real, masks) = self.painter_losses(batch)
        discriminator = self.network.discriminator
        # Discriminator: non-saturating loss, R1 on the real frames every `r1_every` steps (lazy, scaled up).
        d_loss = F.softplus(discriminator(fake.detach(), masks)).mean() + F.softplus(-discriminator(real, masks)).mean()
        if self.weights["r1"] > 0 and batch_idx % self.r1_every == 0:
            real_in = real.detach().requires_grad_(True)
            (gradient,) = torch.autograd.grad(discriminator(real_in, masks).sum(), real_in, create_graph=True)
            losses["r1"] = gradient.pow(2).flatten(1).sum(1).mean()
            d_loss = d_loss + self.weights["r1"] / 2 * self.r1_every * losses["r1"]
        discriminator_opt.zero_grad()
        self.manual_backward(d_loss)
        discriminator_opt.step()
        # Generator: reconstruction + adversarial.
        losses["adversarial"] = F.softplus(-discriminator(fake, masks)).mean()
        g_loss = losses["loss"] + self.weights["adversarial"] * losses["adversarial"]
        generator_opt.zero_grad()
        self.manual_backward(g_loss)
        generator_opt.step()
        losses["discriminator"] = d_loss.detach()
        self.log_dict({f"train/{k}": v.detach() for k, v in losses.items() if k != "loss"}, batch_size=len(batch))
        self.log("train/loss", g_loss.detach(), batch_size=len(batch), prog_bar=True)

    # -- generation ------------------------------------------------------------------------------

    def segment(self, inputs: ModelInputs, chunk: int = 64) -> list[torch.Tensor]:
        """TSG alone: per clip, the mask logits (T, 12, R, R) of its frames, with the declared
        `pose` condition as the pose source (`pose_source: driving`), else the reference mask."""
        _, _, reference = self.working(inputs.templates)
        features = self.audio_features(inputs.audio, inputs.audio_lengths, inputs.n_frames)
        driving = inputs.condition("pose") if self.pose_source == "driving" else None
        logits = []
        for b, length in enumerate(inputs.n_frames.tolist()):
            parts = []
            for start in range(0, length, chunk):
                n = min(chunk, length - start)
                ref = reference[b : b + 1].expand(n, -1, -1, -1)
                source = ref if driving is None else masks_at(driving[b, start : start + n], self.resolution)
                parts.append(self.network.tsg(source, ref, features[b, start : start + n]))
            logits.append(torch.cat(parts))
        return logits

    def paint(self, labels: torch.Tensor, reference: torch.Tensor, codes: torch.Tensor | None = None, classes: torch.Tensor | None = None,
              chunk: int = 64) -> torch.Tensor:  # fmt: skip
        """Classes (T, R, R) painted with one reference frame (H, W, 4) or given region codes (12,
        n_codes, style_dim) -> frames (T, H, W, 4) at the reference's size, whose class channel is
        `classes` (T, H, W) where given, else `labels` resized."""
        ref_rgb, _, ref_masks = self.working(reference[None])
        if codes is None:
            codes = self.network.style_codes(ref_rgb, ref_masks)[0] if self.network.generator_kind == "regions" else None
        out = []
        for start in range(0, len(labels), chunk):
            part = labels[start : start + chunk]
            n = len(part)
            rgb = self.network.paint(one_hot(part), None if codes is None else codes[None].expand(n, -1, -1, -1),
                                     ref_rgb.expand(n, -1, -1, -1), ref_masks.expand(n, -1, -1, -1))  # fmt: skip
            out.append(working_to_frames(rgb, part if classes is None else classes[start : start + chunk], reference.shape[0]))
        return torch.cat(out)

    def generate(self, inputs: ModelInputs, seed: int | None = None) -> torch.Tensor:
        """TSG's masks from the audio and the reference mask, painted by SGI with the reference
        frame's region codes; the class channel is the logits' argmax at the frames' size. Frames
        past a clip's length repeat its reference frame."""
        templates = inputs.templates
        out = templates[:, None].repeat(1, inputs.max_frames, 1, 1, 1)
        for b, logits in enumerate(self.segment(inputs)):
            out[b, : len(logits)] = self.paint(logits.argmax(1), templates[b], classes=classes_at(logits, templates.shape[1]))
        return out
