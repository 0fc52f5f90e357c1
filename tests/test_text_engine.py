"""Text generation through the real worker and a tiny Llama loaded with from_pretrained."""

import re

import pytest
from helpers import EventLog

from studio.core.requests import TextRequest
from studio.engines.devices import choose_device
from studio.engines.library import inspect_folder
from studio.engines.transformers_text import TransformersTextEngine


def _run(services, request, timeout=120):
    log = EventLog(services.worker)
    job = services.worker.submit(request)
    return log, log.wait_end(job, timeout)


def _saved_text(item):
    return item.path.read_text("utf-8").split("\n---\n\n", 1)[1].removesuffix("\n")


def test_streamed_text_arrives_in_order_and_equals_the_saved_text(services, tiny_lm):
    log, end = _run(services, TextRequest(prompt="the painter", model=str(tiny_lm), max_tokens=24, seed=1))
    assert end.kind.value == "finished", end.error
    chunks = [e.preview for e in log.of(end.job_id) if e.kind.value == "preview"]
    steps = [e.step for e in log.of(end.job_id) if e.kind.value == "progress"]
    assert len(chunks) > 1 and steps == sorted(steps)
    assert "".join(chunks) == _saved_text(end.result[0])
    assert end.info["tokens"] == 24


def test_same_seed_gives_the_same_text_and_another_seed_differs(services, tiny_lm):
    texts = []
    for seed in (5, 5, 6):
        _, end = _run(services, TextRequest(prompt="light on the hills", model=str(tiny_lm), max_tokens=20, seed=seed))
        texts.append(_saved_text(end.result[0]))
    assert texts[0] == texts[1]
    assert texts[0] != texts[2]


def test_stop_ends_generation_within_one_token(services, tiny_lm):
    log = EventLog(services.worker)
    job = services.worker.submit(TextRequest(prompt="music", model=str(tiny_lm), max_tokens=4000, seed=2))
    log.wait_for(lambda e: e.job_id == job and e.kind.value == "progress" and e.step >= 5)
    services.worker.cancel(job)
    asked_at = max(e.step for e in log.of(job) if e.kind.value == "progress")
    end = log.wait_end(job)
    assert end.kind.value == "cancelled"
    last = max(e.step for e in log.of(job) if e.kind.value == "progress")
    assert last - asked_at <= 1
    assert end.info["partial"]
    assert services.store.list() == []


def test_base_model_continues_the_prompt_and_notes_the_system_prompt(services, tiny_base_lm):
    request = TextRequest(prompt="every artist", model=str(tiny_base_lm), max_tokens=8, seed=3, system="be brief")
    _, end = _run(services, request)
    assert end.kind.value == "finished"
    assert end.result[0].record.output["chat_template"] is False
    assert any("system prompt" in note for note in end.info.get("notes", []) or end.result[0].record.output["notes"])


def test_max_tokens_beyond_the_context_are_clamped_with_a_note(services, tiny_lm):
    _, end = _run(services, TextRequest(prompt="x", model=str(tiny_lm), max_tokens=5000, seed=1, temperature=0))
    record = end.result[0].record
    assert record.output["tokens"] <= 1024
    assert any("clamped" in note for note in record.output["notes"])


def test_stop_strings_end_the_text(tiny_lm):
    # Stop at a plain-ASCII piece of what greedy decoding writes anyway; it must end there.
    engine = TransformersTextEngine()
    loaded = engine.load(inspect_folder(tiny_lm), choose_device("cpu"))

    class Ctx:
        cancelled = False

        def progress(self, *a, **k):
            pass

        def preview(self, *a, **k):
            pass

    free = engine.generate(loaded, TextRequest(prompt="hi", model="m", max_tokens=30, temperature=0, seed=1), Ctx())
    text = free.outputs[0].data
    piece = re.search(r"[A-Za-z0-9]{2,}", text[4:])
    assert piece, text
    stop = piece.group(0)
    stopped = engine.generate(
        loaded, TextRequest(prompt="hi", model="m", max_tokens=30, temperature=0, seed=1, stop=(stop,)), Ctx()
    )
    assert stopped.outputs[0].info["tokens"] < free.outputs[0].info["tokens"]
    assert stop in stopped.outputs[0].data


def test_continue_extends_the_earlier_text(services, tiny_lm):
    _, first = _run(services, TextRequest(prompt="dawn", model=str(tiny_lm), max_tokens=6, seed=1))
    earlier = _saved_text(first.result[0])
    _, more = _run(
        services, TextRequest(prompt="dawn", model=str(tiny_lm), max_tokens=6, seed=1, continue_from=earlier)
    )
    assert _saved_text(more.result[0]).startswith(earlier)
    assert len(_saved_text(more.result[0])) > len(earlier)


def test_a_folder_that_is_not_a_text_model_is_refused(services, tiny_sd):
    _, end = _run(services, TextRequest(prompt="x", model=str(tiny_sd)))
    assert end.kind.value == "error" and "image model" in end.error


@pytest.mark.parametrize("broken", ["config", "weights"])
def test_broken_model_folder_is_a_clear_error(services, tiny_lm, tmp_path, broken):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(tiny_lm, copy)
    if broken == "config":
        (copy / "config.json").write_text(
            '{"architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": "x"}'
        )
    else:
        weights = copy / "model.safetensors"
        weights.write_bytes(weights.read_bytes()[:100])
    _, end = _run(services, TextRequest(prompt="x", model=str(copy)))
    assert end.kind.value == "error"
    assert end.error and "Traceback" not in end.error
    # and the worker is still there for the next job
    _, ok = _run(services, TextRequest(prompt="x", model=str(tiny_lm), max_tokens=3))
    assert ok.kind.value == "finished"
