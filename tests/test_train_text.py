"""The text trainer on a tiny Llama: loss falls, the result loads through the real engine and
writes differently, cancel + resume reaches the same weights, a LoRA is filed under its base and
applied, and bad input is refused with the reason."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from tiny_models import build_tiny_causal_lm
from tiny_training_data import Run, summary_of, write_png, write_texts

from studio.core.errors import JobCancelled, StudioError
from studio.core.requests import TextRequest
from studio.core.training import TrainRequest
from studio.engines.base import RunContext
from studio.engines.devices import choose_device
from studio.engines.library.adapters import discover_adapters, inspect_peft_folder, resolve_text_lora
from studio.engines.library.classify import inspect_folder
from studio.engines.training.base import UnreadableData
from studio.engines.training.registry import trainer_for

STARTERS = Path(__file__).resolve().parents[1] / "resources" / "models"


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory) -> Path:
    return build_tiny_causal_lm(tmp_path_factory.mktemp("base") / "tiny-llama", chat_template=False)


def _plan(base, data: list[Path], trainer, **options):
    """The plan of a request; ``sample_every=0`` here means no samples at all (in a request: the default)."""
    no_samples = options.get("sample_every") == 0
    request = TrainRequest(
        medium="text", data=tuple(str(p) for p in data), name="sea", seq_len=32, batch_size=2, **options
    )
    summary = summary_of(data, "text", trainer)
    plan = trainer.plan(base, request, summary, None)
    if no_samples:
        plan.sample_every = 0
    return plan, summary


def _weights(folder: Path) -> dict:
    from safetensors.torch import load_file

    name = "adapter_model.safetensors" if (folder / "adapter_config.json").is_file() else "model.safetensors"
    return load_file(folder / name)


def _generate(spec, prompt: str, adapters=()) -> str:
    from studio.engines.transformers_text import TransformersTextEngine

    engine = TransformersTextEngine()
    loaded = engine.load(spec, choose_device("cpu"))
    request = TextRequest(prompt=prompt, model=str(spec.path), seed=7, max_tokens=24, temperature=0.9)
    result = engine.generate(loaded, request, RunContext("j", lambda e: None, threading.Event(), adapters))
    return result.outputs[0].data


def test_a_full_fine_tune_lowers_the_loss_and_writes_differently(tiny_base, tmp_path):
    trainer = trainer_for("text")
    data = write_texts(tmp_path / "data")
    base = inspect_folder(tiny_base)
    assert trainer.methods(base)[0] == "full"  # a small model: full fine-tune by default
    plan, summary = _plan(base, data, trainer, steps=40, learning_rate=5e-3, sample_every=20)
    plan.sample_prompts = plan.sample_prompts[:1]
    assert plan.method == "full" and plan.sample_prompts[0] == "The harbour wakes before"  # the data's own words
    run = Run(tmp_path / "run")
    outcome = trainer.train(base, plan, summary, choose_device("cpu"), run.context())
    losses = run.losses()
    assert len(losses) == 40 and sum(losses[-5:]) / 5 < 0.7 * sum(losses[:5]) / 5
    assert outcome.result_kind == "text" and outcome.format == "transformers-text" and outcome.steps == 40
    assert outcome.best_loss <= outcome.final_loss < losses[0]
    samples = run.samples()
    assert [s["step"] for s in samples] == [0, 20, 40] and all(s["medium"] == "text" for s in samples)
    assert samples[-1]["data"] != samples[0]["data"]  # same prompt and seed: the model changed
    trained = inspect_folder(run.root / "staging")
    assert trained.runnable and trained.format == "transformers-text" and trained.kind == "text"
    assert {"config.json", "model.safetensors", "tokenizer.json", "generation_config.json"} <= {
        p.name for p in trained.path.iterdir()
    }
    assert _generate(trained, "The harbour") != _generate(base, "The harbour")


def test_cancel_then_resume_reaches_the_weights_of_one_run(tiny_base, tmp_path):
    import torch

    trainer = trainer_for("text")
    data = write_texts(tmp_path / "data")
    base = inspect_folder(tiny_base)
    plan, summary = _plan(base, data, trainer, steps=12, checkpoint_every=5, sample_every=0, seed=3)
    whole = Run(tmp_path / "whole")
    trainer.train(base, plan, summary, choose_device("cpu"), whole.context())

    plan, summary = _plan(base, data, trainer, steps=12, checkpoint_every=5, sample_every=0, seed=3)
    parted = Run(tmp_path / "parted", cancel_after=7)
    with pytest.raises(JobCancelled):
        trainer.train(base, plan, summary, choose_device("cpu"), parted.context())
    assert not any((parted.root / "staging").iterdir())  # nothing written but checkpoints
    kept = sorted(p.name for p in (parted.root / "checkpoint").iterdir())
    assert kept == ["step-000005", "step-000007"]
    parted.resume, parted.cancel_after = True, None
    plan, summary = _plan(base, data, trainer, steps=12, checkpoint_every=5, sample_every=0, seed=3)
    outcome = trainer.train(base, plan, summary, choose_device("cpu"), parted.context())
    assert outcome.steps == 12 and parted.events[1].step == 8  # it went on from step 7
    a, b = _weights(whole.root / "staging"), _weights(parted.root / "staging")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert outcome.curve == trainer_curve(whole)


def trainer_curve(run: Run) -> list[tuple[int, float]]:
    return [(e.step, e.info["loss"]) for e in run.events if e.info and "loss" in e.info]


def test_resume_refuses_a_checkpoint_of_other_settings(tiny_base, tmp_path):
    trainer = trainer_for("text")
    data = write_texts(tmp_path / "data")
    base = inspect_folder(tiny_base)
    plan, summary = _plan(base, data, trainer, steps=8, sample_every=0)
    run = Run(tmp_path / "run", cancel_after=3)
    with pytest.raises(JobCancelled):
        trainer.train(base, plan, summary, choose_device("cpu"), run.context())
    plan, summary = _plan(base, data, trainer, steps=8, sample_every=0, learning_rate=1e-2)
    run.resume, run.cancel_after = True, None
    with pytest.raises(StudioError, match=r"other settings or data .*learning_rate"):
        trainer.train(base, plan, summary, choose_device("cpu"), run.context())


def test_a_lora_is_filed_under_its_base_and_changes_what_it_writes(tiny_base, tmp_path):
    import torch

    trainer = trainer_for("text")
    data = write_texts(tmp_path / "data")
    base = inspect_folder(tiny_base)
    plan, summary = _plan(base, data, trainer, method="lora", rank=4, steps=30, learning_rate=1e-2, sample_every=0)
    assert plan.rank == 4 and plan.alpha == 4.0
    run = Run(tmp_path / "run")
    outcome = trainer.train(base, plan, summary, choose_device("cpu"), run.context())
    assert outcome.result_kind == "lora" and run.losses()[-1] < run.losses()[0]
    folder = tmp_path / "adapters" / "sea-lora"
    folder.parent.mkdir()
    (run.root / "staging").rename(folder)
    assert sorted(p.name for p in folder.iterdir()) == ["adapter_config.json", "adapter_model.safetensors"]
    found = discover_adapters([tmp_path / "adapters"], set(), set())
    assert [s.id for s in found] == ["sea-lora"]
    spec = inspect_peft_folder(folder)
    assert spec.kind == "lora" and spec.runnable and spec.details["layout"] == "peft"
    assert spec.family == "llama" and spec.details["width"] == 32 and spec.details["rank"] == 4

    class Catalog:
        def adapters(self):
            return found

    request = TextRequest(prompt="The harbour", model=str(base.path), lora="sea-lora", seed=7)
    lora = resolve_text_lora(Catalog(), base, request)
    assert lora is not None
    assert any(not torch.all(t == 0) for k, t in _weights(folder).items() if "lora_B" in k)
    assert _generate(base, "The harbour", [lora]) != _generate(base, "The harbour")


def test_estimate_only_times_a_few_steps_and_writes_nothing(tiny_base, tmp_path):
    trainer = trainer_for("text")
    data = write_texts(tmp_path / "data")
    base = inspect_folder(tiny_base)
    plan, summary = _plan(base, data, trainer, steps=200, sample_every=0)
    run = Run(tmp_path / "run", estimate_only=True)
    outcome = trainer.train(base, plan, summary, choose_device("cpu"), run.context())
    estimating = [e for e in run.events if e.info and e.info.get("phase") == "estimating"]
    assert estimating and estimating[-1].info["eta_s"] > 0 and outcome.steps == 5
    assert not any((run.root / "staging").iterdir()) and not (run.root / "checkpoint").exists()


def test_bad_text_input_is_refused_with_the_reason(tmp_path):
    trainer = trainer_for("text")
    png = write_png(tmp_path / "photo.png")
    with pytest.raises(UnreadableData, match=r"photo.png is a PNG image, not text"):
        trainer.inspect(png)
    disguised = write_png(tmp_path / "notes.txt")
    with pytest.raises(UnreadableData, match=r"notes.txt is a PNG image"):
        trainer.inspect(disguised)
    (tmp_path / "empty.txt").write_text("  \n\n", encoding="utf-8")
    with pytest.raises(UnreadableData, match=r"empty.txt is empty"):
        trainer.inspect(tmp_path / "empty.txt")
    (tmp_path / "latin.txt").write_bytes("caf\xe9 au lait".encode("latin-1"))
    with pytest.raises(UnreadableData, match="not UTF-8 text"):
        trainer.inspect(tmp_path / "latin.txt")
    good = write_texts(tmp_path / "data", count=1)[0]
    assert trainer.inspect(good).units == len(good.read_text())


def test_near_duplicates_are_grouped_by_shingles(tmp_path):
    trainer = trainer_for("text")
    a, b, c = write_texts(tmp_path / "data", count=3)
    copy = tmp_path / "data" / "sea-1 copy.txt"
    copy.write_text(a.read_text() + "\nOne more line at the end of the copy.\n", encoding="utf-8")
    summary = summary_of([a, b, c, copy], "text", trainer)
    assert trainer.near_duplicates(summary.files) == [(str(copy), str(a))] or trainer.near_duplicates(
        summary.files
    ) == [(str(a), str(copy))]


def test_bases_the_text_trainer_cannot_train_say_why(tmp_path):
    from tiny_models import build_tiny_sd_pipeline

    trainer = trainer_for("text")
    melody = inspect_folder(STARTERS / "studio-starter-melody")
    with pytest.raises(StudioError, match="is a music model; the text trainer teaches"):
        trainer.methods(melody)
    image = inspect_folder(build_tiny_sd_pipeline(tmp_path / "sd"))
    with pytest.raises(StudioError, match="is an image model"):
        trainer.methods(image)
    from dataclasses import replace

    gguf = replace(inspect_folder(STARTERS / "studio-starter-text"), format="gguf", name="starter.gguf")
    with pytest.raises(StudioError, match="GGUF file: its weights are quantised"):
        trainer.methods(gguf)
    patterns = inspect_folder(STARTERS / "studio-starter-patterns")
    with pytest.raises(StudioError, match="pattern painter"):
        trainer.methods(patterns)
    starter = inspect_folder(STARTERS / "studio-starter-text")
    assert trainer.methods(starter) == ("full", "lora")
    big = replace(starter, id="someone-7b", details={**starter.details, "size_bytes": 14_000_000_000})
    assert trainer.methods(big) == ("lora", "full")
