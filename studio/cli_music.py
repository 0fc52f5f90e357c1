"""``studio gen music`` options for songs (lyrics, language, BPM, key, time signature, steps, shift)
and for editing a clip (``--init-audio`` with ``--repaint``, ``--extend``, ``--cover-strength``,
``--layer`` or ``--extract``)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from studio.core.requests import MusicRequest


def add_song_options(music: argparse.ArgumentParser) -> None:
    songs = music.add_argument_group("songs (ACE-Step models)")
    songs.add_argument("--lyrics", default="", metavar="TEXT_OR_FILE", help="lyrics to sing, or a text file of them")
    songs.add_argument("--language", default="", metavar="CODE", help="the lyrics' language (en, ja, zh…)")
    songs.add_argument("--bpm", type=int, default=MusicRequest.bpm, metavar="N", help="tempo (default: the model's)")
    songs.add_argument("--key", default="", metavar="KEY", help='key and scale, e.g. "D major"')
    songs.add_argument(
        "--time-signature", type=int, default=MusicRequest.time_signature, metavar="N", help="beats a bar (2, 3, 4, 6)"
    )
    songs.add_argument("--steps", type=int, default=MusicRequest.steps, metavar="N", help="default: the model's own")
    songs.add_argument("--shift", type=float, default=MusicRequest.shift, metavar="F", help="default: the model's own")
    edits = music.add_argument_group("editing a clip")
    edits.add_argument("--init-audio", default="", metavar="FILE", help="the clip to edit")
    what = edits.add_mutually_exclusive_group()
    what.add_argument("--repaint", type=_pair, metavar="START,END", help="repaint this region (seconds)")
    what.add_argument("--extend", type=_pair, metavar="LEFT,RIGHT", help="add these seconds before and after")
    what.add_argument("--cover-strength", type=float, metavar="F", help="restyle the clip, keeping this much (0–1)")
    what.add_argument("--layer", metavar="STEM", help="generate this stem for the clip (base checkpoints)")
    what.add_argument("--extract", metavar="STEM", help="extract this stem from the clip (base checkpoints)")


def song_fields(args: argparse.Namespace) -> dict[str, Any]:
    """The ``MusicRequest`` fields the song and editing options give."""
    lyrics = str(args.lyrics)
    if lyrics and "\n" not in lyrics and len(lyrics) < 4096 and Path(lyrics).is_file():
        lyrics = Path(lyrics).read_text(encoding="utf-8")
    fields: dict[str, Any] = {
        "lyrics": lyrics,
        "language": args.language,
        "bpm": args.bpm,
        "key": args.key,
        "time_signature": args.time_signature,
        "steps": args.steps,
        "shift": args.shift,
    }
    if args.init_audio:
        fields["init_audio"] = str(Path(args.init_audio).resolve())
    if args.repaint is not None:
        fields.update(edit="repaint", repaint_start=args.repaint[0], repaint_end=args.repaint[1])
    elif args.extend is not None:
        fields.update(edit="extend", extend_left=args.extend[0], extend_right=args.extend[1])
    elif args.cover_strength is not None:
        fields.update(edit="cover", cover_strength=args.cover_strength)
    elif args.layer:
        fields.update(edit="layer", track=args.layer)
    elif args.extract:
        fields.update(edit="extract", track=args.extract)
    return fields


def _pair(text: str) -> tuple[float, float]:
    parts = text.split(",")
    try:
        if len(parts) != 2:
            raise ValueError
        return float(parts[0]), float(parts[1])
    except ValueError:
        raise argparse.ArgumentTypeError(f"give two numbers of seconds, as A,B (got {text!r})") from None
