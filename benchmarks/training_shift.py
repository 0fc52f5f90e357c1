"""Does fine-tuning move the starters toward the artist's data? Minutes on this CPU, and the shift.

Music: the melody starter fine-tuned (Studio's ``MelodyTrainer``, full) on ``--tunes`` tunes in one
idiom the starter's Irish and Scottish dance music rarely has — minor-mode waltzes in 3/4, composed
here programmatically as MIDI files (phrases of A, D, E and G minor, a bass line beside the melody)
and read by the trainer like any artist's MIDI. Measured on samples drawn from ``<bos>`` with the
same seeds before and after (the model chooses the header itself, then the notes under the
meter's rules): the share of 3/4, of minor and of waltzes among the headers it writes, and the
share of tunes whose notes fit C minor better than C major (Krumhansl–Kessler profiles).

Text: the text starter (trained on the King James Bible) fine-tuned (``TextTrainer``, full) on
``--text-kb`` kB of the Jargon File (chapters 1–2 and 4–9: essays on hacker slang and style; public
domain, Debian's ``jargon-text``). Measured on continuations of the same prompts with the same
seeds before and after: the share of generated words found in the data's vocabulary, and the
share of them that are the data's own (in its vocabulary but never in the base's samples).

    python -m benchmarks.training_shift [--part music|text|both] [--steps N] [--quick] [--json]
"""

from __future__ import annotations

import argparse
import gzip
import re
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from benchmarks.report import run_main

REPO = Path(__file__).resolve().parents[1]
STARTERS = REPO / "resources" / "models"
JARGON = Path("/usr/share/doc/jargon-text/jargon.txt.gz")
TEXT_PROMPTS = ("The", "In the", "When a", "It is", "Most of", "There are", "This is", "One of")
_KEYS = (("Am", 57), ("Dm", 62), ("Em", 52), ("Gm", 55))  # the key signature and the tonic's MIDI number


def _context(root: Path):
    from studio.engines.training.base import TrainContext

    def emit(event) -> None:
        if event.step and event.total and (event.step % 25 == 0 or event.step == event.total):
            print(f"  step {event.step}/{event.total} {event.info.get('loss', '')}", file=sys.stderr, flush=True)

    out = root / "staging"
    out.mkdir(parents=True, exist_ok=True)
    return TrainContext("bench", emit, threading.Event(), output_dir=out, checkpoint_dir=root / "checkpoint")


# -- music ----------------------------------------------------------------------------------------


def write_tunes(folder: Path, count: int) -> list[Path]:
    import tiny_training_data as data

    paths = []
    for index in range(count):
        key, tonic = _KEYS[index % len(_KEYS)]
        notes = [(pitch - 57 + tonic, quarters) for pitch, quarters in data.waltz_notes(100 + index, bars=16)]
        paths.append(data.write_midi(folder / f"waltz-{index + 1:02d}.mid", notes, key=key))
    return paths


def free_tunes(folder: Path, seeds: range, bars: int) -> list[dict]:
    """Tunes the model writes unprompted: the header sampled from ``<bos>`` (one token of each
    field, from that field's tokens), then the notes under the meter's rules, as the engine samples."""
    import torch

    from studio.engines import melody
    from studio.engines.devices import choose_device
    from studio.engines.library.classify import inspect_folder
    from studio.engines.training.tune_data import estimate_key

    loaded = melody.load(inspect_folder(folder), choose_device("cpu"))
    vocab, model = loaded.vocab, loaded.model
    found = []
    for seed in seeds:
        generator = torch.Generator().manual_seed(seed)
        ids = [vocab.id("<bos>")]
        header = {}
        with torch.inference_mode():
            for prefix in ("M:", "K:", "R:", "Q:"):
                allowed = vocab.ids_with_prefix(prefix)
                logits = model(input_ids=torch.tensor([ids])).logits[0, -1]
                probs = torch.softmax(logits[allowed], dim=-1)
                token = allowed[int(torch.multinomial(probs, 1, generator=generator))]
                ids.append(token)
                header[prefix[0]] = vocab.tokens[token][2:]
        meter = header["M"] if header["M"] != "other" else "4/4"
        plan = melody.TunePlan(header["R"], meter, header["K"], header["Q"], "harp", 0, False, 120.0)
        tune = melody.sample_tune(loaded, plan, bars, seed=seed, temperature=1.0, top_k=0)
        weights = [0.0] * 12
        from studio.engines.melody_tokens import decode_notes

        for note in decode_notes(vocab, tune)[1]:
            if note.pitch is not None:
                weights[note.pitch % 12] += float(note.quarters)
        _, mode = estimate_key(weights, [(0, "major"), (0, "minor")])
        found.append({"meter": header["M"], "mode": header["K"], "type": header["R"], "notes_mode": mode})
    return found


def _shares(tunes: list[dict]) -> dict:
    count = max(1, len(tunes))
    return {
        "meter_3_4": round(sum(t["meter"] == "3/4" for t in tunes) / count, 3),
        "minor": round(sum(t["mode"] == "minor" for t in tunes) / count, 3),
        "waltz": round(sum(t["type"] == "waltz" for t in tunes) / count, 3),
        "notes_minor": round(sum(t["notes_mode"] == "minor" for t in tunes) / count, 3),
    }


def measure_music(args: argparse.Namespace, root: Path) -> dict:
    from tiny_training_data import summary_of

    from studio.core.training import TrainRequest
    from studio.engines.devices import choose_device
    from studio.engines.library.classify import inspect_folder
    from studio.engines.training.melody_trainer import MelodyTrainer

    trainer = MelodyTrainer()
    paths = write_tunes(root / "tunes", args.tunes)
    summary = summary_of(paths, "music", trainer)
    data_shares = _shares(
        [
            {"meter": t.meter, "mode": t.mode, "type": t.tune_type, "notes_mode": t.mode}
            for t in trainer._tunes(summary.files)
        ]
    )
    base = inspect_folder(STARTERS / "studio-starter-melody")
    request = TrainRequest(
        medium="music", data=(str(root / "tunes"),), name="waltzes", steps=args.music_steps, batch_size=args.batch,
        seq_len=128, seed=1,
    )  # fmt: skip
    plan = trainer.plan(base, request, summary, None)
    plan.sample_every = 0  # timed without samples; the measurement below samples both models alike
    seeds = range(1000, 1000 + args.samples)
    before = _shares(free_tunes(base.path, seeds, args.bars))
    started = time.perf_counter()
    outcome = trainer.train(base, plan, summary, choose_device("cpu"), _context(root / "music-run"))
    minutes = (time.perf_counter() - started) / 60
    after = _shares(free_tunes(root / "music-run" / "staging", seeds, args.bars))
    result = {
        "shift_music_tunes": len(summary.files),
        "shift_music_steps": plan.steps,
        "shift_music_minutes": round(minutes, 2),
        "shift_music_final_loss": round(outcome.final_loss, 3),
        "shift_music_samples": len(seeds),
    }
    for key in before:
        result[f"shift_music_{key}_before"] = before[key]
        result[f"shift_music_{key}_after"] = after[key]
        result[f"shift_music_{key}_data"] = data_shares[key]
    return result


# -- text ------------------------------------------------------------------------------------------


def write_texts(folder: Path, kilobytes: int) -> list[Path]:
    """Chapters of the Jargon File as the artist's files, paragraphs re-flowed, up to ``kilobytes``."""
    if not JARGON.is_file():
        raise SystemExit("the text part reads the Jargon File from Debian: apt install jargon-text")
    text = gzip.decompress(JARGON.read_bytes()).decode("utf-8")
    chapters = re.split(r"(?m)^Chapter\s(\d+)\.\s", text)  # the file writes "Chapter\xa01.\xa0"
    folder.mkdir(parents=True, exist_ok=True)
    paths, budget = [], kilobytes * 1000
    for number, body in zip(chapters[1::2], chapters[2::2], strict=True):
        if int(number) in (3,) or int(number) > 9 or budget <= 0:
            continue  # chapter 3 is a revision history, 10 on are tables
        title, _, rest = body.partition("\n")
        paragraphs = [" ".join(p.split()) for p in re.split(r"\n\s*\n", rest) if p.strip()]
        written = f"{title.strip()}\n\n" + "\n\n".join(paragraphs) + "\n"
        written = written[:budget]
        budget -= len(written.encode("utf-8"))
        path = folder / f"chapter-{int(number):02d}.txt"
        path.write_text(written, encoding="utf-8")
        paths.append(path)
    return paths


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z]+(?:'[a-z]+)?", text.lower())


def continuations(folder: Path, prompts: tuple[str, ...], tokens: int) -> list[str]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    texts = []
    for index, prompt in enumerate(prompts):
        torch.manual_seed(50 + index)
        encoded = tokenizer(prompt, return_tensors="pt")
        with torch.inference_mode():
            out = model.generate(
                **encoded, max_new_tokens=tokens, do_sample=True, temperature=0.8, top_k=50, top_p=0.95,
                repetition_penalty=1.1, pad_token_id=tokenizer.eos_token_id,
            )  # fmt: skip
        texts.append(tokenizer.decode(out[0][encoded["input_ids"].shape[1] :], skip_special_tokens=True))
    return texts


def measure_text(args: argparse.Namespace, root: Path) -> dict:
    from tiny_training_data import summary_of

    from studio.core.training import TrainRequest
    from studio.engines.devices import choose_device
    from studio.engines.library.classify import inspect_folder
    from studio.engines.training.text_trainer import TextTrainer

    trainer = TextTrainer()
    paths = write_texts(root / "texts", args.text_kb)
    summary = summary_of(paths, "text", trainer)
    vocabulary = {w for p in paths for w in _words(p.read_text(encoding="utf-8"))}
    base = inspect_folder(STARTERS / "studio-starter-text")
    request = TrainRequest(
        medium="text", data=(str(root / "texts"),), name="jargon", steps=args.text_steps, batch_size=args.batch,
        seq_len=256, seed=1,
    )  # fmt: skip
    plan = trainer.plan(base, request, summary, None)
    plan.sample_every = 0
    before = continuations(base.path, TEXT_PROMPTS, args.tokens)
    started = time.perf_counter()
    outcome = trainer.train(base, plan, summary, choose_device("cpu"), _context(root / "text-run"))
    minutes = (time.perf_counter() - started) / 60
    after = continuations(root / "text-run" / "staging", TEXT_PROMPTS, args.tokens)
    before_words = [w for t in before for w in _words(t)]
    after_words = [w for t in after for w in _words(t)]
    own = vocabulary - set(before_words)  # the data's words the base never wrote here

    def share(words: list[str], known: set[str]) -> float:
        return round(sum(w in known for w in words) / max(1, len(words)), 3)

    return {
        "shift_text_kb": round(sum(p.stat().st_size for p in paths) / 1000, 1),
        "shift_text_steps": plan.steps,
        "shift_text_minutes": round(minutes, 2),
        "shift_text_final_loss": round(outcome.final_loss, 3),
        "shift_text_overlap_before": share(before_words, vocabulary),
        "shift_text_overlap_after": share(after_words, vocabulary),
        "shift_text_own_words_before": share(before_words, own),
        "shift_text_own_words_after": share(after_words, own),
        "shift_text_example_before": (TEXT_PROMPTS[0] + before[0])[:160],
        "shift_text_example_after": (TEXT_PROMPTS[0] + after[0])[:160],
    }


def measure(args: argparse.Namespace) -> dict:
    import torch

    import studio.engines  # noqa: F401 - offline, quiet Hugging Face settings first

    torch.set_num_threads(args.threads)
    if args.quick:
        args.music_steps, args.text_steps, args.samples, args.tokens = 40, 40, 8, 40
    result: dict = {"shift_threads": args.threads}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        if args.part in ("music", "both"):
            result.update(measure_music(args, root))
        if args.part in ("text", "both"):
            result.update(measure_text(args, root))
    return result


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("music", "text", "both"), default="both")
    parser.add_argument("--tunes", type=int, default=20)
    parser.add_argument("--text-kb", type=int, default=50)
    parser.add_argument("--music-steps", type=int, default=150)
    parser.add_argument("--text-steps", type=int, default=200)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--samples", type=int, default=24, help="tunes sampled before and after")
    parser.add_argument("--bars", type=int, default=4, help="bars of each sampled tune")
    parser.add_argument("--tokens", type=int, default=60, help="tokens of each text continuation")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (1 is faster on a busy machine)")
    parser.add_argument("--quick", action="store_true", help="fewer steps and samples")
    parser.add_argument("--json", action="store_true")
    return parser


if __name__ == "__main__":
    raise SystemExit(run_main(build_parser, measure))
