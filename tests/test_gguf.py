"""GGUF models: the header reader, where the apps keep them, and the llama.cpp engine."""

from __future__ import annotations

import json
import shutil
import struct
import threading
from pathlib import Path

import pytest

from studio.core.requests import TextRequest
from studio.engines.base import RunContext
from studio.engines.library.catalog import ModelCatalog
from studio.engines.library.gguf_files import GGUFError, app_gguf_models, inspect_gguf, read_gguf_info
from tests.helpers import EventLog
from tests.tiny_gguf import build_tiny_gguf, write_llama_gguf


@pytest.fixture(scope="module")
def gguf_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("gguf")
    build_tiny_gguf(root / "chat", quant="f16")
    build_tiny_gguf(root / "q8", quant="q8_0")
    build_tiny_gguf(root / "base", quant="f16", chat_template=False)
    return root


@pytest.fixture(scope="module")
def chat_gguf(gguf_root) -> Path:
    return gguf_root / "chat" / "tiny-llama-f16.gguf"


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "home"
    folder.mkdir()
    monkeypatch.setenv("HOME", str(folder))
    monkeypatch.delenv("OLLAMA_MODELS", raising=False)
    return folder


def test_header_facts_are_read_without_the_weights(chat_gguf, gguf_root):
    info = read_gguf_info(chat_gguf)
    assert info.architecture == "llama"
    assert info.quantisation == "F16"
    assert info.context_length == 1024
    assert "<|assistant|>" in info.chat_template
    hf = json.loads((gguf_root / "chat" / "hf" / "config.json").read_text())
    assert info.parameters > hf["vocab_size"] * hf["hidden_size"]  # embeddings and every layer counted
    assert read_gguf_info(gguf_root / "q8" / "tiny-llama-q8_0.gguf").quantisation == "Q8_0"
    assert read_gguf_info(gguf_root / "base" / "tiny-llama-f16.gguf").chat_template == ""


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b"", "not a GGUF file"),
        (b"PK\x03\x04 a zip file", "not a GGUF file"),
        (b"GGUF\x03\x00", "truncated"),
        (b"GGUF" + struct.pack("<IQQ", 3, 2**40, 2**40), "claims"),
        (b"GGUF" + struct.pack("<IQQ", 99, 1, 1) + b"\0" * 64, "version 99"),
    ],
)
def test_damaged_or_foreign_files_say_what_is_wrong(tmp_path, content, words):
    file = tmp_path / "bad.gguf"
    file.write_bytes(content)
    with pytest.raises(GGUFError, match=words):
        read_gguf_info(file)
    spec = inspect_gguf(file)
    assert not spec.runnable and words in spec.reason and spec.kind == "text"


def test_truncated_download_is_refused_without_a_crash(tmp_path, chat_gguf):
    data = chat_gguf.read_bytes()
    for cut in (30, 200, len(data) // 3):
        file = tmp_path / f"cut{cut}.gguf"
        file.write_bytes(data[:cut])
        spec = inspect_gguf(file)
        assert not spec.runnable, cut
        assert "truncated" in spec.reason or "damaged" in spec.reason


def test_unknown_architecture_is_not_runnable(tmp_path, gguf_root):
    file = write_llama_gguf(gguf_root / "chat" / "hf", tmp_path / "odd.gguf", architecture="notallama")
    spec = inspect_gguf(file)
    assert not spec.runnable and "architecture llama.cpp does not know" in spec.reason


def test_app_stores_are_found_in_place(home, chat_gguf):
    lms = home / ".lmstudio" / "models" / "someone" / "Tiny-GGUF"
    lms.mkdir(parents=True)
    shutil.copy(chat_gguf, lms / "tiny.Q8_0.gguf")
    shutil.copy(chat_gguf, lms / "mmproj-tiny-f16.gguf")  # a vision projector: not listed
    gpt4all = home / ".local" / "share" / "nomic.ai" / "GPT4All"
    gpt4all.mkdir(parents=True)
    shutil.copy(chat_gguf, gpt4all / "tiny-chat.gguf")
    jan = home / "jan" / "models" / "tiny-jan"
    jan.mkdir(parents=True)
    shutil.copy(chat_gguf, jan / "model.gguf")
    store = home / ".ollama" / "models"
    digest = "ab" * 32
    (store / "blobs").mkdir(parents=True)
    shutil.copy(chat_gguf, store / "blobs" / f"sha256-{digest}")
    manifest = store / "manifests" / "registry.ollama.ai" / "library" / "tiny" / "latest"
    manifest.parent.mkdir(parents=True)
    layers = [
        {"mediaType": "application/vnd.ollama.image.template", "digest": "sha256:" + "cd" * 32},
        {"mediaType": "application/vnd.ollama.image.model", "digest": f"sha256:{digest}"},
    ]
    manifest.write_text(json.dumps({"schemaVersion": 2, "layers": layers}))
    missing = store / "manifests" / "registry.ollama.ai" / "library" / "gone" / "7b"
    missing.parent.mkdir(parents=True)
    missing.write_text(
        json.dumps({"layers": [{"mediaType": "application/vnd.ollama.image.model", "digest": "sha256:" + "ef" * 32}]})
    )

    found = {f.name: f for f in app_gguf_models(home)}
    assert set(found) == {"someone/Tiny-GGUF/tiny.Q8_0", "tiny-chat", "tiny-jan", "tiny:latest", "gone:7b"}
    assert found["tiny:latest"].path == store / "blobs" / f"sha256-{digest}" and not found["tiny:latest"].problem
    assert "not in its blobs folder" in found["gone:7b"].problem

    catalog = ModelCatalog(None, [], hf_cache=home / "no-cache", app_sources_off=[], home=home)
    specs = {s.name: s for s in catalog.discover()}
    assert specs["tiny:latest"].runnable and specs["tiny:latest"].format == "gguf"
    assert specs["tiny:latest"].source == "ollama" and specs["tiny:latest"].details["quantisation"] == "F16"
    assert not specs["gone:7b"].runnable and "blobs" in specs["gone:7b"].reason
    assert {s.source for s in specs.values()} == {"lmstudio", "gpt4all", "jan", "ollama"}
    # Each source can be turned off; nothing is copied anywhere.
    off = ModelCatalog(None, [], hf_cache=home / "no-cache", app_sources_off=["ollama", "lmstudio"], home=home)
    assert {s.source for s in off.discover()} == {"gpt4all", "jan"}
    assert catalog.resolve(str(store / "blobs" / f"sha256-{digest}")).name == "tiny:latest"


def test_gguf_in_a_model_folder_is_listed_and_resolved(gguf_root, home):
    catalog = ModelCatalog(None, [gguf_root], hf_cache=home / "no-cache")
    ggufs = [s for s in catalog.discover() if s.format == "gguf"]
    assert {s.path.name for s in ggufs} == {"tiny-llama-f16.gguf", "tiny-llama-q8_0.gguf"}
    assert catalog.resolve(str(gguf_root / "q8" / "tiny-llama-q8_0.gguf")).runnable


def _run(engine, loaded, request):
    events = []
    result = engine.generate(loaded, request, RunContext("j", events.append, threading.Event()))
    streamed = "".join(e.preview for e in events if e.preview)
    return result.outputs[0], streamed


@pytest.fixture(scope="module")
def llama_engine(chat_gguf):
    from studio.engines.devices import choose_device
    from studio.engines.gguf_text import GGUFTextEngine

    engine = GGUFTextEngine()
    spec = inspect_gguf(chat_gguf)
    loaded = engine.load(spec, choose_device("cpu"))
    yield engine, loaded
    engine.unload(loaded)


def test_llama_cpp_and_transformers_read_the_same_weights(gguf_root):
    """The fixture's file is a real GGUF: llama.cpp and transformers both load it and agree."""
    import numpy as np
    import torch
    from llama_cpp import Llama
    from transformers import AutoModelForCausalLM

    file = gguf_root / "chat" / "tiny-llama-f16.gguf"
    llm = Llama(model_path=str(file), n_ctx=64, logits_all=True, verbose=False)
    tokens = llm.tokenize(b"the quick brown fox", add_bos=False)
    llm.eval(tokens)
    dequantised = AutoModelForCausalLM.from_pretrained(file.parent, gguf_file=file.name)
    with torch.no_grad():
        reference = dequantised(torch.tensor([tokens])).logits[0].numpy()
    assert np.abs(np.array(llm.scores[: len(tokens)]) - reference).max() < 1e-2
    llm.close()


def test_seeded_replies_repeat_and_stream_what_is_saved(llama_engine, chat_gguf):
    engine, loaded = llama_engine
    request = TextRequest(prompt="the quick", model=str(chat_gguf), seed=7, max_tokens=24, temperature=1.0)
    first, streamed = _run(engine, loaded, request)
    again, _ = _run(engine, loaded, request)
    other, _ = _run(engine, loaded, TextRequest(**{**_fields(request), "seed": 8}))
    assert first.data == again.data and streamed == first.data
    assert other.data != first.data
    assert first.info["backend"] == "llama.cpp" and first.info["tokens"] == 24


def test_stop_strings_and_cancel(llama_engine, chat_gguf):
    engine, loaded = llama_engine
    request = TextRequest(prompt="the quick", model=str(chat_gguf), seed=3, max_tokens=40, temperature=0)
    full, _ = _run(engine, loaded, request)
    stop = full.data[5:8]
    assert stop
    cut, streamed = _run(engine, loaded, TextRequest(**{**_fields(request), "stop": (stop,)}))
    assert cut.data == full.data[: full.data.index(stop)] == streamed

    cancel = threading.Event()
    events = []

    def emit(event):
        events.append(event)
        if event.preview:
            cancel.set()  # stop after the first piece of text

    result = engine.generate(loaded, request, RunContext("j", emit, cancel))
    assert result.outputs[0].info["stopped"] and result.outputs[0].info["tokens"] <= 2


def _fields(request: TextRequest) -> dict:
    data = request.to_dict()
    data.pop("kind"), data.pop("schema_version")
    data["stop"] = tuple(data["stop"])
    data["messages"] = tuple(tuple(m) for m in data["messages"])
    return data


def test_context_rule_leaves_out_the_oldest_turns(llama_engine, chat_gguf):
    engine, loaded = llama_engine
    long_history = tuple(
        pair for n in range(200) for pair in (("user", f"question {n} about colour"), ("assistant", f"answer {n}"))
    )
    request = TextRequest(
        prompt="and now?",
        model=str(chat_gguf),
        seed=1,
        max_tokens=8,
        system="be brief",
        messages=long_history,
        conversation="c",
    )
    output, _ = _run(engine, loaded, request)
    assert output.info["dropped_turns"] > 0 and output.info["dropped_turns"] % 2 == 0
    assert output.info["prompt_tokens"] <= loaded.n_ctx
    assert any("oldest turns were left out" in n for n in output.info["notes"])


def test_base_gguf_continues_the_prompt(gguf_root):
    from studio.engines.devices import choose_device
    from studio.engines.gguf_text import GGUFTextEngine

    file = gguf_root / "base" / "tiny-llama-f16.gguf"
    engine = GGUFTextEngine()
    spec = inspect_gguf(file)
    info = engine.describe(spec)
    assert not info.chat and "no chat template" in info.unused[next(iter(info.unused))]
    loaded = engine.load(spec, choose_device("cpu"))
    try:
        output, _ = _run(
            engine, loaded, TextRequest(prompt="the", model=str(file), system="ignored", seed=1, max_tokens=4)
        )
    finally:
        engine.unload(loaded)
    assert any("no chat template" in n for n in output.info["notes"])


def test_without_llama_cpp_transformers_runs_the_gguf(monkeypatch, chat_gguf):
    from studio.engines import gguf_text
    from studio.engines.devices import choose_device

    monkeypatch.setattr(gguf_text, "llama_cpp_available", lambda: False)
    engine = gguf_text.GGUFTextEngine()
    spec = inspect_gguf(chat_gguf)
    request = TextRequest(prompt="the quick", model=str(chat_gguf), seed=1, max_tokens=6)
    engine.check(spec, request)
    loaded = engine.load(spec, choose_device("cpu"))
    output, streamed = _run(engine, loaded, request)
    assert streamed == output.data and output.info["tokens"] == 6
    assert any("studio[gguf]" in n for n in output.info["notes"])


def test_worker_runs_a_gguf_and_records_it(services, chat_gguf, home):
    log = EventLog(services.worker)
    job = services.worker.submit(TextRequest(prompt="hello", model=str(chat_gguf), seed=5, max_tokens=8))
    end = log.wait_end(job, timeout=120)
    assert end.kind.value == "finished", end.error
    item = end.result[0]
    assert item.record.model["format"] == "gguf" and item.record.model["quantisation"] == "F16"
    assert len(item.record.model["sha256"]) == 64 and item.record.runtime["backend"] == "llama.cpp"


def test_each_app_source_is_a_setting_the_model_manager_shows(qtbot):
    from studio.core.settings import APP_MODEL_SOURCES, Settings
    from studio.engines.library.gguf_files import APP_SOURCES
    from studio.ui.model_sources import ModelSourcesBox

    assert [s.name for s in APP_SOURCES] == list(APP_MODEL_SOURCES)
    settings = Settings()
    changed = []
    box = ModelSourcesBox(settings, lambda: changed.append(True))
    qtbot.addWidget(box)
    box.boxes["ollama"].setChecked(False)
    assert settings.get("model_sources_off") == ["ollama"] and changed


def test_a_context_of_zero_opens_a_default_context_with_a_note(tmp_path, gguf_root):
    from studio.engines.devices import choose_device
    from studio.engines.gguf_text import DEFAULT_CONTEXT, GGUFTextEngine

    file = write_llama_gguf(gguf_root / "chat" / "hf", tmp_path / "no-context.gguf", context_length=0)
    spec = inspect_gguf(file)
    assert spec.runnable and spec.details["context_length"] == 0
    engine = GGUFTextEngine()
    assert engine.describe(spec).context_length == DEFAULT_CONTEXT
    loaded = engine.load(spec, choose_device("cpu"))
    try:
        output, _ = _run(engine, loaded, TextRequest(prompt="hi", model=str(file), seed=1, max_tokens=3))
    finally:
        engine.unload(loaded)
    assert loaded.n_ctx == DEFAULT_CONTEXT
    assert any("does not state its context length" in n for n in output.info["notes"])
