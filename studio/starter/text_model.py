"""The starter text model: a small Llama trained on the King James Bible from Debian.

Data: the ``bible-kjv-text`` package, read with the ``bible`` command of ``bible-kjv``
(``apt install bible-kjv``): 31,102 verses, ~4.4 M characters. The 1611 translation is out of
copyright in most of the world; in the United Kingdom the Crown's letters patent still restrict
printing the KJV — the card says so. Every 20th chapter is held out for validation.

It is a pastiche generator: it continues text in the voice of the KJV. It has no chat template,
so the Text tab treats it as a base model (it continues what you write).
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

ALL_VERSES = "Genesis 1:1-Revelation 22:21"
_VERSE = re.compile(r"^([1-3]?[A-Za-z]+)(\d+):(\d+) (.*)$")
END_OF_TEXT = "<|endoftext|>"
PROMPTS = (
    "In the beginning",
    "And the river",
    "The song of the morning",
    "Behold, a light",
    "And I saw a great city",
    "The wind and the sea",
    "Blessed are they that",
    "And the stars of heaven",
)


def read_bible() -> list[tuple[str, list[str]]]:
    """(chapter reference, verses) for every chapter, in order."""
    program = shutil.which("bible")
    if program is None:
        raise SystemExit("the text starter trains on the KJV from Debian: sudo apt install bible-kjv")
    text = subprocess.run(
        [program, "-f", "-l100000", ALL_VERSES], check=True, capture_output=True, text=True
    ).stdout  # fmt: skip
    chapters: list[tuple[str, list[str]]] = []
    for line in text.splitlines():
        match = _VERSE.match(line.strip())
        if not match:
            continue
        book, chapter, verse, words = match.groups()
        if verse == "1" or not chapters:
            chapters.append((f"{book} {chapter}", []))
        chapters[-1][1].append(" ".join(words.split()))
    return chapters


def split(chapters: list[tuple[str, list[str]]]) -> tuple[str, str]:
    """(training text, validation text): chapters as paragraphs of verses, every 20th held out."""
    train, held = [], []
    for index, (_, verses) in enumerate(chapters):
        (held if index % 20 == 10 else train).append("\n".join(verses))
    return "\n\n".join(train), "\n\n".join(held)


def train_tokenizer(text: str, vocab_size: int, folder: Path):
    """A byte-level BPE (GPT-2 style), saved as a transformers fast tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[END_OF_TEXT],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(text.split("\n\n"), trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, bos_token=END_OF_TEXT, eos_token=END_OF_TEXT, pad_token=END_OF_TEXT
    )
    fast.model_max_length = 1024
    fast.save_pretrained(folder)
    return fast


def encode(tokenizer, text: str) -> np.ndarray:
    eot = tokenizer.convert_tokens_to_ids(END_OF_TEXT)
    ids: list[int] = []
    for chapter in text.split("\n\n"):
        ids += tokenizer(chapter, add_special_tokens=False)["input_ids"] + [eot]
    return np.array(ids, dtype=np.int32)


def longest_copy(sample_words: list[str], corpus: str) -> int:
    """Longest run of consecutive words of the sample found verbatim in the corpus (a two-pointer
    scan: if words i..j occur, so do i+1..j)."""
    best, j = 0, 0
    for i in range(len(sample_words)):
        j = max(j, i)
        while j < len(sample_words) and " ".join(sample_words[i : j + 1]) in corpus:
            j += 1
        best = max(best, j - i)
    return best


def measure(folder: Path, training_text: str, samples: int = 40, seed: int = 5) -> dict:
    """Word validity, verbatim copying and speed of samples drawn like the Text tab draws them."""
    import torch
    from transformers import AutoTokenizer, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = LlamaForCausalLM.from_pretrained(folder).eval()
    corpus_words = set(re.findall(r"[a-z]+", training_text.lower()))
    dictionary_file = Path("/usr/share/dict/words")
    dictionary = set()
    if dictionary_file.is_file():
        dictionary = {w.strip().lower() for w in dictionary_file.read_text(errors="replace").splitlines()}
    flat_corpus = " ".join(training_text.split())
    known, total, copies, texts, seconds = 0, 0, [], [], []
    for index in range(samples):
        prompt = PROMPTS[index % len(PROMPTS)]
        torch.manual_seed(seed + index)
        inputs = tokenizer(prompt, return_tensors="pt")
        started = time.perf_counter()
        with torch.inference_mode():
            out = model.generate(
                **inputs, max_new_tokens=120, do_sample=True, temperature=0.8, top_p=0.95, top_k=50,
                repetition_penalty=1.1, pad_token_id=tokenizer.eos_token_id,
            )  # fmt: skip
        seconds.append(time.perf_counter() - started)
        text = tokenizer.decode(out[0][inputs["input_ids"].shape[1] :], skip_special_tokens=True)
        words = re.findall(r"[a-z]+", text.lower())
        known += sum(1 for w in words if w in corpus_words or w in dictionary)
        total += len(words)
        copies.append(longest_copy(text.split(), flat_corpus))
        texts.append(prompt + text)
    return {
        "samples": samples,
        "known_words": round(known / max(total, 1), 4),
        "dictionary": "training vocabulary + /usr/share/dict/words" if dictionary else "training vocabulary",
        "longest_copy_words_median": int(np.median(copies)),
        "longest_copy_words_max": int(max(copies)),
        "tokens_per_second": round(120 / float(np.median(seconds)), 1),
        "examples": texts[:3],
    }


def train_text(out: Path, steps: int, threads: int, measure_only: bool = False) -> None:
    import platform

    import torch

    from studio.starter.training import TrainingPlan, TrainingReport, llama_shape, make_model, save_report, train

    chapters = read_bible()
    training_text, validation_text = split(chapters)
    out.mkdir(parents=True, exist_ok=True)
    plan = TrainingPlan(
        batch_size=24, learning_rate=2e-3, max_steps=steps, threads=threads, model=llama_shape(256, 640, 5, 1024)
    )
    data = {"chapters": len(chapters), "verses": sum(len(v) for _, v in chapters), "characters": len(training_text)}
    if measure_only:
        report, stored = TrainingReport.stored(out)
        tokenizer_vocab = stored["data"]["vocabulary"]
    else:
        tokenizer = train_tokenizer(training_text, 2048, out)
        tokenizer_vocab = len(tokenizer)
        train_stream, validation_stream = encode(tokenizer, training_text), encode(tokenizer, validation_text)
        data.update(
            vocabulary=tokenizer_vocab,
            training_tokens=len(train_stream),
            validation_tokens=len(validation_stream),
        )
        eot = tokenizer.convert_tokens_to_ids(END_OF_TEXT)
        model = make_model(tokenizer_vocab, plan, {"bos": eot, "eos": eot, "pad": eot})
        report = train(model, train_stream, validation_stream, plan)
        model.generation_config.pad_token_id = eot
        model.to(torch.float32).save_pretrained(out, safe_serialization=True)
        save_report(out, "training_report.json", {"plan": plan.__dict__, "data": data, **report.to_dict()})
    data = json.loads((out / "training_report.json").read_text())["data"]
    quality = measure(out, training_text)
    save_report(
        out, "training_report.json", {"plan": plan.__dict__, "data": data, **report.to_dict(), "quality": quality}
    )
    machine = f"{platform.machine()} CPU, {threads} threads, torch {torch.__version__}"
    write_card(out, plan, data, report, quality, machine, tokenizer_vocab)
    from studio.starter.data_digest import stamp_text

    stamp_text(out)  # the data digest outputs record, in the card, the report and studio_training.json


def write_card(out: Path, plan, data: dict, report, quality: dict, machine: str, vocab: int) -> None:
    curve = "\n".join(
        f"| {p['step']} | {p['minutes']} | {p['train_loss']:.3f} | {p['validation_loss']:.3f} |" for p in report.curve
    )
    best = min(report.curve, key=lambda point: point["validation_loss"])
    examples = "\n\n".join("> " + e.replace("\n", "\n> ") for e in quality["examples"])
    q = quality
    card = f"""---
license: apache-2.0
library_name: transformers
pipeline_tag: text-generation
tags: [studio-starter, base-model, pastiche]
studio_hint: "This starter model continues what you write in the voice of the King James Bible; it does not chat or follow instructions. Start a passage ('And the river') and it carries on. Add a chat model in Models ▸ Model manager for anything else."
---

# Studio starter text

A very small language model that ships with Studio so the Text tab works on a fresh install with
no download. It **continues text in the voice of the King James Bible** — a pastiche generator
for archaic, psalm-like prose and verse. It is a base model: no chat, no instructions, no
knowledge; write the opening of a passage and it carries on. Add a chat model (Models ▸ Model
manager) for anything else.

## Training data

The King James Version (1611) as packaged by Debian (`bible-kjv-text`, read with `bible` from
`bible-kjv`; "provided for unrestricted use"): {data["chapters"]:,} chapters, {data["verses"]:,}
verses. The translation is in the public domain in most countries; **in the United Kingdom the
KJV's text remains under the Crown's perpetual letters patent**, which restrict printing it there.
Every 20th chapter is held out for validation.

## Model

`LlamaForCausalLM`, {report.parameters:,} parameters ({plan.model["num_hidden_layers"]} layers,
width {plan.model["hidden_size"]}), byte-level BPE tokenizer of {vocab:,} tokens trained on the
same text, context {plan.model["max_position_embeddings"]} tokens. Safetensors.

## Training

```
sudo apt install bible-kjv
pip install -e ".[train]"
python -m studio.starter.train text      # writes this folder
```

Seed {plan.seed}, {report.steps} steps of {plan.batch_size} × {plan.seq_len} tokens
({report.tokens_seen:,} tokens, {data["training_tokens"]:,} in the training set), AdamW (lr
{plan.learning_rate}, warm-up {plan.warmup_steps}, cosine to 10 %) — {report.minutes} minutes on
{machine}. The same seed, data and thread count give the same curve.

| step | minutes | train loss | validation loss (nats/token) |
|---|---|---|---|
{curve}

Validation loss was lowest at step {best["step"]} ({best["validation_loss"]:.3f}); the shipped
weights are the last step's ({report.validation_loss:.3f}): past ~{best["step"]} steps this model starts to
learn its one book by heart rather than its style, so a re-train should stop there. The minutes
are wall-clock time on a machine doing other work as well (about 1.25 s a step when idle).

## Measured quality

`python -m studio.starter.train text --measure-only` — {q["samples"]} samples of 120 tokens
(temperature 0.8, top-p 0.95, top-k 50, repetition penalty 1.1, the Text tab's defaults) from
prompts such as "{PROMPTS[0]}", "{PROMPTS[2]}":

| measure | value |
|---|---|
| validation loss | {report.validation_loss:.3f} nats/token |
| generated words that are real words ({q["dictionary"]}) | {q["known_words"]:.1%} |
| longest verbatim copy from the training text, median / worst sample | {q["longest_copy_words_median"]} / {q["longest_copy_words_max"]} words |
| speed on this CPU | {q["tokens_per_second"]} tokens/s |

Examples (seeded, unedited):

{examples}

## Limits

It writes plausible-sounding archaic English that often does not make sense; it knows nothing
beyond its one book and repeats its stock phrases ("and it came to pass"). It does not recite:
runs of more than a dozen words copied from the text are rare (see above).
"""
    (out / "README.md").write_text(card)


__all__ = ["longest_copy", "measure", "read_bible", "split", "train_text"]
