"""The headless command line: ``studio gen``, ``gallery``, ``models``, ``train`` and ``verify``.

It drives the same worker and gallery as the window. With ``--json`` stdout carries only
JSON, one object per line; errors are one readable line on stderr and a non-zero exit.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import queue
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

import studio
from studio.cli_chat import (
    add_chat_commands,
    add_chat_option,
    conversation_fields,
    finished_chat_json,
    run_chat_command,
)
from studio.cli_edits import add_image_edit_options, add_upscale_command, edit_fields, run_upscale
from studio.cli_music import add_song_options, song_fields
from studio.cli_train import add_train_command, run_train
from studio.core.errors import InvalidRequest, StudioError
from studio.core.events import EventKind, JobEvent
from studio.core.paths import StudioPaths
from studio.core.requests import ImageRequest, MusicRequest, Request, TextRequest

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_CANCELLED = 0, 1, 2, 130

log = logging.getLogger(__name__)


def add_common_options(parser: argparse.ArgumentParser, *, top: bool) -> None:
    # Subcommands take the same options; SUPPRESS keeps a subparser from resetting the top value.
    default: Any = False if top else argparse.SUPPRESS
    parser.add_argument("--json", action="store_true", default=default, help="print JSON only, one object per line")
    parser.add_argument("--debug", action="store_true", default=default, help="show tracebacks and debug logs")
    parser.add_argument(
        "--data-dir",
        default=None if top else argparse.SUPPRESS,
        metavar="DIR",
        help="keep settings, gallery, cache and logs under DIR (also $STUDIO_DATA_DIR)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="studio", description="Generate text, images and music with local models.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {studio.__version__}")
    add_common_options(parser, top=True)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    def sub(parent: Any, name: str, help_text: str) -> argparse.ArgumentParser:
        child = parent.add_parser(name, help=help_text, description=help_text)
        add_common_options(child, top=False)
        return child

    gen = commands.add_parser("gen", help="generate text, an image or music")
    kinds = gen.add_subparsers(dest="kind", metavar="KIND", required=True)

    def gen_kind(name: str, help_text: str) -> argparse.ArgumentParser:
        child = sub(kinds, name, help_text)
        child.add_argument("prompt", metavar="PROMPT")
        child.add_argument(
            "--model",
            metavar="M",
            help="a model folder, or an id from 'studio models list' (default: the first of this kind, "
            "a model you added before the starter model that ships with Studio)",
        )
        child.add_argument("--seed", type=int, default=None, metavar="N", help="random seed (random when left out)")
        return child

    text = gen_kind("text", "generate text with a language model")
    text.add_argument("--max-tokens", type=int, default=TextRequest.max_tokens, metavar="N")
    text.add_argument("--temperature", type=float, default=TextRequest.temperature, metavar="F")
    text.add_argument("--top-p", type=float, default=TextRequest.top_p, metavar="F")
    text.add_argument("--top-k", type=int, default=TextRequest.top_k, metavar="N")
    text.add_argument("--repetition-penalty", type=float, default=TextRequest.repetition_penalty, metavar="F")
    text.add_argument("--system", default="", metavar="S", help="system prompt (chat models)")
    text.add_argument("--stop", action="append", default=[], metavar="S", help="stop at this text (repeatable)")
    add_chat_option(text)

    image = gen_kind("image", "generate images with a diffusion model")
    # No default here: the model's native size from its description, as in the window.
    image.add_argument("--width", type=int, default=None, metavar="W", help="default: the model's native size")
    image.add_argument("--height", type=int, default=None, metavar="H", help="default: the model's native size")
    image.add_argument("--steps", type=int, default=ImageRequest.steps, metavar="N")
    image.add_argument("--guidance", type=float, default=ImageRequest.guidance, metavar="F")
    image.add_argument("--negative", default="", metavar="S", help="negative prompt")
    image.add_argument("--count", type=int, default=ImageRequest.count, metavar="N")
    image.add_argument("--scheduler", default="", metavar="NAME", help="a scheduler class that fits the model")
    image.add_argument("--init-image", default="", metavar="FILE", help="start from this image (image-to-image)")
    image.add_argument(
        "--strength", type=float, default=ImageRequest.strength, metavar="F", help="how much of --init-image changes"
    )
    add_adapter_options(image, text)
    add_image_edit_options(image)

    music = gen_kind("music", "generate music")
    music.add_argument("--duration", type=float, default=MusicRequest.duration, metavar="SECONDS")
    music.add_argument("--guidance", type=float, default=MusicRequest.guidance, metavar="F")
    music.add_argument("--temperature", type=float, default=MusicRequest.temperature, metavar="F")
    music.add_argument("--top-k", type=int, default=MusicRequest.top_k, metavar="N")
    music.add_argument("--continue", dest="audio_prompt", default="", metavar="FILE", help="continue this clip")
    music.add_argument("--melody", default="", metavar="FILE", help="follow this melody (MusicGen Melody models)")
    add_song_options(music)

    gallery = commands.add_parser("gallery", help="list or repair the gallery")
    gallery_commands = gallery.add_subparsers(dest="action", metavar="ACTION", required=True)
    listing = sub(gallery_commands, "list", "list gallery items, newest first")
    listing.add_argument("--kind", choices=("text", "image", "music"))
    listing.add_argument("--search", metavar="Q", help="words in the prompt or model name")
    listing.add_argument("--limit", type=int, default=None, metavar="N")
    sub(gallery_commands, "rebuild", "recreate the gallery index from the sidecar files")
    importing = sub(gallery_commands, "import", "copy files into the gallery, reading their metadata")
    importing.add_argument("files", nargs="+", metavar="FILE")
    exporting = sub(gallery_commands, "export", "export gallery items to a folder")
    exporting.add_argument("ids", nargs="+", metavar="ID")
    exporting.add_argument("--to", required=True, metavar="FOLDER", help="the folder to write into")
    exporting.add_argument("--format", default="", metavar="EXT", help="png, jpg, webp, flac, wav, ogg, mp3, md, txt")
    exporting.add_argument("--strip", action="store_true", help="leave out the metadata (the AI marking stays)")
    exporting.add_argument("--pattern", default="{date}_{prompt}_{seed}", metavar="P", help="file name pattern")

    models = commands.add_parser("models", help="list or add local models")
    model_commands = models.add_subparsers(dest="action", metavar="ACTION", required=True)
    model_list = sub(model_commands, "list", "list the models Studio can find")
    model_list.add_argument(
        "--check", action="store_true", help="also check each class against the installed libraries (slower)"
    )
    add = sub(model_commands, "add", "add a folder to search for models")
    add.add_argument("path", metavar="PATH")
    fetch = sub(model_commands, "download", "download a model from Hugging Face (online mode only)")
    fetch.add_argument("repo_id", metavar="REPO_ID", help="owner/name on the Hugging Face Hub")
    fetch.add_argument("--revision", metavar="REV")

    settings = commands.add_parser("settings", help="show or change settings")
    settings_commands = settings.add_subparsers(dest="action", metavar="ACTION", required=True)
    sub(settings_commands, "list", "every setting with its value and what it does")
    change = sub(settings_commands, "set", 'change one setting (JSON values: true, 3, "text", [..])')
    change.add_argument("name", metavar="NAME")
    change.add_argument("value", metavar="VALUE")

    verify = sub(commands, "verify", "check a file's provenance and whether it was changed")
    verify.add_argument("file", metavar="FILE")
    training = sub(gallery_commands, "ai-training", "say whether an item may be used to train AI (its own choice)")
    training.add_argument("id", metavar="ID")
    training.add_argument("choice", choices=("allowed", "not_allowed", "not_stated"))
    regenerate = sub(
        commands, "regenerate", "run an item's recorded request again and prove the output identical (or say why not)"
    )
    regenerate.add_argument("item", metavar="ID_OR_FILE", help="a gallery item id, or a file Studio made")
    regenerate.add_argument("--keep", action="store_true", help="save the new output as an item whose parent is it")
    add_upscale_command(commands, sub)
    add_chat_commands(commands, sub)
    add_train_command(commands, sub)
    _add_sweep_command(commands, {"text": text, "image": image, "music": music})
    _add_batch_command(commands, sub)
    return parser


def _add_batch_command(commands: Any, sub: Callable[..., argparse.ArgumentParser]) -> None:
    batch = sub(commands, "batch", "run the jobs of a plan file (TOML; see docs/BATCH.md), resumable after a kill")
    batch.add_argument("plan", metavar="PLAN.toml")
    batch.add_argument("--resume", action="store_true", help="skip every job of this plan already in the gallery")
    batch.add_argument(
        "--cluster",
        metavar="ADDRESS",
        default="",
        help="run the jobs on a Ray cluster: ray://HOST:PORT, or 'local' to start one on this machine "
        "(needs the studio[cluster] extra); outputs are saved in this gallery",
    )
    batch.add_argument("--workers", type=int, default=2, metavar="N", help="Ray workers with --cluster local")
    batch.add_argument(
        "--if-lost",
        choices=("fall-back", "stop"),
        default=None,
        help="when the cluster cannot be reached or is lost mid-plan: run the rest on this machine (fall-back) "
        "or fail it with the reason (stop; --resume later makes the rest); default: the setting "
        "'When the cluster is gone' (fall back)",
    )


def _add_sweep_command(commands: Any, gen_kinds: dict[str, argparse.ArgumentParser]) -> None:
    """``studio sweep KIND PROMPT --x FIELD=V1,V2 …``: every option of ``gen KIND`` (copied from
    its parser, so an option added there is here too), plus the axes."""
    sweep = commands.add_parser("sweep", help="an X/Y/Z sweep: a job per cell, then a labelled grid")
    kinds = sweep.add_subparsers(dest="kind", metavar="KIND", required=True)
    for name, gen_kind in gen_kinds.items():
        child = kinds.add_parser(
            name,
            parents=[gen_kind],
            add_help=False,
            help=f"sweep {name} settings",
            description=f"Run one {name} job per cell of up to three axes, then save a grid with the axis values.",
            epilog="Axis values: V1,V2,… ; ranges 1-5, 1-10 (+3), 1-2 [5]; prompt=SEARCH,REPLACE1,… replaces "
            "SEARCH in the prompt (the first cell keeps it); size=512x512,768x768.",
        )
        for axis in ("x", "y", "z"):
            child.add_argument(
                f"--{axis}", metavar="FIELD=V1,V2", default=None, required=axis == "x", help=f"the {axis} axis"
            )


def run_command(args: argparse.Namespace) -> int:
    """Run a parsed non-GUI command; returns the exit status."""
    from studio.runtime.services import open_services, setup_logging

    paths = StudioPaths.resolve(args.data_dir)
    if args.command == "verify":
        return _verify(args)
    paths.ensure()
    setup_logging(paths, verbose=args.debug)
    if args.command == "models" and args.action == "list":
        return _models_list(args, paths)
    if args.command == "settings":
        return _settings(args, paths)
    if args.command == "models" and args.action == "download":
        return _models_download(args, paths)
    services = open_services(paths)
    try:
        if args.command == "gen":
            return _gen(args, services)
        if args.command == "gallery" and args.action == "list":
            return _gallery_list(args, services)
        if args.command == "gallery" and args.action == "rebuild":
            count = services.store.rebuild()
            _out(args, {"items": count}, f"gallery index rebuilt: {count} items")
            return EXIT_OK
        if args.command == "gallery" and args.action == "import":
            for file in args.files:
                item = services.store.import_file(Path(file))
                _out(args, item.to_dict(), f"{item.id}  {item.kind:<5}  {item.path}")
            return EXIT_OK
        if args.command == "gallery" and args.action == "export":
            return _gallery_export(args, services)
        if args.command == "gallery" and args.action == "ai-training":
            return _gallery_ai_training(args, services)
        if args.command == "regenerate":
            return _regenerate(args, services)
        if args.command == "upscale":
            return run_upscale(args, services)
        if args.command == "train":
            return run_train(args, services)
        if args.command == "sweep":
            return _sweep(args, services)
        if args.command == "batch":
            return _batch(args, services)
        if args.command == "models" and args.action == "add":
            return _models_add(args, services)
        if args.command == "chat":
            return run_chat_command(args, services)
    finally:
        services.close()
    raise AssertionError(f"unhandled command {args.command}")


def default_model(specs: list[Any], kind: str) -> str:
    """The model a job of ``kind`` uses when none is named: the user's own before a starter."""
    from studio.core.models import preferred_order

    runnable = [spec for spec in preferred_order(specs) if spec.kind == kind and spec.runnable]
    return str(runnable[0].path) if runnable else ""


def image_size(args: argparse.Namespace, info: Any) -> tuple[int, int]:
    """--width/--height where given, else the model's native size from its ``ModelInfo`` (the
    window's default too), else the request's own default."""
    native = int(getattr(info, "native_size", 0) or 0)
    width = args.width if args.width is not None else (native or ImageRequest.width)
    height = args.height if args.height is not None else (native or ImageRequest.height)
    return width, height


def _request_from_args(args: argparse.Namespace, info: Any = None, catalog: Any = None) -> Request:
    common = {"prompt": args.prompt, "model": args.model, "seed": args.seed}
    if args.kind == "text":
        return TextRequest(
            **common,
            max_tokens=args.max_tokens,
            temperature=args.temperature,
            top_p=args.top_p,
            top_k=args.top_k,
            repetition_penalty=args.repetition_penalty,
            system=args.system,
            stop=tuple(args.stop),
            **adapter_fields(args),
        )
    if args.kind == "image":
        width, height = image_size(args, info)
        return ImageRequest(
            **common,
            width=width,
            height=height,
            steps=args.steps,
            guidance=args.guidance,
            negative=args.negative,
            count=args.count,
            scheduler=args.scheduler,
            init_image=str(Path(args.init_image).resolve()) if args.init_image else "",
            strength=args.strength,
            **adapter_fields(args),
            **edit_fields(args, catalog),
        )
    return MusicRequest(
        **common,
        duration=args.duration,
        guidance=args.guidance,
        temperature=args.temperature,
        top_k=args.top_k,
        audio_prompt=str(Path(args.audio_prompt).resolve()) if args.audio_prompt else "",
        melody=str(Path(args.melody).resolve()) if args.melody else "",
        **song_fields(args),
    )


def add_adapter_options(image: argparse.ArgumentParser, text: argparse.ArgumentParser) -> None:
    """--lora / --embedding for images, --lora for text (the adapters of issue 18)."""
    image.add_argument(
        "--lora",
        action="append",
        default=[],
        metavar="NAME_OR_PATH[:WEIGHT]",
        help="apply a LoRA / LyCORIS (a name from 'studio models list' or a file), weight -2…2, default 1; "
        "repeatable; <lora:NAME:WEIGHT> in PROMPT works the same",
    )
    image.add_argument(
        "--embedding",
        action="append",
        default=[],
        metavar="NAME_OR_PATH",
        help="load a textual-inversion embedding; it is used where its token (the file's stem) is in PROMPT",
    )
    text.add_argument(
        "--lora", default="", metavar="PATH[:WEIGHT]", help="a peft LoRA adapter folder on top of --model"
    )


def lora_argument(value: str) -> tuple[str, float]:
    """``NAME_OR_PATH[:WEIGHT]`` → (name or path, weight); a path keeps its own colons."""
    ref, colon, weight = value.rpartition(":")
    if colon:
        try:
            return _adapter_ref(ref), float(weight)
        except ValueError:
            pass
    return _adapter_ref(value), 1.0


def _adapter_ref(ref: str) -> str:
    path = Path(ref).expanduser()
    return str(path.resolve()) if path.exists() else ref


def adapter_fields(args: argparse.Namespace) -> dict[str, Any]:
    if args.kind == "image":
        loras = tuple(lora_argument(value) for value in getattr(args, "lora", []) or [])
        return {"loras": loras, "embeddings": tuple(_adapter_ref(e) for e in getattr(args, "embedding", []) or [])}
    if args.kind == "text" and getattr(args, "lora", ""):
        ref, weight = lora_argument(args.lora)
        return {"lora": ref, "lora_weight": weight}
    return {}


def _note_ignored_options(event: JobEvent, request: Request, progress: _Progress) -> None:
    """Say which options the model does not read (from its ``ModelInfo``), on stderr."""
    if event.kind is not EventKind.MODEL_INFO or event.result is None:
        return
    for name, why in event.result.ignored_fields(request):
        progress.finish()
        option = "--continue" if name == "audio_prompt" else f"--{name.replace('_', '-')}"
        print(f"studio: note: {option} is ignored: {why}", file=sys.stderr)


def _gen(args: argparse.Namespace, services: Any) -> int:
    if not args.model:
        from studio.runtime.services import make_catalog

        args.model = default_model(make_catalog(services.settings).discover(), args.kind)
        if not args.model:
            raise StudioError(f"no {args.kind} model found: add one with 'studio models add FOLDER'")
    events: queue.Queue[JobEvent] = queue.Queue()
    services.worker.subscribe(events.put)
    # What the model uses (its ModelInfo, from the worker's side lane) comes first: the image size
    # defaults to the model's native one, as in the window, and options the model would ignore get a
    # note (the window greys those controls out instead). Reading it holds the same library lock the
    # job's load would, so asking first costs the job nothing.
    info_event = _wait_for_description(events, services.worker.describe_model(args.model))
    catalog = None
    if getattr(args, "upscaler", ""):  # an upscaler named by id or name is found in the library
        from studio.runtime.services import make_catalog

        catalog = make_catalog(services.settings)
    request = _request_from_args(args, info_event.result if info_event is not None else None, catalog)
    if args.kind == "text" and getattr(args, "chat", ""):
        request = dataclasses.replace(request, **conversation_fields(args, services))
    job_id = services.worker.submit(request)
    stream_text = request.kind == "text" and not args.json
    progress = _Progress(sys.stderr, enabled=not stream_text)
    if info_event is not None:
        _note_ignored_options(info_event, request, progress)

    def write_preview(text: str) -> None:
        sys.stdout.write(text)
        sys.stdout.flush()

    event = follow_job(events, services.worker, job_id, progress, on_preview=write_preview if stream_text else None)
    failed = job_failed(event, debug=args.debug)
    if failed is not None:
        return failed
    assert event is not None
    if stream_text:
        sys.stdout.write("\n")
    for item in event.result:
        if args.json:
            print(json.dumps({**item.to_dict(), **finished_chat_json(item)}, ensure_ascii=False), flush=True)
        elif stream_text:
            print(f"saved {item.path} (seed {item.record.seed})", file=sys.stderr)
            if finished_chat_json(item):
                print(f"conversation {item.id}: continue with --chat {item.id}", file=sys.stderr)
        else:
            print(item.path, flush=True)
    return EXIT_OK


def _sweep(args: argparse.Namespace, services: Any) -> int:
    """Queue a sweep's cells and grids; print each cell as it ends, then each grid item."""
    from studio.core.capabilities import FIELDS_OF_CONTROL
    from studio.core.sweep import parse_axis
    from studio.runtime.sweeps import start_sweep

    if not args.model:
        from studio.runtime.services import make_catalog

        args.model = default_model(make_catalog(services.settings).discover(), args.kind)
        if not args.model:
            raise StudioError(f"no {args.kind} model found: add one with 'studio models add FOLDER'")
    events: queue.Queue[JobEvent] = queue.Queue()
    services.worker.subscribe(events.put)
    info_event = _wait_for_description(events, services.worker.describe_model(args.model))
    base = _request_from_args(args, info_event.result if info_event is not None else None)
    axes = [parse_axis(spec, base) for spec in (args.x, args.y, args.z) if spec]
    info = info_event.result if info_event is not None else None
    for axis in axes:
        for control, why in info.unused.items() if info is not None else ():
            if axis.field in FIELDS_OF_CONTROL[control]:
                raise InvalidRequest(axis.field, f"sweeping {axis.field} would make the same output each time: {why}")
    jobs = start_sweep(services.worker, services.store, base, axes)
    cells = {job: cell for cell, job in jobs.cells}
    waiting = set(jobs.job_ids)
    progress = _Progress(sys.stderr, enabled=not args.json)
    failed = 0
    try:
        while waiting:
            try:
                event = events.get(timeout=0.2)
            except queue.Empty:
                continue
            if event.job_id not in waiting or not event.is_terminal:
                continue
            waiting.discard(event.job_id)
            done = len(jobs.cells) - sum(1 for job in cells if job in waiting)
            progress.update(done, len(jobs.cells))
            cell = cells.get(event.job_id)
            label = ", ".join(cell.labels) if cell else "grid"
            if event.kind is not EventKind.FINISHED:
                failed += 1
                progress.finish()
                why = event.error if event.kind is EventKind.ERROR else "cancelled"
                print(f"studio: {label}: {why}", file=sys.stderr)
                continue
            for item in event.result:
                if args.json:
                    data = item.to_dict()
                    data["sweep"] = {"cell": list(cell.index), "labels": list(cell.labels)} if cell else {"grid": True}
                    print(json.dumps(data, ensure_ascii=False), flush=True)
                else:
                    progress.finish()
                    print(f"{'grid' if cell is None else label}: {item.path}", flush=True)
    except KeyboardInterrupt:
        for job in waiting:
            services.worker.cancel(job)
        progress.finish()
        print("studio: cancelled", file=sys.stderr)
        return EXIT_CANCELLED
    progress.finish()
    return EXIT_FAILED if failed else EXIT_OK


def _batch(args: argparse.Namespace, services: Any) -> int:
    """Run a plan: a progress bar over its jobs and one line (JSON with --json) per item."""
    from studio.runtime.batch import load_plan, run_plan
    from studio.runtime.services import make_catalog

    specs = make_catalog(services.settings).discover()
    events: queue.Queue[JobEvent] = queue.Queue()
    unsubscribe_local = services.worker.subscribe(events.put)
    native: dict[str, int] = {}

    def model_defaults(kind: str, model: str) -> dict[str, Any]:
        if kind != "image":
            return {}
        if model not in native:  # the model's native size, as gen and the window use
            described = _wait_for_description(events, services.worker.describe_model(model))
            info = described.result if described is not None else None
            native[model] = int(getattr(info, "native_size", 0) or 0)
        return {"width": native[model], "height": native[model]} if native[model] else {}

    plan = load_plan(
        Path(args.plan), default_model=lambda kind: default_model(specs, kind), model_defaults=model_defaults
    )
    progress = _Progress(sys.stderr, enabled=not args.json)

    def on_item(job: Any, item: Any, skipped: bool) -> None:
        if args.json:
            data = {**item.to_dict(), "batch": {"plan": plan.name, "job": job.label, "skipped": skipped}}
            print(json.dumps(data, ensure_ascii=False), flush=True)
        elif not skipped:
            progress.finish()
            print(f"{job.label}: {item.path}", flush=True)

    def on_failure(job: Any, why: str) -> None:
        progress.finish()
        print(f"studio: {job.label}: {why}", file=sys.stderr)

    runner: Any = services.worker
    router = None
    if args.cluster:
        from studio.runtime.job_router import ClusterTarget, JobRouter

        if args.workers < 1:
            raise InvalidRequest("workers", "--workers must be at least 1")
        if_lost = (args.if_lost or str(services.settings.get("cluster_if_lost"))).replace("-", "_")
        target = ClusterTarget(args.cluster, args.workers, if_lost, str(args.data_dir or ""))
        unsubscribe_local()  # the router passes on the local worker's events with the cluster's
        router = runner = JobRouter(services.worker, services.store, target=target)
        runner.subscribe(events.put)
        runner.subscribe(lambda event: _say_where(event, progress))
        router.connect()
        if router.where == "lost":  # out of reach, and the user would rather stop: said before any job
            router.close_cluster()
            raise StudioError(router.status_text.removeprefix("stopped: "))
    try:
        outcome = run_plan(
            plan, runner, services.store, resume=args.resume, on_item=on_item, on_failure=on_failure,
            on_progress=progress.update, events=events,
        )  # fmt: skip
    except KeyboardInterrupt:
        progress.finish()
        print("studio: cancelled; run again with --resume to make the rest", file=sys.stderr)
        return EXIT_CANCELLED
    finally:
        if router is not None:
            router.close_cluster()
    progress.finish()
    if not args.json:
        skipped = f", {outcome.skipped} already made" if outcome.skipped else ""
        print(f"{plan.name}: {outcome.made} made{skipped}, {len(outcome.failed)} failed", file=sys.stderr)
    return EXIT_FAILED if outcome.failed else EXIT_OK


def _say_where(event: JobEvent, progress: _Progress) -> None:
    """``studio batch --cluster``: where the jobs run, when it changes (a lost cluster, a fallback)."""
    if event.kind is EventKind.RUNNER and event.result:
        progress.finish()
        text = str(event.result.get("text", ""))
        print(
            f"studio: {text}" if event.result.get("where") == "lost" else f"studio: jobs run on {text}", file=sys.stderr
        )


def follow_job(
    events: queue.Queue[JobEvent],
    worker: Any,
    job_id: str,
    progress: _Progress,
    *,
    on_preview: Callable[[Any], None] | None = None,
) -> JobEvent | None:
    """Show a job's progress until it ends: its terminal event, or None when Ctrl+C cancelled it."""
    try:
        while True:
            try:
                event = events.get(timeout=0.2)
            except queue.Empty:
                continue
            if event.job_id != job_id:
                continue
            if event.kind is EventKind.PROGRESS:
                progress.update(event.step, event.total)
            elif event.kind is EventKind.PREVIEW and on_preview is not None:
                on_preview(event.preview)
            elif event.is_terminal:
                progress.finish()
                return event
    except KeyboardInterrupt:
        worker.cancel(job_id)
        progress.finish()
        return None


def job_failed(event: JobEvent | None, *, debug: bool = False) -> int | None:
    """The exit status of a job that did not finish (said on stderr), or None when it finished."""
    if event is None or event.kind is EventKind.CANCELLED:
        print("studio: cancelled", file=sys.stderr)
        return EXIT_CANCELLED
    if event.kind is EventKind.ERROR:
        print(f"studio: error: {event.error}", file=sys.stderr)
        if debug and event.detail:
            print(event.detail, file=sys.stderr)
        return EXIT_FAILED
    return None


def _wait_for_description(events: queue.Queue[JobEvent], described: str, timeout: float = 120.0) -> JobEvent | None:
    """The ``model_info`` event of ``described`` (None if it does not come in time)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            event = events.get(timeout=0.2)
        except queue.Empty:
            continue
        if event.job_id == described:
            return event
    return None


class _Progress:
    """A rich progress bar (with time left) on a terminal; elsewhere a line at most once a second."""

    def __init__(self, stream: TextIO, *, enabled: bool) -> None:
        self._stream = stream
        self._enabled = enabled
        self._tty = stream.isatty()
        self._bar: Any = None
        self._task: Any = None
        self._last_line = 0.0
        self._last_step = -1

    def update(self, step: int, total: int) -> None:
        if not self._enabled or total <= 0 or step == self._last_step:
            return
        self._last_step = step
        if self._tty:
            if self._bar is None:
                from rich.console import Console
                from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

                self._bar = Progress(
                    BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), console=Console(file=self._stream)
                )
                self._bar.start()
                self._task = self._bar.add_task("", total=total)
            self._bar.update(self._task, completed=min(step, total), total=total)
        elif time.monotonic() - self._last_line >= 1.0 or step >= total:
            self._last_line = time.monotonic()
            self._stream.write(f"progress {step}/{total}\n")

    def finish(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None


def _gallery_list(args: argparse.Namespace, services: Any) -> int:
    for item in services.store.list(kind=args.kind, search=args.search, limit=args.limit):
        if args.json:
            print(json.dumps(item.to_dict(), ensure_ascii=False))
        else:
            prompt = item.record.prompt.replace("\n", " ")
            print(f"{item.id}  {item.kind:<5}  {item.record.created_at[:19]}  {prompt[:60]}")
    return EXIT_OK


def _models_list(args: argparse.Namespace, paths: StudioPaths) -> int:
    from studio.core.settings import Settings
    from studio.runtime.services import make_catalog

    specs = make_catalog(Settings.load(paths.settings_file)).discover()
    if args.check:
        from dataclasses import replace

        from studio.engines.library import library_problem

        checked = [(spec, library_problem(spec)) for spec in specs]
        specs = [replace(spec, runnable=False, reason=problem) if problem else spec for spec, problem in checked]
    if args.json:
        for spec in specs:
            print(json.dumps(spec.to_dict(), ensure_ascii=False))
        return EXIT_OK
    rows = [
        [spec.id, spec.kind or "?", spec.family or "", "ready" if spec.runnable else f"cannot run: {spec.reason}",
         str(spec.path)]
        for spec in specs
    ]  # fmt: skip
    print_table(["id", "kind", "family", "status", "path"], rows, sys.stdout)
    return EXIT_OK


def print_table(headers: list[str], rows: list[list[str]], stream: TextIO) -> None:
    """A table drawn by rich on a terminal; elsewhere plain columns padded to the widest cell
    (the last one left as is), so scripts can still split it on runs of spaces."""
    if stream.isatty():
        from rich.console import Console
        from rich.table import Table

        table = Table(*headers, box=None, header_style="bold", pad_edge=False)
        for row in rows:
            table.add_row(*row)
        Console(file=stream).print(table)
        return
    widths = [max(len(cell) for cell in column) for column in zip(headers, *rows, strict=False)]
    for row in [headers, *rows]:
        cells = [cell.ljust(width) for cell, width in zip(row[:-1], widths, strict=False)] + row[-1:]
        stream.write("  ".join(cells).rstrip() + "\n")
    stream.flush()


def _models_download(args: argparse.Namespace, paths: StudioPaths) -> int:
    from studio.core.settings import Settings
    from studio.runtime.download_manager import DownloadFailed, run_download

    if not Settings.load(paths.settings_file).get("online"):
        raise InvalidRequest(
            "online",
            "online mode is off, so Studio opens no connection: turn it on with 'studio settings set online true'",
        )
    progress = _Progress(sys.stderr, enabled=not args.json)
    try:
        folder = run_download(args.repo_id, args.revision, progress.update)
    except DownloadFailed as exc:
        raise StudioError(f"download of {args.repo_id} failed: {exc}") from exc
    finally:
        progress.finish()
    _out(args, {"repo_id": args.repo_id, "path": str(folder)}, f"downloaded {args.repo_id} to {folder}")
    return EXIT_OK


def _gallery_export(args: argparse.Namespace, services: Any) -> int:
    from studio.gallery.export import ExportOptions, export_items

    items = []
    for item_id in args.ids:
        item = services.store.get(item_id)
        if item is None:
            raise InvalidRequest("id", f"no gallery item {item_id} ('studio gallery list' shows the ids)")
        items.append(item)
    suffix = f".{args.format.lower().lstrip('.')}" if args.format else ""
    options = ExportOptions(
        Path(args.to).expanduser(),
        suffix,
        with_metadata=not args.strip,
        pattern=args.pattern,
        sign=bool(services.settings.get("sign_outputs")),
    )
    for path in export_items(items, options, services.store.credentials):
        _out(args, {"path": str(path)}, str(path))
    return EXIT_OK


def _gallery_ai_training(args: argparse.Namespace, services: Any) -> int:
    item = services.store.set_ai_training(args.id, args.choice)
    _out(args, item.to_dict() | {"ai_training": args.choice}, f"{item.id}: AI training {args.choice}  {item.path}")
    return EXIT_OK


def _regenerate(args: argparse.Namespace, services: Any) -> int:
    """Exit 0 when the regenerated output is identical to the item's, 1 when it differs."""
    from studio.engines.fingerprint import WeightFingerprints
    from studio.runtime.regenerate import load_record, original_hash_note, regenerate
    from studio.runtime.services import make_catalog

    record, original = load_record(args.item, services.store, services.store.credentials)
    settings = services.settings
    progress = _Progress(sys.stderr, enabled=not args.json)

    def on_event(event: JobEvent) -> None:
        if event.kind is EventKind.PROGRESS:
            progress.update(event.step, event.total)

    try:
        report = regenerate(
            record,
            original,
            catalog=make_catalog(settings),
            fingerprints=WeightFingerprints(services.paths.cache / "weight-digests.json"),
            runtime_options={n: settings.get(n) for n in ("device", "memory_mode", "compile_models", "precision")},
            store=services.store,
            keep=args.keep,
            on_event=on_event,
        )
    finally:
        progress.finish()
    if args.json:
        print(json.dumps(report.to_dict(), ensure_ascii=False))
    else:
        print(f"{record.id} ({record.kind}) with {report.model.get('name', '?')}: {report.explanation}")
        print(f"  original     {report.original_sha256}")
        print(f"  regenerated  {report.regenerated_sha256}")
        for difference in report.differences:
            print(f"  differs: {difference}")
        note = original_hash_note(report)
        if note:
            print(f"  {note}")
        if report.kept is not None:
            print(f"  kept as {report.kept.id}  {report.kept.path}")
    return EXIT_OK if report.identical else EXIT_FAILED


def _settings(args: argparse.Namespace, paths: StudioPaths) -> int:
    from studio.core.settings import Settings

    settings = Settings.load(paths.settings_file)
    if args.action == "set":
        setting = next((s for s in Settings.declared() if s.name == args.name), None)
        if setting is None:
            names = ", ".join(s.name for s in Settings.declared())
            raise InvalidRequest("name", f"no setting called {args.name!r}; settings: {names}")
        try:
            value = json.loads(args.value)
        except ValueError:
            value = args.value  # a bare word is text
        try:
            settings.set(args.name, value)
        except ValueError as exc:
            choices = f" (choose one of {', '.join(map(str, setting.choices))})" if setting.choices else ""
            raise InvalidRequest(args.name, f"{exc}{choices}") from exc
        settings.save()
    for setting in Settings.declared():
        if args.action == "set" and setting.name != args.name:
            continue
        value = settings.get(setting.name)
        if args.json:
            print(json.dumps({"name": setting.name, "value": value, "description": setting.description}))
        else:
            print(f"{setting.name} = {json.dumps(value)}\n    {setting.description}")
    return EXIT_OK


def _models_add(args: argparse.Namespace, services: Any) -> int:
    from studio.engines.library import ModelCatalog

    folder = Path(args.path).expanduser().resolve()
    if not folder.is_dir():
        raise StudioError(f"{args.path} is not a folder")
    found = ModelCatalog(None, [folder]).discover()
    folders = services.settings.get("model_folders")
    if str(folder) not in folders:
        folders.append(str(folder))
        services.settings.set("model_folders", folders)
        services.settings.save()
    if args.json:
        for spec in found:
            print(json.dumps(spec.to_dict(), ensure_ascii=False))
    else:
        print(f"added {folder}: {len(found)} model(s) found")
        for spec in found:
            print(f"  {spec.id} ({spec.kind or 'unknown'})" + ("" if spec.runnable else f": cannot run: {spec.reason}"))
    return EXIT_OK


def _verify(args: argparse.Namespace) -> int:
    from studio.gallery.verify import record_source_words, training_words, verify_file
    from studio.runtime.services import installation_credentials

    report = verify_file(Path(args.file), installation_credentials(StudioPaths.resolve(args.data_dir)))
    if args.json:
        print(json.dumps(report.to_dict(), ensure_ascii=False))
    else:
        if report.summary:
            print(f"{report.path.name}: {report.summary}")
        if report.record is not None:
            record = report.record
            print(f"record: {record.id} ({record.kind}), read from {record_source_words(report.record_source)}")
            print(f"  made {record.created_at} with {record.model.get('name', '?')}, seed {record.seed}")
            if record.prompt:
                print(f"  prompt: {record.prompt[:200]}")
        if report.foreign is not None:
            print(
                f"parameters written by {report.foreign['tool']}"
                + (" (read by sd-parsers):" if report.foreign.get("reader") else ":")
            )
            print(f"  prompt: {report.foreign.get('prompt', '')[:200]}")
            for key, value in list(report.foreign.get("settings", {}).items())[:12]:
                print(f"  {key}: {value}")
        if report.expected_sha256:
            shown = "DIFFERS from its record" if report.hash_mismatch else "matches its record"
            print(f"file hash (sha256): {shown}")
        if report.content_matches is not None:
            shown = "matches its record" if report.content_matches else "DIFFERS from its record"
            print(f"decoded content (pixels, samples or text): {shown}")
        if report.credentials is not None:
            signer = f", signed by {report.credentials.signer}" if report.credentials.signer else ""
            print(f"content credentials (C2PA): {report.credentials.state}{signer}")
        if report.record is not None or report.stated_by_marking or report.ai_training != "not_stated":
            print(f"AI training: {training_words(report.ai_training)}")
        for problem in report.problems:
            print(f"problem: {problem}")
        for note in report.notes:
            print(f"note: {note}")
    return EXIT_OK if report.ok else EXIT_FAILED


def _out(args: argparse.Namespace, data: dict[str, Any], text: str) -> None:
    print(json.dumps(data) if args.json else text)


def main_cli(args: argparse.Namespace) -> int:
    """Run a command, turning failures into one line on stderr and an exit status."""
    try:
        return run_command(args)
    except InvalidRequest as exc:
        print(f"studio: invalid {exc.field}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except StudioError as exc:
        print(f"studio: error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return EXIT_CANCELLED
    except BrokenPipeError:  # the reader went away (``| head``): nothing left to say
        sys.stderr.close()
        return EXIT_OK
    except Exception as exc:
        log.exception("command failed")
        if args.debug:
            raise
        print(f"studio: unexpected error: {type(exc).__name__}: {exc} (run with --debug for details)", file=sys.stderr)
        return EXIT_FAILED
