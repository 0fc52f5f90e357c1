"""Through the real window, in its own event loop (``app.exec()``): what an artist gets.

Each part runs alone (the harness starts a fresh process per part):

- ``--part text``: Generate pressed in the Text tab vs ``model.generate()`` on the same model and
  settings, alternating rounds, medians (``window_text_ratio`` …). ``--model starter`` is the
  bundled starter text model, ``--model llama100m`` a ~100 M-parameter Llama with random weights
  built from a config. Also how live the stream looks: the first token on screen after the worker
  sent it (``…_first_token_lag_ms``) and how often the text updates while it streams
  (``…_updates_per_s``).
- ``--part image`` / ``--part music``: Generate in the Image / Music tab vs the raw pipeline or
  MusicGen ``generate()`` (the models of ``image_steps`` / ``music_rate``).
- ``--part startup``: a fresh ``python -m studio`` process until its window is shown
  (``startup_app_window_s``), whether the prompt takes typing while the engines still load, and
  when the tabs list the models, found on a thread after the window showed
  (``startup_models_listed_s``).
- ``--part gallery``: scrolling the Gallery tab over 100,000 items with thumbnails being made:
  heartbeat lateness p99 and max (``gallery_scroll_p99_ms`` / ``gallery_scroll_max_ms``).
- ``--part idle``: CPU use of the window with nothing running (``idle_cpu_percent``) and its
  resident memory (``idle_rss_mb``).

    python -m benchmarks.window --part text --model starter [--tokens 400] [--rounds 3] [--json]

Uses ``$DISPLAY`` when there is one (run it under ``xvfb-run -a``), else the offscreen platform.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
STARTER_TEXT = ROOT / "resources" / "models" / "studio-starter-text"
HEARTBEAT_MS = 5
PROMPT = "Write about light on the hills at dawn."

Waiter = Callable[[Callable[[Any], None]], None]


def _platform() -> None:
    if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


class Script:
    """Drives a generator under ``app.exec()``: each ``yield`` hands over a waiter that calls back
    once what it waits for happened (a job ended, a delay passed); nothing polls."""

    def __init__(self, app, steps: Generator[Waiter, Any, None]) -> None:
        from PySide6.QtCore import QTimer

        self.app, self.steps, self.error = app, steps, None
        QTimer.singleShot(0, lambda: self._step(None))

    def _step(self, value: Any) -> None:
        try:
            # A waiter that gave up hands back an exception: raised where the script waited.
            waiter = self.steps.throw(value) if isinstance(value, BaseException) else self.steps.send(value)
        except StopIteration:
            self.app.quit()
            return
        except BaseException as exc:  # reported after the loop ends
            self.error = exc
            self.app.quit()
            return
        waiter(self._resume)

    def _resume(self, value: Any) -> None:
        from PySide6.QtCore import QTimer

        QTimer.singleShot(0, lambda: self._step(value))

    def run(self) -> None:
        self.app.exec()
        if self.error is not None:
            raise self.error


def sleep(ms: int) -> Waiter:
    from PySide6.QtCore import QTimer

    return lambda done: QTimer.singleShot(ms, lambda: done(None))


def job_done(jobs, owner: str) -> Waiter:
    """Waits for the next job of ``owner`` to end; calls back with the Job."""

    def wait(done: Callable[[Any], None]) -> None:
        def changed(job) -> None:
            if job.owner == owner and job.done and job.is_generation:
                jobs.changed.disconnect(changed)
                done(job)

        jobs.changed.connect(changed)

    return wait


def enabled(widget, timeout_s: float = 120.0) -> Waiter:
    """Waits (checking every 20 ms) until ``widget`` is enabled: a tab's Generate button comes on once
    the model's description has arrived, which on a loaded machine can take longer than any fixed
    pause (a click on the disabled button did nothing and the run waited forever)."""
    from PySide6.QtCore import QTimer

    def wait(done: Callable[[Any], None]) -> None:
        deadline = time.monotonic() + timeout_s

        def check() -> None:
            if widget.isEnabled():
                done(None)
            elif time.monotonic() > deadline:
                done(TimeoutError(f"{widget.text()!r} stayed disabled for {timeout_s:.0f} s"))
            else:
                QTimer.singleShot(20, check)

        check()

    return wait


def worker_idle(worker) -> Waiter:
    """Waits (checking every 50 ms) until the worker has nothing to do (the launch preload)."""
    from PySide6.QtCore import QTimer

    def wait(done: Callable[[Any], None]) -> None:
        def check() -> None:
            if worker.busy:
                QTimer.singleShot(50, check)
            else:
                done(None)

        check()

    return wait


def open_window(data_dir: Path, model_folders: list[Path]):
    """The window as ``studio.ui.launch`` opens it (engines preloading on the worker)."""
    _platform()
    from PySide6.QtWidgets import QApplication

    from studio.core.paths import StudioPaths
    from studio.runtime.services import open_services
    from studio.ui.main_window import MainWindow

    app = QApplication.instance() or QApplication([sys.argv[0]])
    services = open_services(StudioPaths.under(data_dir))
    services.settings.set("model_folders", sorted({str(folder) for folder in model_folders}))
    services.settings.set("welcome_shown", True)
    services.worker.probe_device(preload_engines=True)
    window = MainWindow(services)
    window.show()
    return app, services, window


def _pick(panel, model: Path) -> None:
    index = panel.model_picker.findData(str(model))
    assert index >= 0, f"{model} is not in the {panel.kind} picker"
    panel.model_picker.setCurrentIndex(index)


def _cached_model(services):
    return next(iter(services.worker.cache._slots.values())).model


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return round(pages * os.sysconf("SC_PAGE_SIZE") / 2**20, 1)


class EventCounter:
    """Counts the GUI thread's events of a few types (queued calls, layout requests, paints)."""

    def __init__(self, app) -> None:
        from PySide6.QtCore import QEvent, QObject

        names = {
            QEvent.Type.MetaCall: "queued_calls",
            QEvent.Type.LayoutRequest: "layout_requests",
            QEvent.Type.UpdateRequest: "update_requests",
            QEvent.Type.Paint: "paints",
        }
        self.counts = dict.fromkeys(names.values(), 0)
        self.counting = False
        counter = self

        class Filter(QObject):
            def eventFilter(self, watched, event) -> bool:
                if counter.counting:
                    name = names.get(event.type())
                    if name is not None:
                        counter.counts[name] += 1
                return False

        self._filter = Filter()
        app.installEventFilter(self._filter)


# -- text ----------------------------------------------------------------------------------


def build_llama100m(folder: Path) -> Path:
    """A ~100 M-parameter Llama (random weights, the tiny model's tokenizer). A base model, like the
    starter: with a chat template the Text tab is a chat, whose Send needs a conversation."""
    import tiny_models
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tiny_models.build_tiny_causal_lm(folder, chat_template=False)
    vocab = json.loads((folder / "config.json").read_text())["vocab_size"]
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=vocab,
        hidden_size=768,
        intermediate_size=2048,
        num_hidden_layers=14,
        num_attention_heads=12,
        num_key_value_heads=12,
        max_position_embeddings=2048,
        tie_word_embeddings=False,
    )
    model = LlamaForCausalLM(config)
    model.save_pretrained(folder)
    return folder


def in_pair_order(round_index: int, raw: Callable[[], None], tab: Callable[[], Generator]):
    """One round of a pair: raw then the tab in even rounds, the tab then raw in odd ones, so a
    machine that speeds up or slows down during the run favours neither side."""
    if round_index % 2 == 0:
        raw()
        yield from tab()
    else:
        yield from tab()
        raw()


def paired_ratio(raw: list[float], tab: list[float], *, higher_is_faster: bool = True) -> float:
    """The median of each round's tab ÷ raw speed. The speed of this shared machine drifts by tens of
    per cent over seconds; a round's raw and tab runs are seconds apart, so their ratio sees far
    less of the drift than the ratio of two medians taken over the whole run."""
    pairs = [t / r if higher_is_faster else r / t for r, t in zip(raw, tab, strict=True)]
    return statistics.median(pairs)


def _wakeups() -> int:
    """How many times the calling thread went to sleep and was woken (its voluntary context switches,
    Linux; 0 elsewhere). Each wake of the GUI thread takes a core from torch's threads for a moment."""
    try:
        status = Path(f"/proc/self/task/{threading.get_native_id()}/status").read_text()
    except OSError:
        return 0
    for line in status.splitlines():
        if line.startswith("voluntary_ctxt_switches:"):
            return int(line.split()[1])
    return 0


def _process_cpu() -> float:
    """CPU seconds of every thread of this process (torch's own pool included)."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _raw_text(model, tokenizer, tokens: int, seed: int, cpu: dict[str, float] | None = None) -> tuple[float, int]:
    import torch

    if getattr(tokenizer, "chat_template", None):
        enc = tokenizer.apply_chat_template(
            [{"role": "user", "content": PROMPT}], add_generation_prompt=True, return_tensors="pt", return_dict=True
        )
    else:
        enc = tokenizer(PROMPT, return_tensors="pt")
    torch.manual_seed(seed)
    start, thread0, process0 = time.perf_counter(), time.thread_time(), _process_cpu()
    with torch.inference_mode():
        out = model.generate(
            **enc,
            max_new_tokens=tokens,
            min_new_tokens=tokens,
            do_sample=True,
            temperature=0.7,
            top_p=0.95,
            top_k=50,
            repetition_penalty=1.1,
            pad_token_id=tokenizer.pad_token_id,
        )
    if cpu is not None:  # the calling thread's and the whole process's CPU seconds
        cpu["thread"], cpu["process"] = time.thread_time() - thread0, _process_cpu() - process0
    return time.perf_counter() - start, int(out.shape[1] - enc["input_ids"].shape[1])


def _p95_lag_ms(sent: list[float], shown: list[float]) -> float:
    """The 95th percentile, in ms, of each chunk's wait from leaving the worker to the view's next
    change (``shown``: the times the text changed, in order). A chunk whose insert was still queued
    behind an older one's change reads a little early; none reads late."""
    import bisect

    waits = []
    for moment in sent:
        index = bisect.bisect_left(shown, moment)
        if index < len(shown):
            waits.append((shown[index] - moment) * 1000)
    if not waits:
        return float("nan")
    waits.sort()
    return waits[min(len(waits) - 1, int(0.95 * len(waits)))]


def measure_text(args: argparse.Namespace, tmp: Path) -> dict:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    import studio.engines  # noqa: F401 - offline, quiet Hugging Face settings first

    name = args.model
    path = STARTER_TEXT if name == "starter" else build_llama100m(tmp / "models" / "llama100m")
    app, services, window = open_window(tmp / "data", [path.parent])
    model = AutoModelForCausalLM.from_pretrained(path, local_files_only=True, dtype=torch.float32).eval()
    model.generation_config.eos_token_id = None  # both sides write exactly --tokens
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    params = sum(p.numel() for p in model.parameters())
    panel = window.text_panel
    raw_rates: list[float] = []
    tab_rates: list[float] = []
    lags: list[float] = []
    update_rates: list[float] = []
    shown: list[float] = []
    sent: list[float] = []
    gui_share: list[float] = []  # the GUI thread's CPU seconds per second of a tab round
    wakeups: list[float] = []  # the GUI thread's wake-ups per second of a tab round
    # Text chunks the worker sent per second: the most updates the view could show. A token that
    # decodes to half a character, or to nothing, sends none (a random model's tokens often do).
    chunk_rates: list[float] = []
    # Each chunk: when it left the worker, and how long until the view next changed (each round's
    # 95th percentile): live streaming shows every chunk within about a frame, however few a
    # second the model writes.
    chunk_sent: list[float] = []
    chunk_lags: list[float] = []
    # CPU milliseconds per token written: far less moved by other processes on the machine than
    # wall time. "thread": the thread calling generate() (raw: this one; tab: the worker, read by
    # a listener on the worker thread at the job's start and end); "process": every thread.
    cpu_ms: dict[str, list[float]] = {"raw_thread": [], "raw_process": [], "tab_thread": [], "tab_process": []}
    cpu_ms["tab_gui"] = []
    worker_cpu: dict[str, float] = {}

    # Where a tab round's time goes, from the worker thread's side: Generate pressed → the job
    # started ("queue"), → its last chunk left the worker ("stream"), → finished, the text saved
    # ("save"). Only "stream" is the model writing; the raw side has no queue and no save.
    moments: dict[str, float] = {}
    phases: dict[str, list[float]] = {"queue": [], "stream": [], "save": []}

    def on_worker_event(event) -> None:  # the worker thread: when the first chunk leaves it
        now = time.perf_counter()
        if event.kind.value == "preview":
            moments["last_chunk"] = now
            moments["chunks"] = moments.get("chunks", 0) + 1
            chunk_sent.append(now)
            if not sent:
                sent.append(now)
        if event.kind.value == "started":
            moments["started"] = now
            worker_cpu["start"] = time.thread_time()
        elif event.is_terminal and "start" in worker_cpu:
            worker_cpu["used"] = time.thread_time() - worker_cpu.pop("start")
            moments["finished"] = now

    services.worker.subscribe(on_worker_event)
    panel.output.textChanged.connect(lambda: shown.append(time.perf_counter()))
    counter = EventCounter(app) if args.count_events else None

    def steps():
        yield worker_idle(services.worker)
        _pick(panel, path)
        panel.prompt.setPlainText(PROMPT)
        for spin, value in (
            (panel.temperature, 0.7),
            (panel.top_p, 0.95),
            (panel.top_k, 50),
            (panel.repetition_penalty, 1.1),
        ):
            spin.setValue(value)
        panel.max_tokens.setValue(8)
        panel.seed.lock(1)
        yield sleep(100)
        yield enabled(panel.generate_button)
        panel.generate_button.click()  # warm: loads the model
        yield job_done(window.jobs, "text")
        _cached_model(services).model.generation_config.eos_token_id = None
        _raw_text(model, tokenizer, 8, 0)
        panel.max_tokens.setValue(args.tokens)

        def raw_round(seed: int) -> None:
            raw_cpu: dict[str, float] = {}
            seconds, count = _raw_text(model, tokenizer, args.tokens, seed, raw_cpu)
            raw_rates.append(count / seconds)
            cpu_ms["raw_thread"].append(raw_cpu["thread"] * 1000 / count)
            cpu_ms["raw_process"].append(raw_cpu["process"] * 1000 / count)

        def tab_round(seed: int):
            yield sleep(50)
            yield enabled(panel.generate_button)
            panel.seed.lock(seed)
            if counter is not None:
                counter.counting = True
            worker_cpu.clear()
            moments.clear()
            start, gui_cpu, process_cpu = time.perf_counter(), time.thread_time(), _process_cpu()
            gui_wakes = _wakeups()
            if args.via == "worker":  # a baseline: the job straight to the worker, no tab owns it
                services.worker.submit(panel.build_request())
            else:
                panel.generate_button.click()
            shown.clear()
            sent.clear()
            chunk_sent.clear()
            job = yield job_done(window.jobs, "" if args.via == "worker" else "text")
            elapsed = time.perf_counter() - start
            gui_used, process_used = time.thread_time() - gui_cpu, _process_cpu() - process_cpu
            gui_share.append(gui_used / elapsed)
            wakeups.append((_wakeups() - gui_wakes) / elapsed)
            if counter is not None:
                counter.counting = False
            assert job.state.value == "finished", job.error
            written = int(job.info["tokens"])
            tab_rates.append(written / elapsed)
            cpu_ms["tab_process"].append(process_used * 1000 / written)
            cpu_ms["tab_gui"].append(gui_used * 1000 / written)
            if "used" in worker_cpu:
                cpu_ms["tab_thread"].append(worker_cpu["used"] * 1000 / written)
            if {"started", "last_chunk", "finished"} <= moments.keys():
                phases["queue"].append((moments["started"] - start) * 1000)
                phases["stream"].append((moments["last_chunk"] - moments["started"]) * 1000)
                phases["save"].append((moments["finished"] - moments["last_chunk"]) * 1000)
                streamed = moments["last_chunk"] - moments["started"]
                chunk_rates.append(moments["chunks"] / streamed if streamed > 0 else 0.0)
            moments.clear()
            if chunk_sent and shown:
                chunk_lags.append(_p95_lag_ms(chunk_sent, shown))
            if sent and shown:
                lags.append((shown[0] - sent[0]) * 1000)
                span = shown[-1] - shown[0]
                update_rates.append((len(shown) - 1) / span if span > 0 else 0.0)
            yield sleep(50)

        for round_index in range(args.rounds):
            seed = 100 + round_index
            yield from in_pair_order(round_index, lambda seed=seed: raw_round(seed), lambda seed=seed: tab_round(seed))

    Script(app, steps()).run()
    window.shutdown()
    prefix = f"window_text_{name}"
    raw, tab = statistics.median(raw_rates), statistics.median(tab_rates)
    extra = {}
    if counter is not None:  # GUI-thread events per token written in the tab
        written = args.tokens * args.rounds
        extra = {f"{prefix}_events_per_token": {k: round(v / written, 3) for k, v in counter.counts.items()}}
    return {
        **extra,
        f"{prefix}_raw_tokens_per_s": round(raw, 2),
        f"{prefix}_tab_tokens_per_s": round(tab, 2),
        f"{prefix}_ratio": round(paired_ratio(raw_rates, tab_rates), 4),
        f"{prefix}_ratio_of_medians": round(tab / raw, 4),
        f"{prefix}_first_token_lag_ms": round(statistics.median(lags), 1) if lags else None,
        f"{prefix}_updates_per_s": round(statistics.median(update_rates), 1) if update_rates else None,
        f"{prefix}_chunk_lag_p95_ms": round(statistics.median(chunk_lags), 1) if chunk_lags else None,
        f"{prefix}_params_m": round(params / 1e6, 1),
        f"{prefix}_gui_cpu_share": round(statistics.median(gui_share), 3),
        f"{prefix}_gui_wakeups_per_s": round(statistics.median(wakeups), 1),
        f"{prefix}_chunks_per_s": round(statistics.median(chunk_rates), 1) if chunk_rates else None,
        # Updates shown ÷ what could be shown (every chunk, at most 30 a second): 1.0 keeps up.
        f"{prefix}_updates_share": (
            round(statistics.median(update_rates) / min(30.0, statistics.median(chunk_rates)), 3)
            if update_rates and chunk_rates and statistics.median(chunk_rates) > 0
            else None
        ),
        f"{prefix}_phases_ms": {key: round(statistics.median(v), 1) for key, v in phases.items() if v},
        **_cpu_figures(prefix, cpu_ms),
        f"{prefix}_ratio_spread": [round(t / r, 3) for r, t in zip(raw_rates, tab_rates, strict=True)],
        "tokens": args.tokens,
        "rounds": args.rounds,
        "torch_threads": torch.get_num_threads(),
    }


def _cpu_figures(prefix: str, cpu_ms: dict[str, list[float]]) -> dict:
    """Medians of the CPU milliseconds per token, and tab ÷ raw of each (1.0: no extra CPU per token)."""
    med = {key: statistics.median(values) for key, values in cpu_ms.items() if values}
    out = {f"{prefix}_cpu_ms_per_token": {key: round(value, 3) for key, value in med.items()}}
    if "raw_process" in med and "tab_process" in med:
        out[f"{prefix}_cpu_per_token_ratio"] = round(med["tab_process"] / med["raw_process"], 4)
    if "raw_thread" in med and "tab_thread" in med:
        out[f"{prefix}_thread_cpu_per_token_ratio"] = round(med["tab_thread"] / med["raw_thread"], 4)
    return out


# -- image and music ----------------------------------------------------------------------------


def measure_image(args: argparse.Namespace, tmp: Path) -> dict:
    import torch
    from diffusers import AutoPipelineForText2Image

    import studio.engines  # noqa: F401
    from benchmarks.image_gpu import build_pipeline
    from studio.engines.devices import choose_device

    path = build_pipeline("sd15", tmp / "models" / "bench-sd", "cpu", small=True)
    app, services, window = open_window(tmp / "data", [path.parent])
    device = choose_device(str(services.settings.get("device")))
    pipe = AutoPipelineForText2Image.from_pretrained(path, dtype=device.dtype, local_files_only=True).to(device.device)
    pipe.set_progress_bar_config(disable=True)
    panel = window.image_panel
    prompt = "a lighthouse on a cliff at dusk"
    raw_steps: list[float] = []
    tab_steps: list[float] = []
    cpu: dict[str, list[float]] = {"raw": [], "tab": []}  # process CPU seconds per step, all threads

    def raw(steps: int, seed: int) -> float:
        start = time.perf_counter()
        with torch.inference_mode():
            pipe(
                prompt,
                width=args.size,
                height=args.size,
                num_inference_steps=steps,
                generator=torch.Generator("cpu").manual_seed(seed),
                output_type="np",
            )
        return time.perf_counter() - start

    def steps():
        yield worker_idle(services.worker)
        _pick(panel, path)
        yield sleep(300)  # the model's description arrives and sets its defaults
        panel.prompt.setPlainText(prompt)
        panel.width_box.setValue(args.size)
        panel.height_box.setValue(args.size)
        panel.count.setValue(1)
        panel.steps.setValue(2)
        panel.seed.lock(1)
        yield enabled(panel.generate_button)
        panel.generate_button.click()
        yield job_done(window.jobs, "image")
        raw(2, 0)
        panel.steps.setValue(args.steps)

        def raw_round(seed: int) -> None:
            process = _process_cpu()
            raw_steps.append(raw(args.steps, seed) / args.steps)
            cpu["raw"].append((_process_cpu() - process) / args.steps)

        def tab_round(seed: int):
            yield sleep(50)
            yield enabled(panel.generate_button)
            panel.seed.lock(seed)
            start, process = time.perf_counter(), _process_cpu()
            panel.generate_button.click()
            job = yield job_done(window.jobs, "image")
            assert job.state.value == "finished", job.error
            tab_steps.append((time.perf_counter() - start) / args.steps)
            cpu["tab"].append((_process_cpu() - process) / args.steps)
            yield sleep(50)

        for round_index in range(args.rounds):
            seed = 100 + round_index
            yield from in_pair_order(round_index, lambda seed=seed: raw_round(seed), lambda seed=seed: tab_round(seed))

    Script(app, steps()).run()
    window.shutdown()
    raw_s, tab_s = statistics.median(raw_steps), statistics.median(tab_steps)
    return {
        "window_image_raw_s_per_step": round(raw_s, 4),
        "window_image_tab_s_per_step": round(tab_s, 4),
        "window_image_ratio": round(paired_ratio(raw_steps, tab_steps, higher_is_faster=False), 4),
        "window_image_ratio_of_medians": round(raw_s / tab_s, 4),
        "window_image_ratio_spread": [round(r / t, 3) for r, t in zip(raw_steps, tab_steps, strict=True)],
        "window_image_cpu_s_per_step": {k: round(statistics.median(v), 4) for k, v in cpu.items()},
        "window_image_cpu_per_step_ratio": round(statistics.median(cpu["tab"]) / statistics.median(cpu["raw"]), 4),
        "size": args.size,
        "steps": args.steps,
        "rounds": args.rounds,
    }


def measure_music(args: argparse.Namespace, tmp: Path) -> dict:
    import math

    import tiny_models
    import torch
    from transformers import AutoTokenizer, MusicgenForConditionalGeneration

    import studio.engines  # noqa: F401

    path = tiny_models.build_tiny_musicgen(tmp / "models" / "bench-musicgen", decoder_width=256, decoder_layers=4)
    app, services, window = open_window(tmp / "data", [path.parent])
    model = MusicgenForConditionalGeneration.from_pretrained(path, local_files_only=True).eval()
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    panel = window.music_panel
    prompt = "slow piano with soft strings"
    raw_rates: list[float] = []
    tab_rates: list[float] = []
    cpu: dict[str, list[float]] = {"raw": [], "tab": []}  # process CPU seconds per second of audio

    def raw(seconds: float, seed: int) -> float:
        frame_rate = model.audio_encoder.config.frame_rate
        tokens = math.ceil(seconds * frame_rate) + model.decoder.config.num_codebooks - 1
        inputs = tokenizer([prompt], return_tensors="pt")
        torch.manual_seed(seed)
        start = time.perf_counter()
        with torch.inference_mode():
            audio = model.generate(**inputs, max_new_tokens=tokens, do_sample=True, guidance_scale=3.0, top_k=250)
        return audio.shape[-1] / model.audio_encoder.config.sampling_rate / (time.perf_counter() - start)

    def steps():
        yield worker_idle(services.worker)
        _pick(panel, path)
        yield sleep(300)
        panel.prompt.setPlainText(prompt)
        panel.guidance.setValue(3.0)
        panel.temperature.setValue(1.0)
        panel.top_k.setValue(250)
        # Warm-ups at the measured length: a first generate() of a new length is slow on either
        # side (the first paired round was 2.2-2.8 after warm-ups of 0.5 s of audio).
        panel.duration.setValue(args.seconds)
        panel.seed.lock(1)
        yield enabled(panel.generate_button)
        panel.generate_button.click()
        yield job_done(window.jobs, "music")
        raw(args.seconds, 0)

        def raw_round(seed: int) -> None:
            process = _process_cpu()
            raw_rates.append(raw(args.seconds, seed))
            cpu["raw"].append((_process_cpu() - process) / args.seconds)

        def tab_round(seed: int):
            yield sleep(50)
            yield enabled(panel.generate_button)
            panel.seed.lock(seed)
            start, process = time.perf_counter(), _process_cpu()
            panel.generate_button.click()
            job = yield job_done(window.jobs, "music")
            assert job.state.value == "finished", job.error
            audio_s = float(job.items[0].record.output["duration_s"])
            tab_rates.append(audio_s / (time.perf_counter() - start))
            cpu["tab"].append((_process_cpu() - process) / audio_s)
            yield sleep(50)

        for round_index in range(args.rounds):
            seed = 100 + round_index
            yield from in_pair_order(round_index, lambda seed=seed: raw_round(seed), lambda seed=seed: tab_round(seed))

    Script(app, steps()).run()
    window.shutdown()
    raw_r, tab_r = statistics.median(raw_rates), statistics.median(tab_rates)
    return {
        "window_music_raw_audio_s_per_s": round(raw_r, 3),
        "window_music_tab_audio_s_per_s": round(tab_r, 3),
        "window_music_ratio": round(paired_ratio(raw_rates, tab_rates), 4),
        "window_music_ratio_of_medians": round(tab_r / raw_r, 4),
        "window_music_ratio_spread": [round(t / r, 3) for r, t in zip(raw_rates, tab_rates, strict=True)],
        "window_music_cpu_s_per_audio_s": {k: round(statistics.median(v), 4) for k, v in cpu.items()},
        "window_music_cpu_ratio": round(statistics.median(cpu["tab"]) / statistics.median(cpu["raw"]), 4),
        "seconds": args.seconds,
        "rounds": args.rounds,
    }


# -- start-up ---------------------------------------------------------------------------------


def startup_env() -> dict[str, str]:
    """The environment of a start-up round: as an artist's, with compiled bytecode. An installed
    Studio has its modules compiled (pip and the installer write them); a shell that sets
    PYTHONDONTWRITEBYTECODE would make every round compile Studio's sources again, ~0.4 s here. The
    first round, not counted, writes them."""
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


# Runs the real entry point (``python -m studio``); a timer of its own notices the window.
_STARTUP_CHILD = """
import os, sys, time
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication
app = QApplication([sys.argv[0]])
def look():
    from studio.ui.main_window import MainWindow
    windows = [w for w in app.topLevelWidgets() if isinstance(w, MainWindow) and w.isVisible()]
    if not windows:
        QTimer.singleShot(2, look)
        return
    import resource
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print("shown", usage.ru_utime + usage.ru_stime, flush=True)  # CPU seconds until shown, every thread
    models_found(windows[0])
def models_found(window):
    if getattr(window.text_panel.model_picker, "searching", False):  # (older trees: listed at show)
        QTimer.singleShot(2, lambda: models_found(window))
        return
    print("models", flush=True)  # the tabs list the library's models (found on a thread after show)
    # The engines start loading once the models are listed: the prompt must take typing meanwhile.
    loading = window.services.worker.busy
    from PySide6.QtTest import QTest
    start = time.perf_counter()
    QTest.keyClicks(window.text_panel.prompt, "abc")
    typed = window.text_panel.prompt.toPlainText().endswith("abc")
    print("typed", typed, loading, round((time.perf_counter() - start) * 1000, 1), flush=True)
    os._exit(0)
QTimer.singleShot(0, look)
sys.argv = ["studio", "--data-dir", sys.argv[1]]
from studio.app import main
main()
"""


def measure_startup(args: argparse.Namespace, tmp: Path) -> dict:
    env = startup_env()
    if not env.get("DISPLAY"):
        env["QT_QPA_PLATFORM"] = "offscreen"
    times: list[float] = []
    cpu_times: list[float] = []  # the process's CPU seconds until the window showed: less moved by load
    typing: list[tuple[bool, bool, float]] = []
    models: list[float] = []
    for round_index in range(args.rounds + 1):  # the first writes the settings and shows the welcome
        start = time.perf_counter()
        process = subprocess.Popen(
            [sys.executable, "-c", _STARTUP_CHILD, str(tmp / "data")],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=env,
            cwd=ROOT,
        )
        assert process.stdout is not None
        for line in process.stdout:
            words = line.split()
            if words[:1] == ["shown"] and round_index:
                times.append(time.perf_counter() - start)
                cpu_times.append(float(words[1]))
            elif words[:1] == ["typed"] and round_index:
                typing.append((words[1] == "True", words[2] == "True", float(words[3])))
            elif words[:1] == ["models"] and round_index:
                models.append(time.perf_counter() - start)
        process.wait(60)
    return {
        "startup_app_window_s": round(statistics.median(times), 3),
        "startup_app_window_cpu_s": round(statistics.median(cpu_times), 3),
        "startup_app_window_spread_s": [round(t, 3) for t in times],
        "startup_models_listed_s": round(statistics.median(models), 3),
        "startup_prompt_typed": all(t[0] for t in typing),
        "startup_engines_loading_when_typed": sum(t[1] for t in typing) / max(1, len(typing)),
        "startup_typing_ms": round(statistics.median(t[2] for t in typing), 1),
        "rounds": args.rounds,
    }


# -- gallery ----------------------------------------------------------------------------------


def _fill_gallery(data_dir: Path, items: int, sources: int) -> None:
    import numpy as np
    from PIL import Image

    from benchmarks.gallery_scale import fill_index
    from studio.core.paths import StudioPaths
    from studio.gallery.store import GalleryStore

    paths = StudioPaths.under(data_dir).ensure()
    store = GalleryStore(paths.gallery)
    folder = store.root / "bench-sources"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    files = []
    for n in range(sources):
        file = folder / f"{n}.png"
        Image.fromarray(rng.integers(0, 255, (384, 384, 3), dtype=np.uint8)).save(file)
        files.append(file)
    fill_index(store, items, sources=files)
    store.close()


def measure_gallery(args: argparse.Namespace, tmp: Path) -> dict:
    data_dir = tmp / "data"
    _fill_gallery(data_dir, args.items, 64)
    app, services, window = open_window(data_dir, [])
    from PySide6.QtCore import QElapsedTimer, QTimer

    lateness: list[float] = []
    clock = QElapsedTimer()
    last = [0.0]

    def beat() -> None:
        now = clock.nsecsElapsed() / 1e6
        if last[0]:
            lateness.append(max(0.0, now - last[0] - HEARTBEAT_MS))
        last[0] = now

    heartbeat = QTimer()
    heartbeat.setInterval(HEARTBEAT_MS)
    heartbeat.timeout.connect(beat)
    panel = window.gallery_panel
    bar = panel.view.verticalScrollBar()
    scroller = QTimer()
    scroller.setInterval(16)
    scroller.timeout.connect(lambda: bar.setValue(bar.value() + args.scroll_px))

    def steps():
        yield worker_idle(services.worker)
        window.tabs.setCurrentWidget(panel)
        yield sleep(500)
        clock.start()
        heartbeat.start()
        scroller.start()
        yield sleep(int(args.scroll_s * 1000))
        scroller.stop()
        heartbeat.stop()

    Script(app, steps()).run()
    rows = panel.model.rowCount()
    window.shutdown()
    samples = sorted(lateness)
    return {
        "gallery_scroll_items": rows,
        "gallery_scroll_p99_ms": round(samples[int(0.99 * (len(samples) - 1))], 1),
        "gallery_scroll_max_ms": round(samples[-1], 1),
        "gallery_scroll_beats": len(samples),
        "gallery_scroll_px_per_s": round(args.scroll_px * 1000 / 16),
    }


# -- idle -------------------------------------------------------------------------------------


def measure_idle(args: argparse.Namespace, tmp: Path) -> dict:
    import resource

    app, services, window = open_window(tmp / "data", [STARTER_TEXT.parent])
    marks: dict[str, float] = {}

    def cpu() -> float:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime

    def steps():
        yield worker_idle(services.worker)
        yield sleep(2000)  # settle
        marks["cpu0"], marks["t0"] = cpu(), time.perf_counter()
        yield sleep(int(args.idle_s * 1000))
        marks["cpu1"], marks["t1"] = cpu(), time.perf_counter()
        marks["rss"] = _rss_mb()

    Script(app, steps()).run()
    window.shutdown()
    return {
        "idle_cpu_percent": round(100 * (marks["cpu1"] - marks["cpu0"]) / (marks["t1"] - marks["t0"]), 2),
        "idle_rss_mb": marks["rss"],
    }


PARTS = {
    "text": measure_text,
    "image": measure_image,
    "music": measure_music,
    "startup": measure_startup,
    "gallery": measure_gallery,
    "idle": measure_idle,
}


def measure(args: argparse.Namespace) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        return PARTS[args.part](args, Path(tmp))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=sorted(PARTS), required=True)
    parser.add_argument("--model", choices=("starter", "llama100m"), default="starter", help="text: which model")
    parser.add_argument("--tokens", type=int, default=400, help="text: tokens per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--size", type=int, default=256, help="image: side in pixels")
    parser.add_argument("--steps", type=int, default=20, help="image: steps")
    parser.add_argument("--seconds", type=float, default=4.0, help="music: seconds of audio")
    parser.add_argument("--items", type=int, default=100_000, help="gallery: items in the index")
    parser.add_argument("--scroll-px", type=int, default=40, help="gallery: pixels per 16 ms frame")
    parser.add_argument("--scroll-s", type=float, default=6.0, help="gallery: seconds of scrolling")
    parser.add_argument("--idle-s", type=float, default=5.0, help="idle: seconds measured")
    parser.add_argument(
        "--via", choices=("tab", "worker"), default="tab", help="text: Generate in the tab, or straight to the worker"
    )
    parser.add_argument("--count-events", action="store_true", help="text: GUI events per token")
    parser.add_argument("--json", action="store_true")
    return parser


def main(argv: list[str] | None = None) -> int:
    from benchmarks.report import run_main

    return run_main(build_parser, measure, argv)


if __name__ == "__main__":
    sys.exit(main())
