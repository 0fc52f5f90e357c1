"""Entry point: parse arguments, then run a headless command or open the window."""

from __future__ import annotations

import sys

from studio.cli import build_parser, main_cli


def main(argv: list[str] | None = None) -> int:
    raw = sys.argv[1:] if argv is None else argv
    if raw[:1] == ["--download-child"]:  # the installed app runs its download child through itself
        from studio.runtime.download_child import main as download_main

        return download_main(raw[1:])
    args = build_parser().parse_args(argv)
    if args.command is None:
        from studio.ui.quiet import quiet_qt_logging

        quiet_qt_logging(args.debug)  # before Qt is loaded: its multimedia chatter only with --debug
        from studio.ui.launch import run_gui

        return run_gui(args.data_dir, debug=args.debug)
    return main_cli(args)


if __name__ == "__main__":
    sys.exit(main())
