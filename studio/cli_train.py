"""``studio train image|text|music --data … --name NAME``: a training run from the command line.

Prints what the run learns from first (the data summary), then a progress bar with the loss and the
time left, and at the end the new model (``--json``: one object with its ``model`` id, ``kind``,
``data_digest``, ``files``, ``final_loss``…), usable at once as ``studio gen … --model NAME`` (a
full fine-tune) or ``--lora NAME`` (an adapter). Ctrl+C stops the run after the trainer has saved a
checkpoint; ``--resume`` continues from it. Kept apart from ``studio.cli``, which only calls in here.
"""

from __future__ import annotations

import argparse
import json
import queue
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any, TextIO

from studio.core.errors import InvalidRequest
from studio.core.events import EventKind, JobEvent
from studio.core.training import METHODS, TRAIN_MEDIA, DataSummary, TrainRequest

_DEFAULTS = TrainRequest(medium="text", data=("x",), name="x")


def add_train_command(commands: Any, sub: Any) -> None:
    """The ``train`` command and its options."""
    train = sub(commands, "train", "teach a model your own work: an image or text LoRA, or a fine-tuned starter")
    train.add_argument("medium", choices=TRAIN_MEDIA, metavar="image|text|music")
    train.add_argument(
        "--data",
        action="extend",
        nargs="+",
        required=True,
        metavar="FOLDER_OR_ID",
        help="folders (read recursively), files, gallery item ids, 'favourites', or 'search:WORDS' "
        "(a gallery search); repeatable",
    )
    train.add_argument("--name", required=True, metavar="NAME", help="the new model's name in your library")
    train.add_argument(
        "--base",
        default="",
        metavar="MODEL",
        help="the model to start from (default: the starter for text and music, your first image model)",
    )
    train.add_argument(
        "--method", choices=METHODS, default="", help="default: the base's own (lora, or full for starters)"
    )
    train.add_argument("--steps", type=int, default=0, metavar="N", help="default: the trainer's for the base")
    train.add_argument("--epochs", type=int, default=0, metavar="N", help="passes over the data (instead of --steps)")
    train.add_argument("--rank", type=int, default=_DEFAULTS.rank, metavar="R", help="LoRA rank")
    train.add_argument("--alpha", type=float, default=0.0, metavar="A", help="LoRA alpha (default: the rank)")
    train.add_argument("--lr", type=float, default=0.0, metavar="F", help="learning rate (default: the trainer's)")
    train.add_argument("--batch", type=int, default=_DEFAULTS.batch_size, metavar="N", help="batch size")
    train.add_argument("--resolution", type=int, default=0, metavar="PX", help="images: training size")
    train.add_argument("--seq-len", type=int, default=0, metavar="N", help="text and tunes: tokens a sample")
    train.add_argument("--trigger", default="", metavar="WORD", help="images: a word that calls up what was learned")
    train.add_argument("--rights", default="", metavar="TEXT", help="whose work this is ('my own work', a licence)")
    train.add_argument(
        "--caption", action="append", default=[], metavar="FILE=TEXT", help="an image's caption (repeatable)"
    )
    train.add_argument("--seed", type=int, default=0, metavar="N")
    train.add_argument("--sample-every", type=int, default=0, metavar="N", help="a sample every N steps")
    train.add_argument("--sample-prompt", action="append", default=[], metavar="TEXT", help="repeatable")
    train.add_argument("--checkpoint-every", type=int, default=0, metavar="N")
    train.add_argument("--gradient-checkpointing", action="store_true", help="less memory, a little slower")
    train.add_argument("--resume", action="store_true", help="continue the stopped run of this name")
    train.add_argument("--estimate", action="store_true", help="time a few steps, say how long it would take, stop")
    train.add_argument(
        "--allow-cpu",
        action="store_true",
        help="images: train a full-size base on the CPU anyway (without it the run stops after its estimate)",
    )


def train_request(args: argparse.Namespace, store: Any = None) -> TrainRequest:
    """The ``TrainRequest`` the options ask for (``InvalidRequest`` names what is wrong)."""
    captions = []
    for entry in args.caption:
        file, equals, text = entry.partition("=")
        if not equals or not file.strip():
            raise InvalidRequest("caption", f"--caption takes FILE=TEXT, not {entry!r}")
        path = Path(file).expanduser()
        captions.append((str(path.resolve()) if path.exists() else file, text))
    return TrainRequest(
        medium=args.medium,
        data=tuple(data_reference(ref, store) for ref in args.data),
        name=args.name,
        base=_model_ref(args.base),
        method=args.method,
        steps=args.steps,
        epochs=args.epochs,
        rank=args.rank,
        alpha=args.alpha,
        learning_rate=args.lr,
        batch_size=args.batch,
        resolution=args.resolution,
        seq_len=args.seq_len,
        trigger=args.trigger,
        rights=args.rights,
        captions=tuple(captions),
        seed=args.seed,
        sample_every=args.sample_every,
        sample_prompts=tuple(args.sample_prompt),
        checkpoint_every=args.checkpoint_every,
        gradient_checkpointing=args.gradient_checkpointing,
        resume=args.resume,
        estimate_only=args.estimate,
        allow_cpu=args.allow_cpu,
    )


def data_reference(ref: str, store: Any = None) -> str:
    """A ``--data`` value as the request names it: a path made absolute, a gallery id as ``gallery:ID``,
    ``favourites`` and ``search:WORDS`` as the gallery's references."""
    if ref.startswith("gallery:"):
        return ref
    path = Path(ref).expanduser()
    if path.exists():
        return str(path.resolve())
    if ref in ("favourites", "favorites"):
        return "gallery:favourites"
    if ref.startswith("search:"):
        return "gallery:" + ref
    if store is not None and store.get(ref) is not None:
        return f"gallery:{ref}"
    return ref  # the job says it does not exist


def _model_ref(ref: str) -> str:
    path = Path(ref).expanduser()
    return str(path.resolve()) if ref and path.exists() else ref


def run_train(args: argparse.Namespace, services: Any) -> int:
    from studio.cli import EXIT_CANCELLED, EXIT_FAILED, EXIT_OK, EXIT_USAGE

    request = train_request(args, services.store)
    events: queue.Queue[JobEvent] = queue.Queue()
    services.worker.subscribe(events.put)
    job_id = services.worker.submit_training(request)
    progress = TrainingProgress(sys.stderr, enabled=not args.json)
    event = _follow(events, services.worker, job_id, progress, show_summary=not args.json)
    progress.finish()
    if event.kind is EventKind.CANCELLED:
        where = event.info.get("checkpoint")
        kept = f"; the checkpoint is kept in {where}: continue with --resume" if where else ""
        print(f"studio: cancelled{kept}", file=sys.stderr)
        return EXIT_CANCELLED
    if event.kind is EventKind.ERROR:
        print(f"studio: {'invalid ' + event.info['field'] if 'field' in event.info else 'error'}: {event.error}",
              file=sys.stderr)  # fmt: skip
        if event.info.get("checkpoint"):
            print(
                f"studio: the checkpoint is kept in {event.info['checkpoint']}: continue with --resume", file=sys.stderr
            )
        if args.debug and event.detail:
            print(event.detail, file=sys.stderr)
        return EXIT_USAGE if "field" in event.info else EXIT_FAILED
    result = dict(event.result or {})
    if args.json:
        print(json.dumps(result, ensure_ascii=False), flush=True)
        return EXIT_OK
    if result.get("estimate_only"):
        minutes = float(result["estimated_s"]) / 60
        print(
            f"estimate: {result['steps']} steps in about {_duration(float(result['estimated_s']))} "
            f"({result['seconds_per_step']:.2f} s a step on {result['device']}); nothing was trained"
            + ("" if minutes < 60 else ". Fewer steps, a LoRA or a smaller size make it shorter"),
        )
        return EXIT_OK
    option = "--lora" if result["kind"] == "lora" else "--model"
    print(
        f"trained {request.name}: {result['model']} ({result['kind']}), {result['steps']} steps, "
        f"final loss {result['final_loss']:.4f}, {result['files']} files (data digest {result['data_digest']})"
    )
    print(f"  {result['path']}")
    print(f"  use it: studio gen {request.medium} PROMPT {option} {result['model']}")
    return EXIT_OK


def _follow(
    events: queue.Queue[JobEvent], worker: Any, job_id: str, progress: TrainingProgress, *, show_summary: bool
) -> JobEvent:
    """Show the run until it ends. Ctrl+C asks it to stop and waits for it: the trainer saves its
    checkpoint before the run ends (a second Ctrl+C leaves at once, the checkpoint perhaps unsaved).
    A handler of its own rather than ``KeyboardInterrupt``: that could land anywhere in this loop."""
    stopping = threading.Event()

    def on_interrupt(_signum: int, _frame: Any) -> None:
        if stopping.is_set():
            raise KeyboardInterrupt
        stopping.set()
        worker.cancel(job_id)

    previous = signal.signal(signal.SIGINT, on_interrupt) if _main_thread() else None
    said = False
    sampled: Any = None
    try:
        while True:
            if stopping.is_set() and not said:
                said = True
                progress.finish()
                print("studio: stopping after a checkpoint… (Ctrl+C again to leave at once)", file=sys.stderr)
            try:
                event = events.get(timeout=0.2)
            except queue.Empty:
                continue
            if event.job_id != job_id:
                continue
            if event.kind is EventKind.DATA_SUMMARY and isinstance(event.result, DataSummary) and show_summary:
                progress.finish()
                print_summary(event.result, sys.stderr)
            elif event.kind is EventKind.PROGRESS and not stopping.is_set():
                progress.update(event.step, event.total, event.info)
            elif event.kind is EventKind.PREVIEW and isinstance(event.preview, dict) and show_summary:
                data, step = event.preview.get("data"), event.preview.get("step")
                if isinstance(data, str) and step != sampled:  # one sample a step: the first prompt's
                    sampled = step
                    progress.say(f"sample at step {step}: {' '.join(data.split())[:160]}")
            elif event.is_terminal:
                return event
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def print_summary(summary: DataSummary, stream: TextIO) -> None:
    """What the run learns from, as the artist reads it before training starts."""
    count = len(summary.files)
    write = stream.write
    write(f"learning from {count} {summary.medium} file{'s' if count != 1 else ''}, {_size(summary.total_bytes)}")
    units = sum(f.units for f in summary.files)
    if units and summary.medium != "image":
        write(f", {units:,} {'characters' if summary.medium == 'text' else 'notes'}")
    write(f"\n  data digest {summary.digest}\n")
    if summary.medium == "image":
        sources: dict[str, int] = {}
        for f in summary.files:
            sources[f.caption_source or "none"] = sources.get(f.caption_source or "none", 0) + 1
        write("  captions: " + ", ".join(f"{n} from {s}" for s, n in sorted(sources.items())) + "\n")
    if summary.caption_words:
        write("  most frequent words: " + ", ".join(f"{w} ({n})" for w, n in summary.caption_words[:12]) + "\n")
    for group in summary.duplicates:
        write(f"  exact duplicates (only the first is learned from): {', '.join(Path(p).name for p in group)}\n")
    for group in summary.near_duplicates:
        write(f"  near duplicates: {', '.join(Path(p).name for p in group)}\n")
    for path, why in summary.unreadable:
        write(f"  left out: {Path(path).name}: {why}\n")
    for note in summary.notes:
        write(f"  note: {note}\n")
    write(f"  rights: {summary.rights or 'not stated (--rights)'}\n")
    stream.flush()


class TrainingProgress:
    """A rich bar with the phase, loss and time left on a terminal; elsewhere a line at most every 2 s."""

    def __init__(self, stream: TextIO, *, enabled: bool) -> None:
        self._stream = stream
        self._enabled = enabled
        self._tty = stream.isatty()
        self._bar: Any = None
        self._task: Any = None
        self._last_line = 0.0

    def update(self, step: int, total: int, info: dict[str, Any]) -> None:
        if not self._enabled or total <= 0:
            return
        phase = str(info.get("phase", ""))
        loss = info.get("loss")
        eta = info.get("eta_s")
        fields = {
            "phase": phase,
            "loss": f"loss {loss:.4f}" if isinstance(loss, (int, float)) else "",
            "left": f"{_duration(float(eta))} left" if isinstance(eta, (int, float)) else "",
        }
        if self._tty:
            if self._bar is None:
                from rich.console import Console
                from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

                self._bar = Progress(
                    TextColumn("{task.fields[phase]:<11}"),
                    BarColumn(),
                    MofNCompleteColumn(),
                    TextColumn("{task.fields[loss]}"),
                    TextColumn("{task.fields[left]}"),
                    console=Console(file=self._stream),
                )
                self._bar.start()
                self._task = self._bar.add_task("", total=total, **fields)
            self._bar.update(self._task, completed=min(step, total), total=total, **fields)
        elif time.monotonic() - self._last_line >= 2.0 or (step >= total and phase == "training"):
            self._last_line = time.monotonic()
            parts = [f"{phase} {step}/{total}", fields["loss"], fields["left"]]
            self._stream.write("  ".join(p for p in parts if p) + "\n")
            self._stream.flush()

    def say(self, text: str) -> None:
        """A line above the bar (or on its own without one)."""
        if self._bar is not None:
            self._bar.console.print(text, markup=False, highlight=False)
        else:
            self._stream.write(text + "\n")
            self._stream.flush()

    def finish(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _size(count: int) -> str:
    value = float(count)
    for unit in ("bytes", "kB", "MB"):
        if value < 1000:
            return f"{count:,} bytes" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} GB"
