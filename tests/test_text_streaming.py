"""The text engine's streamer on real tokenizers: what it sends, joined, is the decoded text — with
characters split over several tokens, SentencePiece's dropped leading space, special tokens — and
its cost per token does not grow with the text."""

import threading

import pytest
import torch
from tiny_streaming import SAMPLE, byte_level_tokenizer, sentencepiece_tokenizer

from studio.engines.base import RunContext
from studio.engines.transformers_text import _EventStreamer

TOKENIZERS = {"byte-level": byte_level_tokenizer, "sentencepiece": sentencepiece_tokenizer}


@pytest.fixture(scope="module", params=sorted(TOKENIZERS))
def tokenizer(request):
    return TOKENIZERS[request.param]()


def _stream(tokenizer, ids, *, per_put=1, window=16):
    events = []
    streamer = _EventStreamer(tokenizer, RunContext("job", events.append, threading.Event()), len(ids), window=window)
    streamer.put(torch.tensor([[5, 6, 7]]))  # generate() hands over the prompt first: not text to send
    for start in range(0, len(ids), per_put):
        streamer.put(torch.tensor(ids[start : start + per_put]))
    streamer.end()
    previews = [e.preview for e in events if e.kind.value == "preview"]
    return streamer, previews, events


def test_the_sample_spans_characters_over_several_tokens(tokenizer):
    # Guards the other tests: the sample must really split characters (bytes) across tokens.
    ids = tokenizer(SAMPLE, add_special_tokens=False)["input_ids"]
    partial = [i for i in range(1, len(ids)) if tokenizer.decode(ids[:i]).endswith("\ufffd")]
    assert partial, "no token ends inside a character"


@pytest.mark.parametrize("per_put", [1, 3])
@pytest.mark.parametrize("window", [2, 16])
def test_streamed_chunks_join_to_the_decoded_text(tokenizer, per_put, window):
    ids = tokenizer(SAMPLE, add_special_tokens=False)["input_ids"]
    ids = [*ids[:10], tokenizer.eos_token_id, *ids[10:]]  # a special token inside is skipped, as decode does
    streamer, previews, _ = _stream(tokenizer, ids, per_put=per_put, window=window)
    expected = tokenizer.decode(ids, skip_special_tokens=True)
    assert "".join(previews) == streamer.text == expected
    assert all(previews) and not any("\ufffd" in chunk for chunk in previews)  # only whole characters
    assert streamer.tokens == len(ids)


def test_progress_counts_every_token_in_order(tokenizer):
    ids = tokenizer(SAMPLE, add_special_tokens=False)["input_ids"]
    _, _, events = _stream(tokenizer, ids)
    steps = [e.step for e in events if e.kind.value == "progress"]
    assert steps[: len(ids)] == list(range(1, len(ids) + 1))  # one per token; end() adds the last again


def test_a_half_character_at_the_end_is_still_sent(tokenizer):
    ids = tokenizer("ok ☕", add_special_tokens=False)["input_ids"][:-1]  # cut inside the cup's bytes
    _, previews, _ = _stream(tokenizer, ids)
    assert "".join(previews) == tokenizer.decode(ids, skip_special_tokens=True)
    assert previews[-1].endswith("\ufffd")


def test_each_token_decodes_a_short_window_once(tokenizer, monkeypatch):
    # A 2,000-token line: every decode stays short, and there is about one decode per token.
    ids = tokenizer(" ".join(["the light on the hills"] * 400), add_special_tokens=False)["input_ids"][:2000]
    lengths = []
    decode = tokenizer.decode

    def counting(token_ids, **kwargs):
        lengths.append(len(token_ids))
        return decode(token_ids, **kwargs)

    monkeypatch.setattr(tokenizer, "decode", counting)
    streamer, _, _ = _stream(tokenizer, ids, window=16)
    monkeypatch.undo()
    assert streamer.text == tokenizer.decode(ids, skip_special_tokens=True)
    assert max(lengths) <= 16 + 2  # the window, plus the ids not yet whole characters
    assert len(lengths) <= 1.15 * len(ids)
