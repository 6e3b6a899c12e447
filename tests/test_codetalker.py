"""CodeTalker: official checkpoints load (key names and shapes written out from the official module
definitions), the quantiser, generation as the official `predict` loop, the stages, and the learning test (the drift check's
`ci` run)."""

import math

import pytest
import torch
from torch import nn

from facebench.data.sequence import collate
from facebench.errors import FacebenchError
from facebench.models.codetalker import CodeTalker, CodeTalkerNetwork, VQAutoEncoder
from facebench.models.codetalker.network import VectorQuantizer
from facebench.models.components.audio_encoders import PretrainedSpeechEncoder, build_audio_encoder
from facebench.models.components.periodic import alignment_mask, periodic_bias_mask
from tests.learning import (
    assert_beats_template,
    assert_codebook_reconstructs,
    assert_matches_drift_reference,
    ci_run,
)
from tests.test_faceformer import clip, official_decoder_shapes, official_ppe, official_wav2vec2_shapes

V = 12
TINY = dict(hidden_size=16, layers=1, heads=2, intermediate_size=24, face_quan_num=4, zquant_dim=4, n_embed=8)


def official_position_table(d: int, max_len: int = 5000) -> torch.Tensor:
    """`models/lib/base_models.py` PositionalEncoding's buffer: (max_len, 1, d)."""
    position = torch.arange(max_len, dtype=torch.float)[:, None]
    div_term = torch.exp(torch.arange(0, d, 2).float() * (-math.log(10000.0) / d))
    pe = torch.zeros(max_len, d)
    pe[:, 0::2], pe[:, 1::2] = torch.sin(position * div_term), torch.cos(position * div_term)
    return pe[:, None]


def official_stage1_shapes(n_vertices: int, dim: int, layers: int, inner: int, code: int, n_embed: int, biwi: bool) -> dict[str, tuple]:
    """Keys and shapes of `VQAutoEncoder.state_dict()` as Doubiiu/CodeTalker @ 1b7cb95 saves it
    (`models/stage1_vocaset.py`, `models/stage1_BIWI.py`, `models/lib/base_models.py`,
    `models/lib/quantizer.py`; `quant_factor: 0`, `INaffine: False`), written out from those
    definitions, not derived from facebench's model."""
    shapes = {"quantize.embedding.weight": (n_embed, code)}
    for part in ("encoder", "decoder"):
        for n in range(layers):
            attention, mlp = f"{part}.{part}_transformer.net.{2 * n}.fn.", f"{part}.{part}_transformer.net.{2 * n + 1}.fn."
            shapes |= {f"{attention}norm.weight": (dim,), f"{attention}norm.bias": (dim,), f"{attention}fn.to_qkv.weight": (3 * dim, dim),
                       f"{attention}fn.to_out.weight": (dim, dim), f"{attention}fn.to_out.bias": (dim,),
                       f"{mlp}norm.weight": (dim,), f"{mlp}norm.bias": (dim,), f"{mlp}fn.l1.weight": (inner, dim), f"{mlp}fn.l1.bias": (inner,),
                       f"{mlp}fn.l2.weight": (dim, inner), f"{mlp}fn.l2.bias": (dim,)}  # fmt: skip
        shapes |= {f"{part}.{part}_pos_embedding.pe": (5000, 1, dim), f"{part}.{part}_linear_embedding.net.weight": (dim, dim),
                   f"{part}.{part}_linear_embedding.net.bias": (dim,)}  # fmt: skip
    shapes |= {"encoder.vertice_mapping.0.weight": (dim, 3 * n_vertices), "encoder.vertice_mapping.0.bias": (dim,),
               "encoder.squasher.0.0.weight": (dim, dim, 5), "encoder.squasher.0.0.bias": (dim,),
               "decoder.expander.0.0.weight": (dim, dim, 5), "decoder.expander.0.0.bias": (dim,),
               "decoder.vertice_map_reverse.weight": (3 * n_vertices, dim)}  # fmt: skip
    width = dim  # face_quan_num x zquant_dim: the model width in both official configurations
    if biwi:
        shapes |= {"encoder.encoder_linear_embedding_post.net.weight": (width, dim), "encoder.encoder_linear_embedding_post.net.bias": (width,),
                   "decoder.decoder_linear_embedding_pre.net.weight": (dim, width), "decoder.decoder_linear_embedding_pre.net.bias": (dim,)}  # fmt: skip
    else:
        shapes["decoder.vertice_map_reverse.bias"] = (3 * n_vertices,)
    return shapes


def random_state(shapes: dict[str, tuple], seed: int = 7) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    state = {key: torch.randn(shape, generator=g) for key, shape in shapes.items()}
    for key, shape in shapes.items():
        if key.endswith("_pos_embedding.pe"):
            state[key] = official_position_table(shape[2])
    return state


def tiny_autoencoder(biwi: bool = False) -> VQAutoEncoder:
    return VQAutoEncoder(V, **TINY, code_projection=biwi, output_bias=not biwi)


@pytest.mark.parametrize("biwi", [False, True], ids=["vocaset", "biwi"])
def test_an_official_stage1_checkpoint_loads(biwi):
    state = random_state(official_stage1_shapes(V, 16, 1, 24, 4, 8, biwi))
    autoencoder = tiny_autoencoder(biwi)
    autoencoder.load_official_state_dict(state)
    ours = autoencoder.state_dict()
    for key, value in state.items():
        if not key.endswith(".pe"):
            assert torch.equal(ours[key], value), key
    other = tiny_autoencoder(not biwi)  # the other dataset's layout is refused, naming the keys
    with pytest.raises(FacebenchError, match="linear_embedding_(post|pre)|vertice_map_reverse.bias"):
        other.load_official_state_dict(state)
    state["encoder.encoder_pos_embedding.pe"] = official_position_table(8)
    with pytest.raises(FacebenchError, match=r"position table of shape \(5000, 1, 16\)"):
        autoencoder.load_official_state_dict(state)


def test_an_official_stage2_checkpoint_loads_with_its_stage1(tiny_encoder_config):
    """Stage 2 is saved without the auto-encoder's keys (`save_checkpoint(..., stage=2)`); both load together."""
    d, period, n_styles = 8, 30, 3
    stage1 = random_state(official_stage1_shapes(V, 16, 1, 24, 4, 8, False))
    stage2 = random_state(official_wav2vec2_shapes(tiny_encoder_config), seed=8)
    shapes = {"audio_feature_map.weight": (d, 16), "audio_feature_map.bias": (d,), "vertice_map.weight": (d, 3 * V), "vertice_map.bias": (d,),
              **official_decoder_shapes(d, 2), "feat_map.weight": (16, d), "learnable_style_emb.weight": (n_styles, d)}  # fmt: skip
    stage2 |= random_state(shapes, seed=9)
    stage2["PPE.pe"] = official_ppe(d, period, 600)[None]
    network = CodeTalkerNetwork(PretrainedSpeechEncoder("wav2vec2", config=tiny_encoder_config), tiny_autoencoder(), V, n_styles,
                                feature_dim=d, period=period, n_layers=2)  # fmt: skip
    network.load_official_state_dict(stage1, stage2)
    ours = network.state_dict()
    assert torch.equal(ours["feat_map.weight"], stage2["feat_map.weight"]) and torch.equal(ours["autoencoder.quantize.embedding.weight"], stage1["quantize.embedding.weight"])
    assert torch.equal(ours["audio_encoder.model.encoder.layers.0.attention.k_proj.weight"], stage2["audio_encoder.encoder.layers.0.attention.k_proj.weight"])
    del stage2["learnable_style_emb.weight"]
    with pytest.raises(FacebenchError, match=r"missing \['learnable_style_emb.weight'\]"):
        network.load_official_state_dict(stage1, stage2)


def test_the_quantiser_picks_the_nearest_entry_and_passes_gradients_straight_through():
    quantiser = VectorQuantizer(4, 2, beta=0.25)
    quantiser.embedding.weight.data = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [5.0, 5.0]])
    z = torch.tensor([[[0.9, 0.2], [0.1, -0.1], [0.2, 0.8]]], requires_grad=True)
    quantised, loss, info = quantiser(z)
    assert info["indices"].tolist() == [[1, 0, 2]] and torch.equal(quantised.detach(), quantiser.embedding.weight[[1, 0, 2]][None])
    expected = 1.25 * (quantised.detach() - z.detach()).pow(2).mean()  # beta x commitment + codebook term, equal in value
    assert torch.isclose(loss, expected)
    quantised.sum().backward()
    assert torch.equal(z.grad, torch.ones_like(z))  # straight-through
    assert math.isclose(float(info["perplexity"]), 3.0, rel_tol=1e-5)  # three entries used equally


@torch.no_grad()
def test_generation_is_the_official_predict_loop():
    """Our incremental generation against the official `predict` loop restated in this test (the
    decoder re-run over the whole past at each frame, each frame's features quantised and the prefix
    decoded again, a one-frame prefix doubled): the same frames. A check of our code against our
    reading of the official loop, not parity with the official code run side by side."""
    torch.manual_seed(0)
    network = CodeTalkerNetwork(build_audio_encoder("logmel", output_dim=8), tiny_autoencoder(), V, 3, feature_dim=8, n_layers=2).eval()
    nn.init.normal_(network.feat_map.weight, std=0.5)  # zero-initialised: make the features differ
    audio = network.encode_audio(torch.randn(1, 16000), torch.tensor([16000]), torch.tensor([9]))
    style = torch.tensor([1])
    ours = network.autoregressive(audio, 9, style)
    emb = network.learnable_style_emb(style)[:, None]
    tokens = emb
    for i in range(9):
        n = tokens.shape[1]
        out = nn.TransformerDecoder.forward(network.transformer_decoder, network.PPE(tokens), audio,
                                            tgt_mask=periodic_bias_mask(4, n, 30).repeat(1, 1, 1), memory_mask=alignment_mask(n, audio.shape[1], 1))  # fmt: skip
        features = network.autoencoder.components(network.feat_map(out))
        quantised, _, _ = network.autoencoder.quantize(features)
        decoded = network.autoencoder.decode(torch.cat([quantised, quantised], 1))[:, :1] if i == 0 else network.autoencoder.decode(quantised)
        tokens = torch.cat([tokens, network.vertice_map(decoded[:, -1])[:, None] + emb], 1)
    torch.testing.assert_close(ours, features, atol=1e-5, rtol=1e-4)


def test_stages_freeze_what_they_do_not_train():
    model = CodeTalker(V, 3, hidden_size=16, vq_layers=1, vq_heads=2, intermediate_size=24, face_quan_num=4, zquant_dim=4, feature_dim=8, n_layers=1,
                       audio_encoder={"name": "logmel", "output_dim": 8}, vq_lr=3e-4, lr=2e-3)  # fmt: skip
    model.set_stage("vqvae")
    assert all(p.requires_grad for p in model.network.autoencoder.parameters()) and not model.network.feat_map.weight.requires_grad
    assert isinstance(model.configure_optimizers(), torch.optim.AdamW) and model.learning_rate == 3e-4
    model.set_stage("predictor")
    assert not any(p.requires_grad for p in model.network.autoencoder.parameters()) and model.network.feat_map.weight.requires_grad
    model.train()
    assert not model.network.autoencoder.training and model.network.transformer_decoder.training  # as the official loop
    assert type(model.configure_optimizers()) is torch.optim.Adam and model.learning_rate == 2e-3
    batch = collate([clip(7, 0, style=1), clip(5, 1, style=2)])
    losses = model.losses(batch)
    assert set(losses) == {"motion", "features", "loss"} and losses["loss"].requires_grad
    model.set_stage("vqvae")
    assert set(model.losses(batch)) == {"reconstruction", "quantization", "perplexity", "loss"}


@pytest.mark.slow
def test_codetalker_learns_and_matches_the_drift_reference(synth_tiny, tmp_path):
    """After the ci profile (the drift check's run, its rows compared with the reference): the
    stage-1 auto-encoder reconstructs held-out motion far better than the template, and motion
    generated from audio beats the template on held-out clips."""
    rows = ci_run("codetalker", synth_tiny, tmp_path)
    assert_matches_drift_reference(rows)
    assert_beats_template(rows, synth_tiny)
    assert_codebook_reconstructs(rows, synth_tiny, tmp_path / "runs")
    assert all(row["official_code"] is False for row in rows)  # the ci profile's settings are ours
