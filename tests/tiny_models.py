"""Builders for tiny, randomly initialised models saved in the real on-disk formats.

Each builder writes a folder with ``save_pretrained`` (safetensors) that the app then
loads through the same ``from_pretrained`` path a user's model takes. They are seeded,
so two builds give the same weights, and each takes well under a second on a CPU.
Benchmarks reuse them for their quick runs.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "<|{{ message['role'] }}|>{{ message['content'] }}<|end|>"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)

_CORPUS = [
    "the quick brown fox jumps over the lazy dog",
    "a painter mixes blue and yellow to make green",
    "music is the space between the notes",
    "light falls on the hills at dawn and the birds sing",
    "every artist was first an amateur",
    "colour, rhythm and line make a picture",
] * 20


def build_tiny_causal_lm(folder: Path, *, chat_template: bool = True, seed: int = 0) -> Path:
    """A ~100k-parameter LlamaForCausalLM with a byte-level BPE tokenizer."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    folder.mkdir(parents=True, exist_ok=True)
    special = ["<unk>", "<s>", "</s>", "<|system|>", "<|user|>", "<|assistant|>", "<|end|>"]
    bpe = Tokenizer(models.BPE(unk_token="<unk>"))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300,
        special_tokens=special,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(_CORPUS, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        pad_token="</s>",
    )
    if chat_template:
        tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.save_pretrained(folder)

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )
    model = LlamaForCausalLM(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(folder, safe_serialization=True)
    return folder


def build_tiny_sd_pipeline(folder: Path, *, seed: int = 0) -> Path:
    """A StableDiffusionPipeline with a tiny UNet and a four-block VAE (scale factor 8)."""
    import torch
    from diffusers import (
        AutoencoderKL,
        EulerDiscreteScheduler,
        StableDiffusionPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        block_out_channels=(8, 16),
        layers_per_block=1,
        norm_num_groups=4,
        sample_size=8,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=16,
        attention_head_dim=2,
    )
    torch.manual_seed(seed)
    vae = AutoencoderKL(
        block_out_channels=(4, 8, 8, 8),
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        latent_channels=4,
        norm_num_groups=2,
        layers_per_block=1,
        sample_size=32,
    )
    torch.manual_seed(seed)
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            bos_token_id=0,
            eos_token_id=2,
            hidden_size=16,
            intermediate_size=32,
            layer_norm_eps=1e-05,
            num_attention_heads=2,
            num_hidden_layers=2,
            pad_token_id=1,
            vocab_size=1000,
            max_position_embeddings=77,
        )
    )
    with tempfile.TemporaryDirectory() as src:
        tokenizer = _tiny_clip_tokenizer(Path(src), CLIPTokenizer)
    scheduler = EulerDiscreteScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        num_train_timesteps=1000,
        steps_offset=1,
    )
    pipe = StableDiffusionPipeline(
        unet=unet,
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.save_pretrained(folder, safe_serialization=True)
    return folder


def _tiny_clip_tokenizer(src: Path, tokenizer_class):
    """A CLIP tokenizer written as vocab.json + merges.txt, the files a real one has."""
    src.mkdir(parents=True, exist_ok=True)
    letters = "abcdefghijklmnopqrstuvwxyz"
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for ch in letters:
        vocab[ch] = len(vocab)
        vocab[ch + "</w>"] = len(vocab)
    merges = ["#version: 0.2"]
    for pair in ("t h", "th e</w>", "a n", "r e"):
        left, right = pair.split(" ")
        merged = left + right
        vocab.setdefault(merged, len(vocab))
        merges.append(pair)
    (src / "vocab.json").write_text(json.dumps(vocab))
    (src / "merges.txt").write_text("\n".join(merges) + "\n")
    tokenizer = tokenizer_class(
        vocab_file=str(src / "vocab.json"), merges_file=str(src / "merges.txt"), model_max_length=77
    )
    return tokenizer


def build_tiny_musicgen(folder: Path, *, seed: int = 0, decoder_width: int = 16, decoder_layers: int = 2) -> Path:
    """A MusicgenForConditionalGeneration: tiny T5, EnCodec at 32 kHz / hop 640 (50 frames/s).

    Benchmarks pass a wider, deeper decoder so that compute, not overhead, dominates.
    """
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import (
        EncodecConfig,
        MusicgenConfig,
        MusicgenDecoderConfig,
        MusicgenForConditionalGeneration,
        PreTrainedTokenizerFast,
        T5Config,
    )

    folder.mkdir(parents=True, exist_ok=True)
    text_config = T5Config(
        vocab_size=120,
        d_model=16,
        d_kv=4,
        d_ff=32,
        num_layers=1,
        num_heads=2,
        decoder_start_token_id=0,
        pad_token_id=0,
        eos_token_id=1,
    )
    # ratios multiply to the hop length: 8 * 5 * 4 * 4 = 640 samples per frame at 32 kHz.
    audio_config = EncodecConfig(
        sampling_rate=32000,
        audio_channels=1,
        num_filters=4,
        hidden_size=16,
        codebook_size=64,
        codebook_dim=16,
        upsampling_ratios=[8, 5, 4, 4],
        num_residual_layers=1,
        num_lstm_layers=1,
        target_bandwidths=[1.2],  # 1200 bps / (50 frames/s × 6 bits) = the decoder's 4 codebooks
        normalize=False,
        use_causal_conv=False,
    )
    decoder_config = MusicgenDecoderConfig(
        vocab_size=64,
        hidden_size=decoder_width,
        num_hidden_layers=decoder_layers,
        num_attention_heads=2,
        ffn_dim=2 * decoder_width,
        num_codebooks=4,
        max_position_embeddings=4096,
        pad_token_id=64,
        bos_token_id=64,
        decoder_start_token_id=64,
        audio_channels=1,
    )
    config = MusicgenConfig(
        text_encoder=text_config.to_dict(),
        audio_encoder=audio_config.to_dict(),
        decoder=decoder_config.to_dict(),
    )
    torch.manual_seed(seed)
    model = MusicgenForConditionalGeneration(config)
    # EnCodec's codebooks start as zeros, so every code would decode to the same sound.
    with torch.no_grad():
        for layer in model.audio_encoder.quantizer.layers:
            layer.codebook.embed.normal_()
    model.generation_config.decoder_start_token_id = 64
    model.generation_config.pad_token_id = 64
    model.generation_config.max_length = 1500
    model.generation_config.guidance_scale = 3.0
    model.generation_config.do_sample = True
    model.save_pretrained(folder, safe_serialization=True)

    words = Tokenizer(models.WordLevel(unk_token="<unk>"))
    words.pre_tokenizer = pre_tokenizers.Whitespace()
    trainer = trainers.WordLevelTrainer(vocab_size=120, special_tokens=["<pad>", "</s>", "<unk>"], show_progress=False)
    words.train_from_iterator(_CORPUS, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=words, pad_token="<pad>", eos_token="</s>", unk_token="<unk>")
    tokenizer.save_pretrained(folder)
    return folder


def build_tiny_stable_audio(folder: Path, *, seed: int = 0) -> Path:
    """A StableAudioPipeline: tiny DiT, Oobleck VAE at 64 samples/s (stereo), tiny T5, up to 2 s.

    The released models use CosineDPMSolverMultistepScheduler, which needs torchsde; the EDM
    DPM-Solver takes the same v-prediction and sigma settings without it.
    """
    import torch
    from diffusers import AutoencoderOobleck, EDMDPMSolverMultistepScheduler, StableAudioDiTModel, StableAudioPipeline
    from diffusers.pipelines.stable_audio import StableAudioProjectionModel
    from transformers import T5Config, T5EncoderModel, T5TokenizerFast

    torch.manual_seed(seed)
    transformer = StableAudioDiTModel(
        sample_size=64,
        in_channels=3,
        num_layers=2,
        attention_head_dim=4,
        num_key_value_attention_heads=2,
        out_channels=3,
        cross_attention_dim=4,
        time_proj_dim=8,
        global_states_input_dim=8,
        cross_attention_input_dim=4,
    )
    vae = AutoencoderOobleck(
        encoder_hidden_size=6,
        downsampling_ratios=[1, 2],
        decoder_channels=3,
        decoder_input_channels=3,
        audio_channels=2,
        channel_multiples=[2, 4],
        sampling_rate=64,
    )
    text_encoder = T5EncoderModel(
        T5Config(vocab_size=64, d_model=32, d_kv=8, d_ff=37, num_layers=2, num_heads=4, pad_token_id=0, eos_token_id=1)
    )
    words = "calm piano drums strings slow fast bright dark rain".split()
    vocab = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0)] + [("\u2581" + w, -1.0 - i) for i, w in enumerate(words)]
    pipe = StableAudioPipeline(
        transformer=transformer,
        scheduler=EDMDPMSolverMultistepScheduler(solver_order=2, prediction_type="v_prediction", sigma_data=1.0),
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=T5TokenizerFast(vocab=vocab, extra_ids=0, model_max_length=16),
        projection_model=StableAudioProjectionModel(text_encoder_dim=32, conditioning_dim=4, min_value=0, max_value=32),
    )
    pipe.save_pretrained(folder, safe_serialization=True)
    return folder


def make_sd_architecture_pipeline(arch: str, device: str, small: bool):
    """SD 1.5 ("sd15") or SDXL ("sdxl") with the real architecture and random weights; channels ÷ 8 with
    ``small`` (the same block structure, so single-file key layouts match the real ones)."""
    import torch
    from diffusers import (
        AutoencoderKL,
        EulerDiscreteScheduler,
        PNDMScheduler,
        StableDiffusionPipeline,
        StableDiffusionXLPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

    div = 8 if small else 1

    def ch(values):
        return tuple(v // div for v in values)

    def clip(hidden: int, layers: int, heads: int, projection: bool = False):
        config = CLIPTextConfig(
            hidden_size=hidden // div,
            intermediate_size=4 * hidden // div,
            num_hidden_layers=max(1, layers // (4 if small else 1)),
            num_attention_heads=max(1, heads // div),
            max_position_embeddings=77,
            vocab_size=49408,
            projection_dim=hidden // div,
            hidden_act="gelu" if projection else "quick_gelu",
        )
        return (CLIPTextModelWithProjection if projection else CLIPTextModel)(config)

    vae_config = {
        "block_out_channels": ch((128, 256, 512, 512)),
        "down_block_types": ("DownEncoderBlock2D",) * 4,
        "up_block_types": ("UpDecoderBlock2D",) * 4,
        "latent_channels": 4,
        "layers_per_block": 2,
        "norm_num_groups": 32 // div,
    }
    with tempfile.TemporaryDirectory() as tokenizer_dir:
        tokenizer = _tiny_clip_tokenizer(Path(tokenizer_dir), CLIPTokenizer)
    schedule = {"beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear"}
    if arch == "sd15":
        scheduler = PNDMScheduler(skip_prk_steps=True, steps_offset=1, **schedule)
    else:
        scheduler = EulerDiscreteScheduler(steps_offset=1, **schedule)
    torch.manual_seed(0)
    # Weights are made where they will run: random init of billions of parameters is slow on a CPU.
    with torch.device(device):
        if arch == "sd15":
            unet = UNet2DConditionModel(
                sample_size=64,
                block_out_channels=ch((320, 640, 1280, 1280)),
                layers_per_block=2,
                cross_attention_dim=768 // div,
                attention_head_dim=8,
                norm_num_groups=32 // div,
                down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
                up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
            )
            vae = AutoencoderKL(sample_size=512, scaling_factor=0.18215, **vae_config)
            pipe = StableDiffusionPipeline(
                unet=unet,
                vae=vae,
                text_encoder=clip(768, 12, 12),
                tokenizer=tokenizer,
                scheduler=scheduler,
                safety_checker=None,
                feature_extractor=None,
                requires_safety_checker=False,
            )
        else:
            unet = UNet2DConditionModel(
                sample_size=128,
                block_out_channels=ch((320, 640, 1280)),
                layers_per_block=2,
                transformer_layers_per_block=(1, 2, 10) if not small else (1, 1, 2),
                cross_attention_dim=2048 // div,
                attention_head_dim=(5, 10, 20),
                norm_num_groups=32 // div,
                use_linear_projection=True,
                addition_embed_type="text_time",
                addition_time_embed_dim=256 // div,
                projection_class_embeddings_input_dim=6 * 256 // div + 1280 // div,
                down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
                up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
            )
            vae = AutoencoderKL(sample_size=1024, scaling_factor=0.13025, force_upcast=False, **vae_config)
            pipe = StableDiffusionXLPipeline(
                unet=unet,
                vae=vae,
                text_encoder=clip(768, 12, 12),
                text_encoder_2=clip(1280, 32, 20, projection=True),
                tokenizer=tokenizer,
                tokenizer_2=tokenizer,
                scheduler=scheduler,
            )
    return pipe


def write_sd15_single_file(pipeline_folder: Path, file: Path) -> Path:
    """Save an SD-1.5-structured diffusers pipeline as one original-layout ``.safetensors`` checkpoint,
    the way single-file checkpoints are shared (the inverse of diffusers' single-file conversion)."""
    from safetensors.torch import load_file, save_file

    def load(part: str) -> dict:
        return load_file(next((pipeline_folder / part).glob("*.safetensors")))

    unet_map = {
        "time_embedding.linear_1": "time_embed.0",
        "time_embedding.linear_2": "time_embed.2",
        "conv_in": "input_blocks.0.0",
        "conv_norm_out": "out.0",
        "conv_out": "out.2",
    }
    layer_map = []
    for i in range(4):
        for j in range(2):
            layer_map.append((f"down_blocks.{i}.resnets.{j}.", f"input_blocks.{3 * i + j + 1}.0."))
            if i < 3:
                layer_map.append((f"down_blocks.{i}.attentions.{j}.", f"input_blocks.{3 * i + j + 1}.1."))
        for j in range(3):
            layer_map.append((f"up_blocks.{i}.resnets.{j}.", f"output_blocks.{3 * i + j}.0."))
            if i > 0:
                layer_map.append((f"up_blocks.{i}.attentions.{j}.", f"output_blocks.{3 * i + j}.1."))
        if i < 3:
            layer_map.append((f"down_blocks.{i}.downsamplers.0.conv.", f"input_blocks.{3 * (i + 1)}.0.op."))
            layer_map.append((f"up_blocks.{i}.upsamplers.0.", f"output_blocks.{3 * i + 2}.{1 if i == 0 else 2}."))
    layer_map.append(("mid_block.attentions.0.", "middle_block.1."))
    for j in range(2):
        layer_map.append((f"mid_block.resnets.{j}.", f"middle_block.{2 * j}."))
    resnet_map = [
        ("norm1", "in_layers.0"),
        ("conv1", "in_layers.2"),
        ("norm2", "out_layers.0"),
        ("conv2", "out_layers.3"),
        ("time_emb_proj", "emb_layers.1"),
        ("conv_shortcut", "skip_connection"),
    ]
    checkpoint = {}
    for key, value in load("unet").items():
        stem, _, leaf = key.rpartition(".")
        name = f"{unet_map[stem]}.{leaf}" if stem in unet_map else key
        if "resnets" in name:
            for hf, sd in resnet_map:
                name = name.replace(hf, sd)
        for hf, sd in layer_map:
            name = name.replace(hf, sd)
        checkpoint[f"model.diffusion_model.{name}"] = value

    vae_map = [
        ("conv_shortcut", "nin_shortcut"),
        ("conv_norm_out", "norm_out"),
        ("mid_block.attentions.0.", "mid.attn_1."),
    ]
    for i in range(4):
        for j in range(2):
            vae_map.append((f"encoder.down_blocks.{i}.resnets.{j}.", f"encoder.down.{i}.block.{j}."))
        if i < 3:
            vae_map.append((f"down_blocks.{i}.downsamplers.0.", f"down.{i}.downsample."))
            vae_map.append((f"up_blocks.{i}.upsamplers.0.", f"up.{3 - i}.upsample."))
        for j in range(3):
            vae_map.append((f"decoder.up_blocks.{i}.resnets.{j}.", f"decoder.up.{3 - i}.block.{j}."))
    for j in range(2):
        vae_map.append((f"mid_block.resnets.{j}.", f"mid.block_{j + 1}."))
    attention_map = [
        ("group_norm.", "norm."),
        ("to_q.", "q."),
        ("to_k.", "k."),
        ("to_v.", "v."),
        ("to_out.0.", "proj_out."),
    ]
    for key, tensor in load("vae").items():
        name, value = key, tensor
        for hf, sd in vae_map:
            name = name.replace(hf, sd)
        if "attn_1" in name:
            for hf, sd in attention_map:
                name = name.replace(hf, sd)
            if name.endswith(("q.weight", "k.weight", "v.weight", "proj_out.weight")) and value.ndim == 2:
                value = value.reshape(*value.shape, 1, 1)  # linear in diffusers, 1×1 convolution in the original
        checkpoint[f"first_stage_model.{name}"] = value
    for key, value in load("text_encoder").items():
        name = key if key.startswith("text_model.") else f"text_model.{key}"
        checkpoint[f"cond_stage_model.transformer.{name}"] = value
    file.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in checkpoint.items()}, str(file))
    return file
