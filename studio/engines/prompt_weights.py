"""A1111-style weighted prompts for CLIP pipelines (SD 1.x / 2.x): attention weights and prompts
longer than CLIP's 77 tokens, turned into ``prompt_embeds`` / ``negative_prompt_embeds``.

Why not a library: compel (the maintained one) speaks its own syntax (``word++``, ``(word)1.2``),
not A1111's ``(word:1.2)`` that imported and Civitai prompts carry, and needs pyparsing, which is not
installed; so the weighting is done here the way A1111 does it (``modules/sd_hijack_clip.py``): the
tokens are cut into chunks of 75 (``BREAK`` ends a chunk early), each chunk is encoded between its
start and end tokens, every token's hidden state is multiplied by its weight, and the chunk is
rescaled to its original mean so weights change emphasis, not overall magnitude. The chunks are
joined along the sequence; the negative prompt gets as many chunks (empty ones pad it).
"""

from __future__ import annotations

from typing import Any

import torch

from studio.core.prompt_syntax import BREAK, has_weighting, parse_attention, plain_text

CHUNK_TOKENS = 75  # 77 minus the start and end tokens


def needs_weighting(pipe: Any, prompt: str, negative: str) -> bool:
    """Whether plain strings would lose something: brackets, BREAK, or a prompt past 75 tokens."""
    if has_weighting(prompt) or has_weighting(negative):
        return True
    tokenizer = getattr(pipe, "tokenizer", None)
    if tokenizer is None:
        return False
    return any(len(tokenizer(text, add_special_tokens=False).input_ids) > CHUNK_TOKENS for text in (prompt, negative))


def can_weight(pipe: Any) -> bool:
    """Single-CLIP pipelines (SD 1.x/2.x); SDXL, SD3 and Flux get the plain text for now."""
    return (
        getattr(pipe, "tokenizer", None) is not None
        and getattr(pipe, "text_encoder", None) is not None
        and getattr(pipe, "text_encoder_2", None) is None
        and getattr(pipe, "transformer", None) is None
    )


def weighted_prompt_kwargs(pipe: Any, prompt: str, negative: str, device: Any) -> dict[str, Any]:
    """``prompt_embeds`` and ``negative_prompt_embeds`` for ``pipe``, with equal chunk counts."""
    positive = _chunks(pipe, prompt)
    unconditional = _chunks(pipe, negative)
    empty = _chunks(pipe, "")[0]
    while len(unconditional) < len(positive):
        unconditional.append(empty)
    while len(positive) < len(unconditional):
        positive.append(empty)
    with torch.no_grad():
        prompt_embeds = torch.cat([_encode(pipe, ids, weights, device) for ids, weights in positive], dim=1)
        negative_embeds = torch.cat([_encode(pipe, ids, weights, device) for ids, weights in unconditional], dim=1)
    return {"prompt_embeds": prompt_embeds, "negative_prompt_embeds": negative_embeds}


def plain_prompt(text: str) -> str:
    """The text a pipeline that cannot weight words gets: the brackets and weights taken out."""
    return plain_text(text) if has_weighting(text) else text


def _chunks(pipe: Any, text: str) -> list[tuple[list[int], list[float]]]:
    tokenizer = pipe.tokenizer
    chunks: list[tuple[list[int], list[float]]] = []
    ids: list[int] = []
    weights: list[float] = []

    def close() -> None:
        nonlocal ids, weights
        chunks.append((ids, weights))
        ids, weights = [], []

    for piece, weight in parse_attention(text):
        if weight == -1.0 and piece == BREAK:
            close()
            continue
        # Multi-vector embeddings are expanded to their tokens (token, token_1, …) as diffusers does.
        converted = pipe.maybe_convert_prompt(piece, tokenizer) if hasattr(pipe, "maybe_convert_prompt") else piece
        for token in tokenizer(converted, add_special_tokens=False).input_ids:
            if len(ids) == CHUNK_TOKENS:
                close()
            ids.append(token)
            weights.append(weight)
    if ids or not chunks:
        close()
    return chunks


def _encode(pipe: Any, ids: list[int], weights: list[float], device: Any) -> torch.Tensor:
    tokenizer = pipe.tokenizer
    bos = tokenizer.bos_token_id
    eos = tokenizer.eos_token_id
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
    padding = CHUNK_TOKENS - len(ids)
    tokens = [bos, *ids, eos] + [pad] * padding
    multipliers = [1.0, *weights, 1.0] + [1.0] * padding
    encoder = pipe.text_encoder
    input_ids = torch.tensor([tokens], device=device)
    hidden = encoder(input_ids)[0]
    scale = torch.tensor(multipliers, device=hidden.device, dtype=hidden.dtype).reshape(1, -1, 1)
    original_mean = hidden.float().mean()
    weighted = hidden * scale
    new_mean = weighted.float().mean()
    if new_mean.abs() > 0:
        weighted = weighted * (original_mean / new_mean).to(hidden.dtype)
    return weighted.to(dtype=encoder.dtype)
