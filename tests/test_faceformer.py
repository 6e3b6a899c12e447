"""FaceFormer against the official definitions: temporal masks and encodings, decoder and naming,
batching with padding, clips beyond 600 frames, and incremental decoding."""

import math

import lightning as L
import pytest
import torch
from torch import nn

from facebench.data.sequence import Sequence, collate
from facebench.errors import FacebenchError
from facebench.models.components.audio_encoders import PretrainedSpeechEncoder
from facebench.models.components.periodic import (
    PeriodicPositionalEncoding,
    alibi_slopes,
    alignment_mask,
    periodic_bias_mask,
)
from facebench.models.faceformer import FaceFormer, FaceFormerNetwork

V = 12


def test_alibi_slopes_for_four_heads():
    assert alibi_slopes(4) == [0.25, 0.0625, 0.015625, 0.00390625]


def test_periodic_bias_mask_matches_the_formula():
    mask = periodic_bias_mask(4, 70, period=30)
    slopes = alibi_slopes(4)
    for i, j in [(0, 0), (29, 0), (30, 0), (65, 3), (69, 69), (40, 10)]:
        for h in range(4):
            assert mask[h, i, j] == pytest.approx(slopes[h] * -math.floor((i - j) / 30))
    assert torch.isinf(mask[:, 3, 4]).all() and (mask[:, 3, 4] < 0).all()


def test_alignment_masks_for_vocaset_and_biwi():
    one = alignment_mask(3, 3, 1)
    assert (~one).nonzero().tolist() == [[0, 0], [1, 1], [2, 2]]
    two = alignment_mask(3, 6, 2)
    assert (~two).nonzero().tolist() == [[0, 0], [0, 1], [1, 2], [1, 3], [2, 4], [2, 5]]


def official_ppe(d_model, period, max_seq_len):
    """The official table: sinusoids of period positions, tiled to max_seq_len."""
    pe = torch.zeros(period, d_model)
    position = torch.arange(0, period).unsqueeze(1).float()
    div_term = torch.exp(torch.arange(0, d_model, 2).float() * (-math.log(10000.0) / d_model))
    pe[:, 0::2] = torch.sin(position * div_term)
    pe[:, 1::2] = torch.cos(position * div_term)
    return pe.repeat(max_seq_len // period + 1, 1)[:max_seq_len]


def test_periodic_positional_encoding_tiles_the_period_without_a_cap():
    ppe = PeriodicPositionalEncoding(16, period=25, dropout=0.0)
    torch.testing.assert_close(ppe(torch.zeros(1, 600, 16))[0], official_ppe(16, 25, 600))
    long = ppe(torch.zeros(1, 900, 16))[0]
    torch.testing.assert_close(long[700], long[700 % 25])


def make_model(**kwargs):
    torch.manual_seed(0)
    model = FaceFormer(V, n_styles=3, feature_dim=16, audio_encoder={"name": "logmel", "output_dim": 8, "layers": 2}, **kwargs)
    # The official output layer starts at zero; give it weights so frames depend on everything.
    nn.init.normal_(model.network.vertice_map_r.weight, std=0.05)
    return model.eval()


def clip(frames, seed, style=0):
    g = torch.Generator().manual_seed(seed)
    return Sequence(name=f"c{seed}", subject="s", audio=torch.randn(frames * 16000 // 30, generator=g),
                    vertices=torch.randn(frames, V, 3, generator=g) * 0.01, template=torch.randn(V, 3, generator=g),
                    fps=30, style=style)  # fmt: skip


def test_parameter_names_are_the_official_ones():
    names = set(make_model().network.state_dict())
    for official in ("audio_feature_map.weight", "vertice_map.weight", "vertice_map_r.bias", "obj_vector.weight",
                     "transformer_decoder.layers.0.self_attn.in_proj_weight", "transformer_decoder.layers.0.multihead_attn.out_proj.weight",
                     "transformer_decoder.layers.0.linear1.weight", "transformer_decoder.layers.0.norm3.bias"):  # fmt: skip
        assert official in names
    assert make_model().network.obj_vector.bias is None


def test_decoder_is_torchs_decoder_with_official_shape():
    decoder = make_model().network.transformer_decoder
    layer = decoder.layers[0]
    assert isinstance(decoder, nn.TransformerDecoder) and len(decoder.layers) == 1
    assert layer.self_attn.num_heads == 4 and layer.linear1.out_features == 32 and not layer.norm_first
    assert layer.activation is torch.nn.functional.relu or layer.activation_relu_or_gelu == 1


def official_wav2vec2_shapes(encoder: dict) -> dict[str, tuple]:
    """The audio encoder's keys in FaceFormer's and CodeTalker's official checkpoints: transformers
    4.6.1's Wav2Vec2Model at `audio_encoder.*` (group-norm feature extractor, weight-normed
    positional convolution saved as weight_g / weight_v, masked_spec_embed always built)."""
    h, inner, layers = encoder["hidden_size"], encoder["intermediate_size"], encoder["num_hidden_layers"]
    conv, kernels = encoder["conv_dim"], (10, 3, 3, 3, 3, 2, 2)  # the wav2vec2-base kernel widths
    k, groups = encoder["num_conv_pos_embeddings"], encoder["num_conv_pos_embedding_groups"]
    shapes = {"audio_encoder.masked_spec_embed": (h,)}
    for i, (c, w) in enumerate(zip(conv, kernels)):
        shapes[f"audio_encoder.feature_extractor.conv_layers.{i}.conv.weight"] = (c, 1 if i == 0 else conv[i - 1], w)
    shapes |= {"audio_encoder.feature_extractor.conv_layers.0.layer_norm.weight": (conv[0],),
               "audio_encoder.feature_extractor.conv_layers.0.layer_norm.bias": (conv[0],),
               "audio_encoder.feature_projection.layer_norm.weight": (conv[-1],), "audio_encoder.feature_projection.layer_norm.bias": (conv[-1],),
               "audio_encoder.feature_projection.projection.weight": (h, conv[-1]), "audio_encoder.feature_projection.projection.bias": (h,),
               "audio_encoder.encoder.pos_conv_embed.conv.weight_g": (1, 1, k),
               "audio_encoder.encoder.pos_conv_embed.conv.weight_v": (h, h // groups, k),
               "audio_encoder.encoder.pos_conv_embed.conv.bias": (h,),
               "audio_encoder.encoder.layer_norm.weight": (h,), "audio_encoder.encoder.layer_norm.bias": (h,)}  # fmt: skip
    for n in range(layers):
        layer = f"audio_encoder.encoder.layers.{n}."
        for proj in ("k_proj", "v_proj", "q_proj", "out_proj"):
            shapes |= {f"{layer}attention.{proj}.weight": (h, h), f"{layer}attention.{proj}.bias": (h,)}
        shapes |= {f"{layer}layer_norm.weight": (h,), f"{layer}layer_norm.bias": (h,),
                   f"{layer}feed_forward.intermediate_dense.weight": (inner, h), f"{layer}feed_forward.intermediate_dense.bias": (inner,),
                   f"{layer}feed_forward.output_dense.weight": (h, inner), f"{layer}feed_forward.output_dense.bias": (h,),
                   f"{layer}final_layer_norm.weight": (h,), f"{layer}final_layer_norm.bias": (h,)}  # fmt: skip
    return shapes


def official_checkpoint_shapes(encoder: dict, n_vertices: int, n_styles: int, d: int, period: int) -> dict[str, tuple]:
    """Keys and shapes of `Faceformer.state_dict()` as the official code saves it (EvelynFan/FaceFormer
    @ dfaea81, `faceformer.py`, `torch.save(model.state_dict())` in `main.py`), written out here from
    the official module definitions, not derived from facebench's model: the audio encoder as
    `official_wav2vec2_shapes`, `PPE.pe` a persistent buffer tiled to max_seq_len 600, the decoder
    torch's TransformerDecoderLayer."""
    h = encoder["hidden_size"]
    shapes = official_wav2vec2_shapes(encoder)
    shapes |= {"audio_feature_map.weight": (d, h), "audio_feature_map.bias": (d,), "vertice_map.weight": (d, 3 * n_vertices),
               "vertice_map.bias": (d,), "PPE.pe": (1, (600 // period + 1) * period, d)}  # fmt: skip
    shapes |= official_decoder_shapes(d, 1)
    shapes |= {"vertice_map_r.weight": (3 * n_vertices, d), "vertice_map_r.bias": (3 * n_vertices,), "obj_vector.weight": (d, n_styles)}
    return shapes


def official_decoder_shapes(d: int, layers: int) -> dict[str, tuple]:
    """torch's TransformerDecoder of `layers` TransformerDecoderLayer(d, feedforward 2d), as both
    official codes build it."""
    shapes = {}
    for n in range(layers):
        decoder = f"transformer_decoder.layers.{n}."
        for attention in ("self_attn", "multihead_attn"):
            shapes |= {f"{decoder}{attention}.in_proj_weight": (3 * d, d), f"{decoder}{attention}.in_proj_bias": (3 * d,),
                       f"{decoder}{attention}.out_proj.weight": (d, d), f"{decoder}{attention}.out_proj.bias": (d,)}  # fmt: skip
        shapes |= {f"{decoder}linear1.weight": (2 * d, d), f"{decoder}linear1.bias": (2 * d,), f"{decoder}linear2.weight": (d, 2 * d),
                   f"{decoder}linear2.bias": (d,), **{f"{decoder}norm{i}.{p}": (d,) for i in (1, 2, 3) for p in ("weight", "bias")}}  # fmt: skip
    return shapes


def official_checkpoint(encoder: dict, period: int = 30, d: int = 16) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(7)
    state = {key: torch.randn(shape, generator=g) for key, shape in official_checkpoint_shapes(encoder, V, 3, d, period).items()}
    state["PPE.pe"] = official_ppe(d, period, 600)[None]
    return state


def test_an_official_checkpoint_loads(tiny_encoder_config):
    """A state dict in the official naming and shapes loads, every value where the official code has it."""
    state = official_checkpoint(tiny_encoder_config)
    network = FaceFormerNetwork(PretrainedSpeechEncoder("wav2vec2", config=tiny_encoder_config), V, 3, feature_dim=16)
    network.load_official_state_dict(state)
    ours = network.state_dict()
    for key, value in state.items():
        if key == "PPE.pe":
            continue
        mine = key.replace("audio_encoder.", "audio_encoder.model.", 1)
        mine = mine.replace("conv.weight_g", "conv.parametrizations.weight.original0").replace("conv.weight_v", "conv.parametrizations.weight.original1")
        assert torch.equal(ours[mine], value), key
    # The positional convolution's effective weight is weight norm's g * v / ||v|| (norm over all but dim 2).
    conv = network.audio_encoder.model.encoder.pos_conv_embed.conv
    g, v = state["audio_encoder.encoder.pos_conv_embed.conv.weight_g"], state["audio_encoder.encoder.pos_conv_embed.conv.weight_v"]
    torch.testing.assert_close(conv.weight, g * v / v.norm(dim=(0, 1), keepdim=True))


def test_an_official_checkpoint_of_another_configuration_is_refused(tiny_encoder_config):
    network = FaceFormerNetwork(PretrainedSpeechEncoder("wav2vec2", config=tiny_encoder_config), V, 3, feature_dim=16)
    with pytest.raises(FacebenchError, match="PPE.pe tiling a period of 30"):
        network.load_official_state_dict(official_checkpoint(tiny_encoder_config, period=25))
    state = official_checkpoint(tiny_encoder_config)
    state["vertice_map.weight"] = torch.zeros(16, 3 * (V + 1))
    with pytest.raises(FacebenchError, match="vertice_map.weight"):
        network.load_official_state_dict(state)
    del state["obj_vector.weight"]
    with pytest.raises(FacebenchError, match="missing \\['obj_vector.weight'\\]"):
        network.load_official_state_dict(state)


@torch.no_grad()
def test_incremental_decoding_equals_full_recomputation():
    model = make_model()
    batch = collate([clip(40, 1, style=2)])
    features = model.network.encode_audio(batch.audio, batch.audio_lengths, batch.frame_lengths)
    one_hot = model.style_one_hot(batch.style)
    incremental = model.network.autoregressive(features, 40, one_hot, incremental=True)
    full = model.network.autoregressive(features, 40, one_hot, incremental=False)
    torch.testing.assert_close(incremental, full, atol=1e-5, rtol=1e-4)
    assert incremental.abs().max() > 1e-3  # the frames are not trivially zero


@torch.no_grad()
def test_clips_beyond_600_frames():
    model = make_model()
    long = collate([clip(650, 3)])
    inputs = model.generation_inputs(long)
    out = model.generate(inputs)
    assert out.shape == (1, int(inputs.n_frames[0]), V, 3) and out.shape[1] > 640 and torch.isfinite(out).all()
    features = model.network.encode_audio(long.audio, long.audio_lengths, long.frame_lengths)
    full = model.network.autoregressive(features, 650, model.style_one_hot(long.style), incremental=False)
    torch.testing.assert_close(model.offsets(long, teacher_forcing=False), full, atol=1e-5, rtol=1e-4)
    assert model.losses(long)["loss"].isfinite()  # teacher-forced path at 650 frames too


@pytest.mark.parametrize("teacher_forcing", [False, True])
def test_a_batch_equals_its_clips_one_at_a_time(teacher_forcing):
    model = make_model(teacher_forcing=teacher_forcing)
    clips = [clip(20, 4, style=0), clip(13, 5, style=1), clip(7, 6, style=2)]
    batch = collate(clips)
    with torch.no_grad():
        # Loss: the batch's is the mean of the clips'.
        singles = [model.losses(collate([c]))["loss"] for c in clips]
        torch.testing.assert_close(model.losses(batch)["loss"], torch.stack(singles).mean(), rtol=1e-5, atol=1e-12)
        # Frames: each clip's real frames do not see the padding.
        inputs = model.generation_inputs(batch)
        generated = model.generate(inputs)
        for i, c in enumerate(clips):
            alone = model.generate(model.generation_inputs(collate([c])))[0]
            n = int(inputs.n_frames[i])
            assert len(alone) == n
            torch.testing.assert_close(generated[i, :n], alone, atol=1e-6, rtol=1e-5)
    # Gradients too (training mode without dropout so both passes are the same function).
    model.train()
    for module in model.modules():
        if isinstance(module, nn.Dropout):
            module.p = 0.0
    model.network.transformer_decoder.layers[0].self_attn.dropout = 0.0
    model.network.transformer_decoder.layers[0].multihead_attn.dropout = 0.0
    model.zero_grad()
    model.losses(batch)["loss"].backward()
    batched = model.network.vertice_map_r.weight.grad.clone()
    model.zero_grad()
    for c in clips:
        (model.losses(collate([c]))["loss"] / len(clips)).backward()
    singles = model.network.vertice_map_r.weight.grad
    torch.testing.assert_close(batched, singles, rtol=1e-3, atol=1e-4 * float(singles.abs().max()))


def test_offset_scale_changes_units_not_outputs():
    """offset_scale is a reparametrisation: the same weights give the same vertices when rescaled."""
    a, b = make_model(), make_model(offset_scale=1e-3)
    b.load_state_dict(a.state_dict())
    with torch.no_grad():
        b.network.vertice_map_r.weight /= 1e-3  # the output now in millimetres
        b.network.vertice_map_r.bias /= 1e-3
        b.network.vertice_map.weight *= 1e-3  # and the fed-back frames read in millimetres
        inputs = a.generation_inputs(collate([clip(15, 7)]))
        torch.testing.assert_close(a.generate(inputs), b.generate(inputs), atol=1e-6, rtol=1e-4)


def test_scheduled_sampling_feeds_back_the_first_pass_at_its_rate():
    """Share 0: the teacher-forced pass. Share 1: one parallel pass from the first pass's own
    predictions. Ramped over the stage: 0 in the first epoch. Without dropout, so passes compare."""
    model = make_model(scheduled_sampling=1.0)
    model.train()
    for module in model.modules():
        if isinstance(module, nn.Dropout):
            module.p = 0.0
    for layer in model.network.transformer_decoder.layers:
        layer.self_attn.dropout = layer.multihead_attn.dropout = 0.0
    batch = collate([clip(12, 7, style=1), clip(9, 8, style=2)])
    features = model.network.encode_audio(batch.audio, batch.audio_lengths, batch.frame_lengths)
    one_hot, target = model.style_one_hot(batch.style), model.target_offsets(batch)
    forced = model.network.teacher_forced(features, target, one_hot)
    fed_back = model.network.teacher_forced(features, forced, one_hot)
    assert not torch.allclose(forced, fed_back)
    torch.testing.assert_close(model.offsets(batch, teacher_forcing=False), fed_back)  # share 1, no trainer: the full rate
    model.scheduled_sampling = 0.5
    mixed = model.offsets(batch, teacher_forcing=False)
    assert not torch.allclose(mixed, forced) and not torch.allclose(mixed, fed_back)
    trainer = L.Trainer(max_epochs=11, logger=False, enable_progress_bar=False)
    model.trainer = trainer
    assert model.feedback_share() == 0.0  # epoch 0 of 11
    trainer.fit_loop.epoch_progress.current.completed = 10
    assert model.feedback_share() == pytest.approx(0.5)
