"""The command line's editing options: ``studio gen image … --mask / --outpaint / --hires-fix`` and
``studio upscale FILE_OR_ID``. Kept apart from ``studio.cli`` so that module only calls in here."""

from __future__ import annotations

import argparse
import json
import queue
import sys
from pathlib import Path
from typing import Any

from studio.core.edits import MASK_FILLS
from studio.core.errors import InvalidRequest, StudioError
from studio.core.events import JobEvent
from studio.core.requests import ImageRequest, UpscaleRequest


def add_image_edit_options(image: argparse.ArgumentParser) -> None:
    """Inpaint, outpaint and hires-fix options of ``studio gen image``."""
    image.add_argument(
        "--mask", default="", metavar="MASK_PNG", help="repaint where the mask is white (with --init-image)"
    )
    image.add_argument(
        "--mask-blur", type=int, default=ImageRequest.mask_blur, metavar="PX", help="feather the mask's edge"
    )
    image.add_argument(
        "--only-masked", action="store_true", help="repaint a crop around the mask at full resolution, paste it back"
    )
    image.add_argument(
        "--only-masked-padding", type=int, default=ImageRequest.only_masked_padding, metavar="PX",
        help="pixels of context around the mask for --only-masked",
    )  # fmt: skip
    image.add_argument(
        "--mask-fill", choices=MASK_FILLS, default=ImageRequest.mask_fill, help="what fills the mask before repainting"
    )
    image.add_argument(
        "--outpaint", default="", metavar="L,T,R,B", help="extend --init-image by these pixels left, top, right, bottom"
    )
    image.add_argument("--hires-fix", type=float, default=1.0, metavar="SCALE", help="generate, upscale, repaint")
    image.add_argument("--hires-strength", type=float, default=ImageRequest.hires_strength, metavar="F")
    image.add_argument(
        "--upscaler", default="", metavar="NAME_OR_PATH", help="the hires fix's upscaler model (default: Lanczos)"
    )


def edit_fields(args: argparse.Namespace, catalog: Any = None) -> dict[str, Any]:
    """The ``ImageRequest`` fields the editing options give."""
    return {
        "mask": str(Path(args.mask).resolve()) if args.mask else "",
        "mask_blur": args.mask_blur,
        "only_masked": args.only_masked,
        "only_masked_padding": args.only_masked_padding,
        "mask_fill": args.mask_fill,
        "outpaint": parse_outpaint(args.outpaint),
        "hires_scale": args.hires_fix,
        "hires_strength": args.hires_strength,
        "upscaler": upscaler_file(args.upscaler, catalog),
    }


def parse_outpaint(text: str) -> tuple[int, int, int, int]:
    if not text:
        return (0, 0, 0, 0)
    parts = [p.strip() for p in text.split(",")]
    try:
        values = tuple(int(p) for p in parts)
    except ValueError:
        values = ()
    if len(values) != 4:
        raise InvalidRequest(
            "outpaint", f"--outpaint takes LEFT,TOP,RIGHT,BOTTOM in pixels (e.g. 0,0,256,0), not {text!r}"
        )
    return values


def upscaler_file(ref: str, catalog: Any) -> str:
    """An upscaler given by path, or by id or name from the library, as the file the engines load."""
    if not ref:
        return ""
    if Path(ref).expanduser().exists():
        return str(Path(ref).expanduser().resolve())
    if catalog is None:
        raise InvalidRequest("upscaler", f"no upscaler file {ref}")
    spec = catalog.resolve(ref)
    if spec.kind != "upscaler":
        raise InvalidRequest("upscaler", f"{spec.name} is a {spec.kind or 'unknown'} model, not an upscaler")
    if spec.format == "lanczos":
        return ""
    return str(spec.path)


def add_upscale_command(commands: Any, sub: Any) -> None:
    upscale = sub(commands, "upscale", "make an image larger (a new gallery item whose parent is the source)")
    upscale.add_argument("item", metavar="FILE_OR_ID", help="a gallery item id or an image file")
    upscale.add_argument(
        "--model",
        default="",
        metavar="NAME_OR_PATH",
        help="an upscaler model (default: your first upscaler, else Lanczos), or the pattern painter (its own images)",
    )
    upscale.add_argument("--scale", type=float, default=None, metavar="N", help="default: the model's own scale, or 2")
    upscale.add_argument("--tile", type=int, default=0, metavar="PX", help="tile side (default: fits free memory)")


def run_upscale(args: argparse.Namespace, services: Any) -> int:
    from studio.cli import EXIT_OK, _Progress, default_model, follow_job, job_failed
    from studio.runtime.services import make_catalog

    catalog = make_catalog(services.settings)
    source, record = _source(args.item, services.store)
    model = args.model or default_model(catalog.discover(), "upscaler")
    if not model:
        raise StudioError("no upscaler found, not even the bundled Lanczos: reinstall Studio or add an upscaler model")
    spec = catalog.resolve(model)
    prompt, seed = "", None
    if spec.kind == "image":  # an image model re-renders its own picture (the pattern painter)
        request_data = (record.request if record is not None else {}) or {}
        prompt, seed = str(request_data.get("prompt", "")), request_data.get("seed")
    scale = args.scale if args.scale is not None else float(spec.details.get("scale") or 2)
    request = UpscaleRequest(
        prompt=prompt, model=str(spec.path), seed=seed, init_image=str(source), scale=scale, tile=args.tile
    )
    events: queue.Queue[JobEvent] = queue.Queue()
    services.worker.subscribe(events.put)
    job_id = services.worker.submit(request, parent=record.id if record is not None else None)
    event = follow_job(events, services.worker, job_id, _Progress(sys.stderr, enabled=not args.json))
    failed = job_failed(event, debug=args.debug)
    if failed is not None:
        return failed
    assert event is not None
    for item in event.result:
        print(json.dumps(item.to_dict(), ensure_ascii=False) if args.json else item.path, flush=True)
    return EXIT_OK


def _source(ref: str, store: Any) -> tuple[Path, Any]:
    """The image to upscale and its gallery record (None for a file from elsewhere)."""
    item = store.get(ref)
    if item is not None:
        return Path(item.path), item.record
    path = Path(ref).expanduser()
    if not path.is_file():
        raise InvalidRequest("item", f"no gallery item or file {ref} ('studio gallery list' shows the ids)")
    from studio.gallery.verify import verify_file

    try:
        verified = verify_file(path, store.credentials)
    except Exception:  # a photo from elsewhere: no record, nothing to verify
        verified = None
    record = getattr(verified, "record", None)
    if record is not None and store.get(record.id) is None:
        record = None  # a record of an item this gallery does not hold: the file is the source, not an item
    return path.resolve(), record
