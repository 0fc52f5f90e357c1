"""Train a starter model and write it, with its model card, into ``resources/models``.

    python -m studio.starter.train music [--out FOLDER] [--steps N]
    python -m studio.starter.train text  [--out FOLDER] [--steps N]
    python -m studio.starter.train image [--out FOLDER]

Needs the training extras (``pip install -e ".[train]"``; text also needs the Debian package
``bible-kjv``). Deterministic: the same seed, data and ``--threads`` give the same loss curve.
"""

from __future__ import annotations

import argparse
import logging
import platform
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
MODELS = REPO / "resources" / "models"
CACHE = Path.home() / ".cache" / "studio-starter"

MELODY_FOLDER = "studio-starter-melody"
TEXT_FOLDER = "studio-starter-text"
PATTERNS_FOLDER = "studio-starter-patterns"


def train_music(out: Path, steps: int, threads: int, measure_only: bool = False) -> None:
    import torch

    from studio.engines.melody_tokens import MelodyVocabulary
    from studio.starter import melody_corpus
    from studio.starter.training import TrainingPlan, TrainingReport, llama_shape, make_model, save_report, train

    vocab = MelodyVocabulary.standard()
    tunes = melody_corpus.build(CACHE / "melody-corpus.json", workers=threads)
    held_out = [melody_corpus.is_validation(t["title"], i) for i, t in enumerate(tunes)]
    training = [t for t, v in zip(tunes, held_out, strict=True) if not v]
    validation = [t for t, v in zip(tunes, held_out, strict=True) if v]
    order = np.random.default_rng(7).permutation(len(training))

    def stream(selected: list[dict]) -> np.ndarray:
        return np.array([vocab.id(tok) for tune in selected for tok in tune["tokens"]], dtype=np.int32)

    train_stream = stream([training[i] for i in order])
    validation_stream = stream(validation)
    plan = TrainingPlan(
        batch_size=32, learning_rate=3e-3, max_steps=steps, threads=threads, model=llama_shape(192, 512, 4, 2048)
    )
    special = {"bos": vocab.id("<bos>"), "eos": vocab.id("<eos>"), "pad": vocab.id("<pad>")}
    if measure_only:  # re-measure and re-write the card of the model already in ``out``
        report, _ = TrainingReport.stored(out)
    else:
        model = make_model(len(vocab), plan, special)
        report = train(model, train_stream, validation_stream, plan)
        out.mkdir(parents=True, exist_ok=True)
        model.generation_config.pad_token_id = special["pad"]
        model.to(torch.float32).save_pretrained(out, safe_serialization=True)
        vocab.save(out / "melody_vocab.json")
        (out / "studio_model.json").write_text(
            '{\n "format": "studio-melody",\n "kind": "music",\n "vocabulary": "melody_vocab.json",\n'
            ' "about": "A melody language model: samples a tune as notes, rendered by Studio\'s synthesiser."\n}\n'
        )
        save_report(out, "training_report.json", {"plan": plan.__dict__, **report.to_dict()})
    data = {
        "tunes": len(tunes),
        "training_tunes": len(training),
        "validation_tunes": len(validation),
        "training_tokens": len(train_stream),
        "validation_tokens": len(validation_stream),
    }
    from studio.starter import melody_card  # after the weights are saved: a card can be redone

    quality = melody_card.measure(out, validation, samples=50, seed=99)
    save_report(
        out, "training_report.json", {"plan": plan.__dict__, "data": data, **report.to_dict(), "quality": quality}
    )
    melody_card.write(out, plan, data, report, quality, _machine(threads))
    from studio.starter.data_digest import stamp_melody

    stamp_melody(out)  # the data digest outputs record, in the card, the report and studio_training.json


def _machine(threads: int) -> str:
    import torch

    return f"{platform.machine()} CPU, {threads} threads, torch {torch.__version__}, Python {platform.python_version()}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m studio.starter.train", description=__doc__.split("\n\n")[0])
    parser.add_argument("what", choices=("music", "text", "image"))
    parser.add_argument("--out", type=Path, help="folder to write (default: resources/models/<starter>)")
    parser.add_argument("--steps", type=int, help="training steps (default: the shipped model's)")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads (part of what makes a run repeatable)")
    parser.add_argument(
        "--measure-only", action="store_true", help="re-measure the model in --out and rewrite its card"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stdout)
    if args.what == "music":
        train_music(args.out or MODELS / MELODY_FOLDER, args.steps or 1000, args.threads, args.measure_only)
    elif args.what == "text":
        from studio.starter.text_model import train_text

        train_text(args.out or MODELS / TEXT_FOLDER, args.steps or 1800, args.threads, args.measure_only)
    else:
        from studio.starter.patterns_card import write_patterns_model

        write_patterns_model(args.out or MODELS / PATTERNS_FOLDER)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
