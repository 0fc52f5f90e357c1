"""What another process waking up costs a bare ``generate()`` on this machine.

The window's GUI thread (and the X server after it) wakes to drain events, lay out text and paint.
On a machine with as many cores as torch has threads, each wake takes a core from one of torch's
threads, and a thread descheduled inside a parallel region stalls the others at its barrier: the
cost is set by how often something wakes more than by how long it works. This measures it without
any window: ``generate()`` on the starter text model alone, then with a second process that wakes
``--rate`` times a second and works ``--work-ms`` each time, in alternating pairs.

    python -m benchmarks.wakeup_cost --rate 30 --work-ms 1
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STARTER_TEXT = ROOT / "resources" / "models" / "studio-starter-text"

_DISTURBER = """
import time
work, rest = {work}, {rest}
while True:
    start = time.perf_counter()
    while time.perf_counter() - start < work:
        pass
    time.sleep(rest)
"""


def measure(args: argparse.Namespace) -> dict:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    import studio.engines  # noqa: F401 - offline, quiet Hugging Face settings first

    model = AutoModelForCausalLM.from_pretrained(STARTER_TEXT, local_files_only=True, dtype=torch.float32).eval()
    model.generation_config.eos_token_id = None  # exactly --tokens each time
    tokenizer = AutoTokenizer.from_pretrained(STARTER_TEXT, local_files_only=True)
    inputs = tokenizer("And the light shone upon the hills, and the", return_tensors="pt")

    def rate(seed: int) -> tuple[float, float]:
        torch.manual_seed(seed)
        start, cpu = time.perf_counter(), time.thread_time()
        with torch.inference_mode():
            model.generate(
                **inputs,
                max_new_tokens=args.tokens,
                min_new_tokens=args.tokens,
                do_sample=True,
                top_k=50,
                pad_token_id=tokenizer.pad_token_id,
            )
        return args.tokens / (time.perf_counter() - start), (time.thread_time() - cpu) / args.tokens

    period = 1.0 / args.rate
    work = args.work_ms / 1000
    code = _DISTURBER.format(work=work, rest=max(0.0, period - work))
    rate(0)
    alone: list[tuple[float, float]] = []
    disturbed: list[tuple[float, float]] = []
    for round_index in range(args.rounds):
        seed = 100 + round_index
        if round_index % 2:  # the order alternates, so a drifting machine favours neither side
            alone.append(rate(seed))
        other = subprocess.Popen([sys.executable, "-c", code])
        time.sleep(0.05)
        disturbed.append(rate(seed))
        other.kill()
        other.wait()
        if not round_index % 2:
            alone.append(rate(seed))
    pairs = list(zip(alone, disturbed, strict=True))
    return {
        "wakeup_rate_per_s": args.rate,
        "wakeup_work_ms": args.work_ms,
        "wakeup_share_of_a_core": round(args.rate * work, 4),
        "wakeup_generate_ratio": round(statistics.median(d[0] / a[0] for a, d in pairs), 4),
        "wakeup_thread_cpu_per_token_ratio": round(statistics.median(d[1] / a[1] for a, d in pairs), 4),
        "tokens": args.tokens,
        "rounds": args.rounds,
        "torch_threads": torch.get_num_threads(),
    }


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=30.0, help="wake-ups a second of the other process")
    parser.add_argument("--work-ms", type=float, default=1.0, help="milliseconds of work at each wake-up")
    parser.add_argument("--tokens", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=16)
    parser.add_argument("--json", action="store_true")
    return parser


def main(argv: list[str] | None = None) -> int:
    from benchmarks.report import run_main

    return run_main(build_parser, measure, argv)


if __name__ == "__main__":
    sys.exit(main())
