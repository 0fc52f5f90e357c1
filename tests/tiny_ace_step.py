"""A tiny ACE-Step 1.5 pipeline (``diffusers.AceStepPipeline``) for the tests and the benchmark.

Every part is the real class at a tiny width: the DiT, the condition encoder (lyric and timbre
encoders), a Qwen3 text encoder whose BPE tokenizer is trained here on a few lines (the hub's
Qwen3 tokenizer is not on this machine), an Oobleck VAE whose strides multiply to 1920 — so
48,000 samples a second become exactly 25 latent frames a second, as in the released model — and
the audio tokenizer / detokenizer that the cover task needs. Saved with ``save_pretrained`` and
loaded by the app through the real ``from_pretrained`` path.
"""

from __future__ import annotations

import json
from pathlib import Path

TINY_LYRICS_CORPUS = [
    "[verse] [chorus] [bridge] [intro] [outro] [pre-chorus] [instrumental]",
    "# Instruction Fill the audio semantic mask based on the given conditions:",
    "Repaint the mask area based on the given conditions:",
    "Generate audio semantic tokens based on the given conditions:",
    "# Caption # Metas - bpm: N/A - timesignature: - keyscale: - duration: seconds",
    "# Languages en de fr es ja zh # Lyric",
    "calm piano drums strings slow fast bright dark rain night city light love home",
    "walking down the river singing in the morning sun we are young tonight",
    "0 1 2 3 4 5 6 7 8 9 major minor C D E F G A B sharp flat",
]


def build_tiny_ace_step(
    folder: Path,
    *,
    seed: int = 0,
    turbo: bool = True,
    model_version: str = "turbo",
    audio_tokenizer: bool = True,
    width: int = 16,
    layers: int = 2,
) -> Path:
    """Write a tiny ``AceStepPipeline`` to ``folder`` and return it.

    ``turbo`` marks the DiT as guidance-distilled (8 steps, no guidance), as the turbo release is;
    ``model_version`` is the transformer config's variant ("turbo", "sft", "base"). Without
    ``audio_tokenizer`` the folder lacks the optional tokenizer/detokenizer (no cover task).
    The benchmark passes a wider, deeper DiT (``width``, ``layers``) so that compute dominates.
    """
    import torch
    from diffusers import (
        AceStepPipeline,
        AceStepTransformer1DModel,
        AutoencoderOobleck,
        FlowMatchEulerDiscreteScheduler,
    )
    from diffusers.pipelines.ace_step.modeling_ace_step import (
        AceStepAudioTokenDetokenizer,
        AceStepAudioTokenizer,
        AceStepConditionEncoder,
    )
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast, Qwen3Config, Qwen3Model

    torch.manual_seed(seed)
    bpe = Tokenizer(models.BPE(unk_token="<unk>"))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=320,
        special_tokens=["<|endoftext|>", "<unk>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(TINY_LYRICS_CORPUS, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe, eos_token="<|endoftext|>", pad_token="<|endoftext|>", unk_token="<unk>"
    )

    text_width, acoustic = 16, 8
    heads = max(2, width // 32)
    text_encoder = Qwen3Model(
        Qwen3Config(
            vocab_size=len(tokenizer),
            hidden_size=text_width,
            intermediate_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            num_key_value_heads=1,
            head_dim=8,
            max_position_embeddings=4096,
            pad_token_id=tokenizer.pad_token_id,
        )
    )
    common = dict(num_attention_heads=heads, num_key_value_heads=1, head_dim=width // heads, sliding_window=16)
    transformer = AceStepTransformer1DModel(
        hidden_size=width,
        intermediate_size=2 * width,
        num_hidden_layers=layers,
        in_channels=3 * acoustic,  # noise + source latents + chunk mask
        audio_acoustic_hidden_dim=acoustic,
        patch_size=2,
        is_turbo=turbo,
        model_version=model_version,
        **common,
    )
    condition_encoder = AceStepConditionEncoder(
        hidden_size=width,
        intermediate_size=32,
        text_hidden_dim=text_width,
        timbre_hidden_dim=acoustic,
        num_lyric_encoder_hidden_layers=1,
        num_timbre_encoder_hidden_layers=1,
        **common,
    )
    vae = AutoencoderOobleck(
        encoder_hidden_size=2 * acoustic,  # the encoder gives mean and scale: half of it is the latent
        downsampling_ratios=[2, 4, 4, 6, 10],  # hop 1920: 48,000 / 1920 = 25 latent frames per second
        channel_multiples=[1, 1, 1, 1, 1],
        decoder_channels=4,
        decoder_input_channels=acoustic,
        audio_channels=2,
        sampling_rate=48000,
    )
    parts = {}
    if audio_tokenizer:
        parts["audio_tokenizer"] = AceStepAudioTokenizer(
            hidden_size=width,
            intermediate_size=32,
            audio_acoustic_hidden_dim=acoustic,
            pool_window_size=5,
            fsq_dim=width,
            fsq_input_levels=[8, 5],
            num_attention_pooler_hidden_layers=1,
            **common,
        )
        parts["audio_token_detokenizer"] = AceStepAudioTokenDetokenizer(
            hidden_size=width,
            intermediate_size=32,
            audio_acoustic_hidden_dim=acoustic,
            pool_window_size=5,
            num_attention_pooler_hidden_layers=1,
            **common,
        )
    pipe = AceStepPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        transformer=transformer,
        condition_encoder=condition_encoder,
        scheduler=FlowMatchEulerDiscreteScheduler(num_train_timesteps=1, shift=1.0),
        **parts,
    )
    pipe.save_pretrained(folder, safe_serialization=True)
    if not audio_tokenizer:  # save_pretrained writes the absent optional parts as [null, null]: keep that
        index = json.loads((folder / "model_index.json").read_text())
        assert index.get("audio_tokenizer") in (None, [None, None])
    return folder


def build_tiny_musicgen_melody(folder: Path, *, seed: int = 0) -> Path:
    """A MusicgenMelodyForConditionalGeneration made from the tiny MusicGen's parts (T5, EnCodec at
    32 kHz, 4 codebooks) with a chroma input of 12 pitch classes — for following a melody."""
    import tempfile

    import torch
    from tiny_models import build_tiny_musicgen
    from transformers import (
        AutoTokenizer,
        MusicgenConfig,
        MusicgenMelodyConfig,
        MusicgenMelodyForConditionalGeneration,
    )

    with tempfile.TemporaryDirectory() as plain:
        build_tiny_musicgen(Path(plain), seed=seed)
        base = MusicgenConfig.from_pretrained(plain)
        tokenizer = AutoTokenizer.from_pretrained(plain)
    decoder = base.decoder.to_dict()
    decoder.pop("model_type", None)
    config = MusicgenMelodyConfig(
        text_encoder=base.text_encoder.to_dict(),
        audio_encoder=base.audio_encoder.to_dict(),
        decoder=decoder,
        num_chroma=12,
        chroma_length=235,
    )
    torch.manual_seed(seed)
    model = MusicgenMelodyForConditionalGeneration(config)
    with torch.no_grad():
        for layer in model.audio_encoder.quantizer.layers:
            layer.codebook.embed.normal_()
    model.generation_config.decoder_start_token_id = 64
    model.generation_config.pad_token_id = 64
    model.generation_config.max_length = 1500
    model.generation_config.guidance_scale = 3.0
    model.generation_config.do_sample = True
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    return folder
