"""LoRAs, LyCORIS and embeddings: the library's classification, applying them through the worker on the
tiny SD and the tiny Llama, their provenance, and every bad input (tiny models, CPU)."""

from __future__ import annotations

import json
import shutil
import struct

import numpy as np
import pytest
import tiny_adapters
import tiny_models
from helpers import EventLog
from PIL import Image
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QPushButton

from studio.core.requests import ImageRequest, TextRequest, request_from_dict
from studio.engines.library.adapters import adapter_hashes, inspect_adapter_file
from studio.engines.library.catalog import ModelCatalog
from studio.gallery.a1111 import parse_parameters


@pytest.fixture(scope="session")
def lib(tmp_path_factory):
    """A tiny SD whose tokenizer reads letters, and a folder of adapters for it (plus a few bad ones)."""
    root = tmp_path_factory.mktemp("adapters")
    sd = tiny_adapters.give_words_to_tiny_sd(tiny_models.build_tiny_sd_pipeline(root / "models" / "tiny-sd"))
    loras = root / "loras"
    tag_frequency = json.dumps({"10_ink": {"ink wash": 12, "monochrome": 4}})
    tiny_adapters.build_tiny_lora_kohya(
        sd, loras / "inkwash.safetensors", seed=0, metadata={"ss_tag_frequency": tag_frequency}
    )
    tiny_adapters.build_tiny_lora_diffusers(sd, loras / "inkwash_diffusers", seed=0)
    tiny_adapters.build_tiny_lora_kohya(sd, loras / "softlight.safetensors", seed=7)
    tiny_adapters.build_tiny_embedding(loras / "zzq.safetensors", width=16)
    (loras / "inkwash.civitai.info").write_text(
        json.dumps(
            {"name": "v2", "model": {"name": "Ink wash"}, "baseModel": "SD 1.5", "trainedWords": ["inkwash style"]}
        )
    )
    Image.new("RGB", (8, 8), "white").save(loras / "inkwash.preview.png")
    bad = root / "bad"
    _fake_lora(
        bad / "xl_style.safetensors",
        {
            "lora_te2_text_model_encoder_layers_0_self_attn_q_proj.lora_down.weight": [2, 1280],
            "lora_unet_input_blocks_4_1_transformer_blocks_0_attn2_to_k.lora_down.weight": [2, 2048],
        },
    )
    _fake_lora(
        bad / "nowhere.safetensors",
        {
            "lora_unet_mid_block_nothing_here_to_q.lora_down.weight": [2, 16],
            "lora_unet_mid_block_nothing_here_to_q.lora_up.weight": [16, 2],
        },
    )
    tiny_adapters.build_tiny_embedding(bad / "wide.safetensors", width=32)
    data = (loras / "softlight.safetensors").read_bytes()
    (bad / "cut.safetensors").write_bytes(data[: len(data) // 2])
    text_root = root / "text"
    lm = tiny_models.build_tiny_causal_lm(text_root / "tiny-lm")
    tiny_adapters.build_tiny_text_lora(lm, text_root / "poet-lora", seed=3)
    return {"root": root, "sd": sd, "loras": loras, "bad": bad, "lm": lm, "text_lora": text_root / "poet-lora"}


def _fake_lora(file, shapes):
    """A kohya-looking header with zero weights (only the header is classified)."""
    import torch
    from safetensors.torch import save_file

    file.parent.mkdir(parents=True, exist_ok=True)
    save_file({key: torch.zeros(shape) for key, shape in shapes.items()}, str(file))


@pytest.fixture
def adapter_services(paths, lib):
    from studio.core.settings import Settings
    from studio.runtime.services import open_services

    settings = Settings.load(paths.settings_file)
    settings.set("model_folders", [str(lib["loras"]), str(lib["text_lora"].parent)])
    settings.save()
    opened = open_services(paths)
    yield opened
    opened.close()


def _image(services, lib, prompt="abc", **fields):
    request = ImageRequest(prompt=prompt, model=str(lib["sd"]), width=32, height=32, steps=2, seed=5, **fields)
    log = EventLog(services.worker)
    end = log.wait_end(services.worker.submit(request), 180)
    return end


def _pixels(end):
    assert end.kind.value == "finished", end.error
    with Image.open(end.result[0].path) as image:
        return np.asarray(image).copy()


# -- the library ---------------------------------------------------------------------------------


def test_library_lists_adapters_with_kind_base_rank_triggers_and_side_files(lib):
    catalog = ModelCatalog(None, [lib["loras"], lib["text_lora"].parent], hf_cache=lib["root"] / "no-cache")
    specs = {spec.name: spec for spec in catalog.discover()}
    ink = specs["inkwash"].to_dict()
    assert ink["kind"] == "lora" and ink["layout"] == "kohya" and ink["rank"] == 2 and ink["width"] == 16
    assert ink["base"] == "SD (text width 16)" and specs["inkwash"].family == "sd"
    assert ink["trigger_words"][:2] == ["ink wash", "monochrome"] and "inkwash style" in ink["trigger_words"]
    assert ink["preview"].endswith("inkwash.preview.png") and ink["civitai"]["model"] == "Ink wash"
    assert specs["inkwash_diffusers"].to_dict()["layout"] == "diffusers"
    assert specs["zzq"].kind == "embedding" and specs["zzq"].details["token"] == "zzq"
    poet = specs["poet-lora"].to_dict()
    assert poet["kind"] == "lora" and poet["layout"] == "peft" and poet["width"] == 32 and poet["rank"] == 4
    assert specs["poet-lora"].family == "llama"


def test_families_from_key_names_and_widths(lib):
    xl = inspect_adapter_file(lib["bad"] / "xl_style.safetensors")
    assert xl.family == "sdxl" and xl.details["base"] == "SDXL"
    cut = inspect_adapter_file(lib["bad"] / "cut.safetensors")
    assert not cut.runnable and "damaged" in cut.reason
    wide = inspect_adapter_file(lib["bad"] / "wide.safetensors")
    assert wide.kind == "embedding" and wide.details["width"] == 32


def test_the_lora_hash_is_a1111s_addnet_hash(lib):
    import hashlib

    file = lib["loras"] / "inkwash.safetensors"
    data = file.read_bytes()
    header_length = struct.unpack("<Q", data[:8])[0]
    sha256, addnet = adapter_hashes(file)
    assert sha256 == hashlib.sha256(data).hexdigest()
    assert addnet == hashlib.sha256(data[8 + header_length :]).hexdigest() != sha256


def test_requests_with_adapters_round_trip_through_json():
    request = ImageRequest(prompt="a", model="m", loras=(("ink", 0.5), ("soft", -1.0)), embeddings=("zzq",))
    assert request_from_dict(json.loads(json.dumps(request.to_dict()))) == request
    text = TextRequest(prompt="a", model="m", lora="poet", lora_weight=0.5)
    assert request_from_dict(json.loads(json.dumps(text.to_dict()))) == text


@pytest.mark.parametrize("weight", [2.5, -3.0, float("nan")])
def test_a_weight_out_of_range_is_refused(weight):
    from studio.core.errors import InvalidRequest

    with pytest.raises(InvalidRequest, match="weight"):
        ImageRequest(prompt="a", model="m", loras=(("ink", weight),))


# -- applying them -------------------------------------------------------------------------------


def test_weights_stack_unload_and_switch_without_reloading_the_base(adapter_services, lib):
    base = _pixels(_image(adapter_services, lib))
    pipeline = adapter_services.worker.cache._slots["image"].model
    ends = [
        _image(adapter_services, lib, loras=(("inkwash", 0.0),)),
        _image(adapter_services, lib, loras=(("inkwash", 1.0),)),
        _image(adapter_services, lib, loras=(("inkwash", 1.0), ("softlight", 0.8))),
        _image(adapter_services, lib),
    ]
    zero, one, both, again = (_pixels(end) for end in ends)
    assert np.array_equal(zero, base)
    assert not np.array_equal(one, base)
    assert not np.array_equal(both, one)
    assert np.array_equal(again, base)  # the adapters switched off: the base's pixels, bit for bit
    assert [end.info["load_s"] for end in ends] == [0.0] * 4  # never reloaded
    assert adapter_services.worker.cache._slots["image"].model is pipeline
    assert len(pipeline.adapters.loras) == 2  # both kept loaded for the next switch


def test_prompt_tag_and_option_give_the_same_image_and_kohya_equals_diffusers(adapter_services, lib):
    tagged = _image(adapter_services, lib, prompt="abc <lora:inkwash:0.7>")
    listed = _image(adapter_services, lib, prompt="abc", loras=(("inkwash", 0.7),))
    diffusers_layout = _image(adapter_services, lib, prompt="abc", loras=(("inkwash_diffusers", 0.7),))
    assert np.array_equal(_pixels(tagged), _pixels(listed))
    assert np.allclose(_pixels(listed).astype(int), _pixels(diffusers_layout).astype(int), atol=1)


def test_record_and_parameters_name_every_adapter_with_its_hash(adapter_services, lib):
    end = _image(adapter_services, lib, prompt="abc zzq <lora:inkwash:0.7>", loras=(("softlight", 0.5),))
    item = end.result[0]
    adapters = {a["name"]: a for a in item.record.model["adapters"]}
    _, addnet = adapter_hashes(lib["loras"] / "inkwash.safetensors")
    ink_sha, _ = adapter_hashes(lib["loras"] / "inkwash.safetensors")
    assert adapters["inkwash"]["sha256"] == ink_sha and adapters["inkwash"]["weight"] == 0.7
    assert adapters["inkwash"]["short_hash"] == addnet[:12] and adapters["inkwash"]["file"] == "inkwash.safetensors"
    assert adapters["softlight"]["weight"] == 0.5 and adapters["zzq"]["token"] == "zzq"
    with Image.open(item.path) as image:
        params = parse_parameters(image.text["parameters"])
    assert params["prompt"] == "abc zzq <lora:inkwash:0.7> <lora:softlight:0.5>"  # a listed LoRA gets its tag
    assert f"inkwash: {addnet[:12]}" in params["settings"]["Lora hashes"]
    assert "softlight: " in params["settings"]["Lora hashes"]
    zzq_sha, _ = adapter_hashes(lib["loras"] / "zzq.safetensors")
    assert params["settings"]["TI hashes"] == f"zzq: {zzq_sha[:12]}"


def test_an_embedding_changes_the_image_only_when_its_token_is_used(adapter_services, lib):
    plain = _pixels(_image(adapter_services, lib, prompt="abc"))
    listed_unused = _pixels(_image(adapter_services, lib, prompt="abc", embeddings=("zzq",)))
    used = _pixels(_image(adapter_services, lib, prompt="abc zzq"))
    assert np.array_equal(plain, listed_unused)
    assert not np.array_equal(plain, used)
    assert np.array_equal(_pixels(_image(adapter_services, lib, prompt="abc")), plain)


def test_attention_weights_change_the_image_and_escapes_do_not(adapter_services, lib):
    plain = _pixels(_image(adapter_services, lib, prompt="abc"))
    weighted = _pixels(_image(adapter_services, lib, prompt="(abc:1.6)"))
    assert not np.array_equal(plain, weighted)
    long_prompt = " ".join(["abc"] * 40)  # past 75 tokens: chunked, not cut
    assert _image(adapter_services, lib, prompt=long_prompt).kind.value == "finished"


def test_a_text_lora_changes_the_text_for_the_same_seed(adapter_services, lib):
    def text(**fields):
        request = TextRequest(prompt="the painter", model=str(lib["lm"]), max_tokens=12, seed=3, **fields)
        log = EventLog(adapter_services.worker)
        end = log.wait_end(adapter_services.worker.submit(request), 180)
        assert end.kind.value == "finished", end.error
        return end.result[0]

    base = text()
    with_lora = text(lora=str(lib["text_lora"]), lora_weight=1.0)
    by_name = text(lora="poet-lora", lora_weight=1.0)
    again = text()
    assert with_lora.record.model["adapters"][0]["name"] == "poet-lora"
    assert _read(with_lora) != _read(base)
    assert _read(by_name) == _read(with_lora)
    assert _read(again) == _read(base)


def _read(item):
    return item.path.read_text(encoding="utf-8").split("---", 2)[-1]


# -- bad input ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        ("xl_style.safetensors", "is for SDXL; the model"),
        ("cut.safetensors", "damaged"),
        ("nowhere.safetensors", "none of the 1 layers"),
        ("missing.safetensors", "does not exist"),
    ],
)
def test_bad_loras_are_refused_and_the_base_stays_usable(adapter_services, lib, ref, message):
    base = _pixels(_image(adapter_services, lib))
    end = _image(adapter_services, lib, loras=((str(lib["bad"] / ref), 1.0),))
    assert end.kind.value == "error" and message in end.error, end.error
    assert np.array_equal(_pixels(_image(adapter_services, lib)), base)
    assert len(adapter_services.store.list()) == 2


def test_an_embedding_of_another_width_and_an_unknown_name_are_named(adapter_services, lib):
    wide = _image(adapter_services, lib, prompt="abc", embeddings=(str(lib["bad"] / "wide.safetensors"),))
    assert wide.kind.value == "error" and "32 wide" in wide.error and "takes 16" in wide.error
    unknown = _image(adapter_services, lib, prompt="abc <lora:inkwash_v2:1>")
    assert unknown.kind.value == "error" and "'inkwash_v2' is not in your library" in unknown.error


def test_a_file_that_vanished_after_listing_is_named(adapter_services, lib, tmp_path):
    from studio.core.errors import ModelError
    from studio.engines.library.adapters import resolve_adapter

    moved = tmp_path / "gone.safetensors"
    shutil.copy(lib["loras"] / "softlight.safetensors", moved)
    listed = [inspect_adapter_file(moved)]
    moved.unlink()
    with pytest.raises(ModelError, match="is gone"):
        resolve_adapter("gone", lambda: listed)


def test_c2pa_names_each_adapter_as_an_ingredient_with_its_hash(adapter_services, lib):
    import c2pa

    end = _image(adapter_services, lib, prompt="abc zzq", loras=(("inkwash", 0.6),))
    item = end.result[0]
    context = c2pa.Context.from_dict(
        {"trust": {"user_anchors": adapter_services.store.credentials.root_certificate.read_text()}}
    )
    with open(item.path, "rb") as stream, c2pa.Reader("image/png", stream, context=context) as reader:
        store = json.loads(reader.json())
    active = store["manifests"][store["active_manifest"]]
    used = {i["title"]: i.get("instance_id") for i in active["ingredients"] if i["relationship"] == "inputTo"}
    ink_sha, _ = adapter_hashes(lib["loras"] / "inkwash.safetensors")
    zzq_sha, _ = adapter_hashes(lib["loras"] / "zzq.safetensors")
    assert used["inkwash.safetensors"] == f"sha256:{ink_sha}"
    assert used["zzq.safetensors"] == f"sha256:{zzq_sha}"
    assert "tiny-sd" in used  # the base model stays an ingredient too


def test_cli_lora_and_embedding_options_become_request_fields(lib):
    from studio.cli import _request_from_args, build_parser

    kohya = str(lib["loras"] / "inkwash.safetensors")
    args = build_parser().parse_args(
        ["gen", "image", "abc", "--model", "m", "--lora", "softlight:0.5", "--lora", kohya, "--embedding", "zzq"]
    )
    request = _request_from_args(args)
    assert request.loras == (("softlight", 0.5), (kohya, 1.0)) and request.embeddings == ("zzq",)
    text = _request_from_args(build_parser().parse_args(["gen", "text", "hi", "--model", "m", "--lora", "poet:0.25"]))
    assert (text.lora, text.lora_weight) == ("poet", 0.25)


def test_regenerating_an_image_made_with_adapters_is_identical(adapter_services, lib):
    from studio.runtime.regenerate import regenerate_with_services

    end = _image(adapter_services, lib, prompt="abc zzq <lora:inkwash:0.6>", loras=(("softlight", 0.4),))
    item = end.result[0]
    report = regenerate_with_services(item.record, item.path, adapter_services)
    assert report.identical, report.differences


# -- the Image tab ----------------------------------------------------------------------------------


def test_image_tab_adds_weights_and_reuses_adapters(qtbot, adapter_services, lib):
    from helpers import show_active

    from studio.ui.main_window import MainWindow

    adapter_services.settings.set("model_folders", [str(lib["loras"]), str(lib["sd"].parent), str(lib["bad"])])
    main = MainWindow(adapter_services)
    qtbot.addWidget(main)
    show_active(qtbot, main)
    panel = main.image_panel
    panel.model_picker.setCurrentIndex(panel.model_picker.findData(str(lib["sd"])))
    adapters = panel.adapter_list
    offered = [adapters.picker.itemText(i) for i in range(adapters.picker.count())]
    assert any(text.startswith("inkwash (LoRA") for text in offered)
    assert any(text.startswith("zzq (embedding") for text in offered)
    assert not any(text.startswith("xl_style") for text in offered)  # an SDXL LoRA is not offered for SD
    assert not any(text.startswith("poet-lora") for text in offered)  # nor a text LoRA
    adapters.picker.setCurrentIndex(next(i for i, t in enumerate(offered) if t.startswith("inkwash (")))
    qtbot.mouseClick(adapters.add_button, Qt.MouseButton.LeftButton)
    row = adapters.rows[0]
    row.slider.setValue(-150)
    assert row.weight() == -1.5
    from PySide6.QtCore import QPoint, QPointF
    from PySide6.QtGui import QWheelEvent
    from PySide6.QtWidgets import QApplication

    wheel = QWheelEvent(
        QPointF(5, 5), QPointF(5, 5), QPoint(0, 0), QPoint(0, 120), Qt.MouseButton.NoButton,
        Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase, False,
    )  # fmt: skip
    QApplication.sendEvent(row.slider, wheel)
    assert row.weight() == -1.5  # scrolling past an unfocused slider leaves the weight alone
    qtbot.keyClicks(panel.prompt, "abc")
    [insert] = [b for b in row.findChildren(QPushButton) if b.text() == "Insert"]
    qtbot.mouseClick(insert, Qt.MouseButton.LeftButton)
    assert panel.prompt.toPlainText() == "abc, ink wash, monochrome, inkwash style"
    assert panel.build_request().loras == (("inkwash", -1.5),)
    row.enabled.setChecked(False)
    assert panel.build_request().loras == ()
    reused = ImageRequest(prompt="abc <lora:inkwash_v2:1>", model=str(lib["sd"]), loras=(("softlight", 0.3),))
    assert panel.apply_request(reused.to_dict())
    assert panel.build_request().loras == (("softlight", 0.3),)
    qtbot.waitUntil(lambda: "'inkwash_v2' is not in your library" in panel.run_status.text(), timeout=5000)
    main.shutdown()


def test_text_tab_picks_a_lora_with_a_weight(qtbot, adapter_services, lib):
    from helpers import show_active

    from studio.ui.main_window import MainWindow

    adapter_services.settings.set("model_folders", [str(lib["text_lora"].parent), str(lib["loras"])])
    main = MainWindow(adapter_services)
    qtbot.addWidget(main)
    show_active(qtbot, main)
    panel = main.text_panel
    picker = panel.lora_picker
    names = [picker.combo.itemData(i) for i in range(picker.combo.count())]
    assert names == ["", "poet-lora"]  # the image LoRAs are not offered for text
    picker.combo.setCurrentIndex(1)
    picker.weight.setValue(0.5)
    qtbot.keyClicks(panel.prompt, "the painter")
    request = panel.build_request()
    assert (request.lora, request.lora_weight) == ("poet-lora", 0.5)
    gone = TextRequest(prompt="x", model=request.model, lora="old-poet", lora_weight=0.7)
    assert panel.apply_request(gone.to_dict())
    assert picker.current() == ""
    qtbot.waitUntil(lambda: "'old-poet' is not in your library" in panel.run_status.text(), timeout=5000)
    main.shutdown()


def test_model_manager_lists_adapters_after_models_with_their_preview(qtbot, adapter_services, lib):
    from studio.ui.model_manager import ModelManager

    adapter_services.settings.set("model_folders", [str(lib["loras"]), str(lib["sd"].parent)])
    dialog = ModelManager(adapter_services)
    qtbot.addWidget(dialog)
    kinds = [spec.kind for spec in dialog.specs]
    assert kinds.index("lora") > max(i for i, kind in enumerate(kinds) if kind in ("text", "image", "music"))
    assert kinds.index("embedding") > max(i for i, kind in enumerate(kinds) if kind == "lora")
    dialog.select_path(lib["loras"] / "inkwash.safetensors")
    assert "LoRA for SD (text width 16), kohya layout, rank 2." in dialog.status.text()
    assert "Civitai: Ink wash v2" in dialog.status.text()
    assert not dialog.adapter_preview.isHidden() and not dialog.adapter_preview.pixmap().isNull()
    dialog.select_path(lib["sd"])
    assert dialog.adapter_preview.isHidden()
