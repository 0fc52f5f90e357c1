"""How every benchmark module reports: ``key value`` lines, or with ``--json`` one JSON object on
the last line of stdout (the lines then go to stderr) — the form the harness reads."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable


def run_main(build_parser: Callable, measure: Callable, argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    result = measure(args)
    for key, value in result.items():
        print(f"{key:<32} {value}", file=sys.stderr if args.json else sys.stdout)
    if args.json:
        print(json.dumps(result))
    return 0
