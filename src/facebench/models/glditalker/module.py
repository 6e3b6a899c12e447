"""GLDiTalker training and generation under Lightning: stage `vqvae` learns the graph-enhanced
quantised motion space, stage `denoiser` learns latent diffusion from audio with it frozen (the
stages: facebench.models.components.codebook_stages). A facebench reconstruction: see CARD.md for
every choice and its source."""

from __future__ import annotations

import inspect

import torch

from facebench.data.sequence import Batch, ModelInputs, frame_mask
from facebench.models.base import Stage, TalkingFaceModule
from facebench.models.components.audio_encoders import build_audio_encoder
from facebench.models.components.codebook_stages import CodebookStages
from facebench.models.components.losses import masked_mse, masked_velocity_mse
from facebench.models.glditalker.network import GLDiTalkerNetwork, GraphQuantisedAutoEncoder, LatentDenoiser


class GLDiTalker(CodebookStages, TalkingFaceModule):
    """GLDiTalker (Lin et al., IJCAI 2025; arXiv 2408.01826), reconstructed.

    Args:
        level_factors: the mesh pyramid's decimation factor per level (COMA's 4 per level). [ours]
        level_sizes: vertices per pyramid level, the mesh's first; filled in by the runner from the
            dataset's mesh (`dataset_facts`).
        channels, spiral_length, spiral_dilation: the spiral blocks, one per level (SpiralNet++'s
            32, 32, 32, 64 and 9, 1). [ours]
        hidden_size, vq_layers, vq_heads, intermediate_size: the temporal transformers (CodeTalker's). [ours]
        face_quan_num, zquant_dim, n_embed, beta: the codebook (CodeTalker's VOCASET 16 x 64, 256, 0.25). [ours]
        instance_norm: the instance norm in the decoder (CodeTalker's has it; off by default here,
            it removes what is constant through a clip). [ours]
        denoiser_dim, denoiser_layers, denoiser_heads, dropout: the denoising transformer. [ours]
        train_steps, beta_schedule, beta_start, beta_end: the DDPM noise schedule (diffusers'
            DDPMScheduler; DiffSpeaker's 1000 steps, scaled-linear 0.00085 to 0.012). [ours]
        prediction_type: what the denoiser predicts, "sample" (the clean latents) or "epsilon". [ours]
        sampling_steps: DDIM steps at generation (eta 0: deterministic given the initial noise). [ours]
        quantize_samples: sampled latents snapped to the codebook before decoding. [ours]
        latent_scale: the latents are divided by it for diffusion (unit variance, as latent
            diffusion's scale factor); None: the standard deviation of the first training batch's. [ours]
        latent_weight, velocity_weight: stage 2's latent reconstruction and velocity losses
            ([paper] the terms; [ours] the weights).
        quant_loss_weight, vq_lr, vq_weight_decay, vq_lr_step, vq_lr_gamma: stage 1 (CodeTalker's). [ours]
        offset_scale: dataset units per network unit of the offsets. [ours]
    """

    stages = (CodebookStages.vqvae_stage, Stage("denoiser"))
    stochastic = True

    def __init__(
        self,
        n_vertices: int,
        n_styles: int,
        fps: float = 30,
        period: int = 30,
        audio_per_frame: int = 1,
        lr: float = 1e-4,
        level_factors: tuple[int, ...] = (4, 4, 4, 4),
        level_sizes: list[int] | None = None,
        channels: tuple[int, ...] = (32, 32, 32, 64),
        spiral_length: int = 9,
        spiral_dilation: int = 1,
        hidden_size: int = 1024,
        vq_layers: int = 6,
        vq_heads: int = 8,
        intermediate_size: int = 1536,
        face_quan_num: int = 16,
        zquant_dim: int = 64,
        n_embed: int = 256,
        beta: float = 0.25,
        instance_norm: bool = False,
        denoiser_dim: int = 512,
        denoiser_layers: int = 6,
        denoiser_heads: int = 8,
        dropout: float = 0.1,
        audio_encoder: dict | None = None,
        train_steps: int = 1000,
        beta_schedule: str = "scaled_linear",
        beta_start: float = 0.00085,
        beta_end: float = 0.012,
        prediction_type: str = "sample",
        sampling_steps: int = 50,
        quantize_samples: bool = True,
        latent_scale: float | None = None,
        latent_weight: float = 1.0,
        velocity_weight: float = 1.0,
        quant_loss_weight: float = 1.0,
        vq_lr: float = 1e-4,
        vq_weight_decay: float = 0.01,
        vq_lr_step: int | None = None,
        vq_lr_gamma: float = 0.5,
        offset_scale: float = 1.0,
    ):
        super().__init__(n_vertices, n_styles, fps, period, audio_per_frame, lr)
        from diffusers import DDPMScheduler

        if level_sizes is None:
            raise ValueError("level_sizes: expected the vertices of each mesh pyramid level (the runner fills them in from the "
                             "dataset's mesh: GLDiTalker.dataset_facts), found none")  # fmt: skip
        if len(level_sizes) != len(level_factors) + 1 or level_sizes[0] != n_vertices:
            raise ValueError(f"level_sizes: expected {len(level_factors) + 1} levels starting with the mesh's {n_vertices} vertices, found {level_sizes}")
        self.save_hyperparameters()
        autoencoder = GraphQuantisedAutoEncoder(list(level_sizes), list(channels), spiral_length, hidden_size, vq_layers, vq_heads,
                                                intermediate_size, face_quan_num, zquant_dim, n_embed, beta, instance_norm)  # fmt: skip
        encoder = build_audio_encoder(**(audio_encoder or {"name": "logmel"}))
        denoiser = LatentDenoiser(face_quan_num * zquant_dim, encoder.output_dim, audio_per_frame, n_styles, denoiser_dim, denoiser_layers,
                                  denoiser_heads, dropout)  # fmt: skip
        self.network = GLDiTalkerNetwork(autoencoder, encoder, denoiser)
        self.noise_scheduler = DDPMScheduler(num_train_timesteps=train_steps, beta_schedule=beta_schedule, beta_start=beta_start,
                                             beta_end=beta_end, prediction_type=prediction_type, clip_sample=False)  # fmt: skip
        self.sampling_steps, self.quantize_samples = sampling_steps, quantize_samples
        # Saved with the weights: fixed by the first training batch when not configured.
        self.register_buffer("latent_scale", torch.tensor(float(latent_scale or 0.0)))
        self.level_factors, self.spiral_length, self.spiral_dilation = tuple(level_factors), spiral_length, spiral_dilation
        self.offset_scale = offset_scale
        self.weights = {"quantization": quant_loss_weight, "latent": latent_weight, "velocity": velocity_weight}
        self.vq_lr, self.vq_weight_decay, self.vq_lr_step, self.vq_lr_gamma = vq_lr, vq_weight_decay, vq_lr_step, vq_lr_gamma

    # -- the mesh ---------------------------------------------------------------------------------

    @classmethod
    def dataset_facts(cls, data, init_args: dict) -> dict:
        """The vertices of each level of the dataset mesh's pyramid (computed once, cached beside the dataset)."""
        factors = tuple(init_args.get("level_factors", inspect.signature(cls).parameters["level_factors"].default))
        return {"level_sizes": [data.n_vertices, *(len(level.kept) for level in data.topology.pyramid(factors))]}

    def setup(self, stage: str) -> None:
        datamodule = getattr(self.trainer, "datamodule", None)
        if datamodule is not None:
            self.set_topology(datamodule.topology)

    def set_topology(self, topology) -> None:
        """Each pyramid level's spirals and the vertices each down-sampling keeps."""
        levels = topology.pyramid(self.level_factors)
        meshes = [topology] + [None] * len(levels)
        for i, level in enumerate(levels):
            meshes[i + 1] = meshes[i].coarser(level)
        spirals = [torch.as_tensor(mesh.spirals(self.spiral_length, self.spiral_dilation), device=self.device) for mesh in meshes[:-1]]
        kept = [torch.as_tensor(level.kept, device=self.device) for level in levels]
        self.network.autoencoder.spatial.set_topology(spirals, kept)

    # -- losses -----------------------------------------------------------------------------------

    def scaled_latents(self, batch: Batch) -> torch.Tensor:
        """The ground truth's quantised latents (B, T, H*C) divided by `latent_scale` (fixed by the
        first training batch when not configured: the standard deviation over its real frames)."""
        latents = self.quantised_targets(self.target_offsets(batch), batch.frame_lengths.tolist()).flatten(2)
        if float(self.latent_scale) == 0.0:
            std = latents[frame_mask(batch.frame_lengths, latents.shape[1])].std().clamp(min=1e-8)
            if not self.training:  # a validation before any training: this batch's, not kept
                return latents / std
            self.latent_scale.fill_(float(std))
        return latents / self.latent_scale

    def denoising_losses(self, batch: Batch) -> dict[str, torch.Tensor]:
        """Stage 2: noise the clean latents at a uniformly drawn step, denoise them from audio and
        style; MSE to the clean latents (or to the noise, `prediction_type: epsilon`) and to their
        frame-to-frame velocity, over each clip's real frames."""
        clean = self.scaled_latents(batch)
        noise = torch.randn_like(clean)
        steps = torch.randint(0, self.noise_scheduler.config.num_train_timesteps, (len(clean),), device=clean.device)
        noisy = self.noise_scheduler.add_noise(clean, noise, steps)
        audio = self.network.audio_encoder(batch.audio, batch.audio_lengths, batch.frame_lengths, self.audio_per_frame)
        padding = ~frame_mask(batch.frame_lengths, clean.shape[1])
        predicted = self.network.denoiser(noisy, steps, audio, batch.style, padding)
        target = clean if self.noise_scheduler.config.prediction_type == "sample" else noise
        latent = masked_mse(predicted, target, batch.frame_lengths)
        velocity = masked_velocity_mse(predicted, target, batch.frame_lengths)
        return {"latent": latent, "velocity": velocity, "loss": self.weights["latent"] * latent + self.weights["velocity"] * velocity}

    def losses(self, batch: Batch) -> dict[str, torch.Tensor]:
        if self.in_vqvae_stage():
            return self.reconstruction_losses(batch)
        return self.denoising_losses(batch)

    # -- generation -------------------------------------------------------------------------------

    def sample_latents(self, audio: torch.Tensor, style: torch.Tensor, lengths: torch.Tensor, n_frames: int, seed: int | None) -> torch.Tensor:
        """DDIM from Gaussian noise (drawn from `seed`; the global generator if None) to the clean
        latents (B, n_frames, H*C), in the auto-encoder's units."""
        from diffusers import DDIMScheduler

        width = self.network.denoiser.out.out_features
        generator = None if seed is None else torch.Generator().manual_seed(int(seed))
        latents = torch.randn(len(lengths), n_frames, width, generator=generator).to(self.device, self.dtype)
        sampler = DDIMScheduler.from_config(self.noise_scheduler.config)
        sampler.set_timesteps(self.sampling_steps)
        padding = ~frame_mask(lengths, n_frames)
        for step in sampler.timesteps:
            predicted = self.network.denoiser(latents, step.expand(len(lengths)).to(self.device), audio, style, padding)
            latents = sampler.step(predicted, step, latents, eta=0.0).prev_sample
        scale = float(self.latent_scale) or 1.0
        return latents * scale

    def generate(self, inputs: ModelInputs, seed: int | None = None) -> torch.Tensor:
        """Latents sampled from audio and style for the frame count the audio implies, snapped to
        the codebook (`quantize_samples`) and decoded, each clip at its length."""
        audio = self.network.audio_encoder(inputs.audio, inputs.audio_lengths, inputs.n_frames, self.audio_per_frame)
        latents = self.network.autoencoder.components(self.sample_latents(audio, inputs.style, inputs.n_frames, inputs.max_frames, seed))
        offsets = self.decode_latents(latents, inputs.n_frames.tolist(), self.quantize_samples)
        return self.vertices_from_offsets(inputs.templates, offsets)
