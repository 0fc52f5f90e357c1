"""A 16-job image plan: the local worker vs a local Ray cluster (``--cluster local --workers 2``).

    python -m benchmarks.cluster [--jobs 16] [--size 128] [--workers 2] [--model PATH] [--gpu] [--json]

Both run the same plan (the pattern painter, distinct seeds) into fresh galleries through
``run_plan``, the code ``studio batch`` runs. Ray's start (the cluster and its actors' first
model load) is timed apart from the plan. On a 2-core CPU two actors cannot beat one worker; the
figure that matters is the overhead per job of the Ray path: (cluster plan − local plan) / jobs.

``--gpu`` (on a machine with GPUs): the same plan on a local cluster of 1, 2, … N GPU actors (one per
GPU, N = the GPUs Ray sees), each timed after every actor has loaded the model: jobs per second
and the speed-up over one actor, plus the overhead per job of one GPU actor against the local
worker on the same GPU. Without a GPU it says so and measures nothing more. ``--model`` takes any
image model (a diffusers folder for a GPU: ``--steps`` sets its steps).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

PATTERNS = Path(__file__).resolve().parents[1] / "resources" / "models" / "studio-starter-patterns"


_MODEL = {"path": PATTERNS, "steps": 0}


def _plan(folder: Path, jobs: int, size: int, name: str) -> Path:
    plan = folder / f"{name}.toml"
    seeds = ", ".join(str(n) for n in range(1, jobs + 1))
    steps = f"steps = {_MODEL['steps']}\n" if _MODEL["steps"] else ""
    plan.write_text(
        f'[[job]]\nkind = "image"\nmodel = "{_MODEL["path"]}"\nprompt = "a red fox in the snow"\n'
        f"width = {size}\nheight = {size}\n{steps}seeds = [{seeds}]\n"
    )
    return plan


def _gpu_scaling(folder: Path, jobs: int, size: int, local_s: float) -> dict[str, object]:
    """The plan on 1…N GPU actors of a local cluster (a fresh Ray start for each count)."""
    import ray

    from studio.core.paths import StudioPaths
    from studio.runtime.cluster import ClusterWorker
    from studio.runtime.services import open_services

    ray.init(_node_ip_address="127.0.0.1", include_dashboard=False, log_to_driver=False)
    gpus = int(ray.cluster_resources().get("GPU", 0))
    ray.shutdown()
    if not gpus:
        return {"cluster_gpu": "no GPU on this machine: nothing measured"}
    results: dict[str, object] = {"cluster_gpus": gpus}
    one_s = 0.0
    for count in range(1, gpus + 1):
        services = open_services(StudioPaths.under(folder / f"gpu-{count}").ensure())
        runner = ClusterWorker(services.store, address="local", workers=count, data_dir=str(folder / f"g{count}"))
        _run(runner, services, _plan(folder, count, size, f"gpu-warm-{count}"))  # each actor loads the model
        seconds = _run(runner, services, _plan(folder, jobs, size, f"gpu-{count}"))
        runner.shutdown()
        services.close()
        one_s = one_s or seconds
        results[f"cluster_gpu_{count}_actors_jobs_per_s"] = round(jobs / seconds, 2)
        results[f"cluster_gpu_{count}_actors_speedup"] = round(one_s / seconds, 3)
    results["cluster_gpu_overhead_per_job_ms"] = round((one_s - local_s) / jobs * 1000, 1)
    return results


def _run(runner, services, plan_file: Path) -> float:
    from studio.runtime.batch import load_plan, run_plan

    plan = load_plan(plan_file, default_model=lambda kind: "")
    started = time.perf_counter()
    outcome = run_plan(plan, runner, services.store, resume=False, on_item=lambda *a: None, on_failure=print)
    assert outcome.made == len(plan.jobs), outcome.failed
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=16)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--model", default=str(PATTERNS), help="an image model (default: the pattern painter)")
    parser.add_argument("--steps", type=int, default=0, help="steps for a diffusers model (default: its own)")
    parser.add_argument("--gpu", action="store_true", help="also: scaling with the number of GPU actors")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    _MODEL.update(path=args.model, steps=args.steps)
    from studio.core.paths import StudioPaths
    from studio.runtime.cluster import ClusterWorker
    from studio.runtime.services import open_services

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        local = open_services(StudioPaths.under(folder / "local").ensure())
        _run(local.worker, local, _plan(folder, 1, args.size, "warm"))  # the model loaded, as in a session
        local_s = _run(local.worker, local, _plan(folder, args.jobs, args.size, "local"))
        local.close()
        services = open_services(StudioPaths.under(folder / "cluster").ensure())
        started = time.perf_counter()
        runner = ClusterWorker(services.store, address="local", workers=args.workers, data_dir=str(folder / "c"))
        _run(runner, services, _plan(folder, args.workers, args.size, "warm"))  # every actor loads the model
        ray_start_s = time.perf_counter() - started
        cluster_s = _run(runner, services, _plan(folder, args.jobs, args.size, "cluster"))
        runner.shutdown()
        services.close()
        gpu = _gpu_scaling(folder, args.jobs, args.size, local_s) if args.gpu else {}
    results = {
        "cluster_jobs": args.jobs,
        "cluster_local_plan_s": round(local_s, 2),
        "cluster_ray_plan_s": round(cluster_s, 2),
        "cluster_ray_start_s": round(ray_start_s, 2),
        "cluster_overhead_per_job_ms": round((cluster_s - local_s) / args.jobs * 1000, 1),
        "cluster_speedup": round(local_s / cluster_s, 3),
        **gpu,
    }
    if args.json:
        print(json.dumps(results))
    else:
        for key, value in results.items():
            print(f"{key:<32} {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
