"""Peak memory of ``pinsage train`` on a power-law graph, for the whole process tree.

The graph comes from :func:`pinsage.datasets.synthetic.powerlaw_bipartite` (``--items``, ``--users``,
``--draws``; DESIGN.md's scale graphs) and is written to a Parquet file (``user``, ``item``) under
``--workdir``; a config YAML keeps the library defaults except ``train.epochs = --epochs``,
``train.pairs_per_epoch = --pairs`` and any ``--set section.key=value`` (YAML values, e.g.
``--set train.hard_negative_method=table``). Then ``python -m pinsage.cli train`` runs under
``/usr/bin/time -v`` as a child process, and every ``--interval`` seconds (default 0.5) the script reads
``/proc/<pid>/smaps_rollup`` of the command and all its descendants (DataLoader workers included) and
sums their ``Rss`` and ``Pss`` (proportional set size: a page shared by n processes counts 1/n in each,
so the summed PSS counts shared pages once; the summed RSS counts them once per process).

Reported: the main process's peak RSS (``/usr/bin/time -v``, "Maximum resident set size": the largest
single process, the training process), the peaks of the sampled tree RSS and tree PSS, the wall time,
the run's phase timings (``run.json``) and a coarse PSS trace. ``--kill-above-gib`` ends the run
(SIGKILL to the tree) when the tree PSS passes that size, so that a measurement cannot exhaust a
shared machine; the result then says so.

Note: the hard-negative table is built only when the curriculum uses hard negatives, i.e. with
``train.epochs >= 2`` (epoch n adds n - 1 per pair) and ``train.hard_negatives_max > 0``.

    python benchmarks/memory.py --items 200000 --users 100000 --draws 4000000 --epochs 2 --pairs 5120 \\
        --set train.hard_negative_method=table --json /tmp/memory_200k.json

Prints a markdown table; writes JSON to ``--json`` (nothing is written into the repository unless a
path there is given). Needs numpy, pandas, pyarrow, pyyaml and Linux ``/proc``.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

GIB = 2**30


def tree_pids(root: int) -> list[int]:
    """``root`` and all its descendants (from ``/proc/*/stat`` parent links)."""
    children: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(d))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def rollup(pid: int) -> tuple[int, int]:
    """``(Rss, Pss)`` bytes of one process from ``/proc/<pid>/smaps_rollup`` (0, 0 if it is gone)."""
    rss = pss = 0
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Rss:"):
                    rss = int(line.split()[1]) * 1024
                elif line.startswith("Pss:"):
                    pss = int(line.split()[1]) * 1024
    except OSError:
        pass
    return rss, pss


def tree_memory(root: int) -> tuple[int, int, int]:
    """``(summed Rss, summed Pss, number of processes)`` of ``root``'s process tree."""
    pids = tree_pids(root)
    parts = [rollup(p) for p in pids]
    return sum(r for r, _ in parts), sum(p for _, p in parts), len(pids)


def write_inputs(workdir: Path, items: int, users: int, draws: int, seed: int, epochs: int, pairs: int,
                 settings: list[str]) -> tuple[Path, Path, int, dict]:
    """The graph Parquet file and the config YAML; returns ``(interactions, config, edges, config dict)``."""
    import pandas as pd
    import yaml

    from pinsage.datasets.synthetic import powerlaw_bipartite

    inter = workdir / f"powerlaw_{items}_{users}_{draws}_{seed}.parquet"
    if not inter.exists():
        u, i = powerlaw_bipartite(items, users, draws, seed=seed)
        pd.DataFrame({"user": u, "item": i}).to_parquet(inter, index=False)
        del u, i
    edges = int(pd.read_parquet(inter, columns=["user"]).shape[0])
    cfg: dict = {"train": {"epochs": epochs, "pairs_per_epoch": pairs}}
    for s in settings:
        key, _, value = s.partition("=")
        section, _, name = key.partition(".")
        if not name or not _:
            raise SystemExit(f"--set {s!r}: expected section.key=value")
        cfg.setdefault(section, {})[name] = yaml.safe_load(value)
    cfg_file = workdir / "config.yaml"
    cfg_file.write_text(yaml.safe_dump(cfg))
    return inter, cfg_file, edges, cfg


def parse_time_v(text: str) -> dict:
    """The fields of ``/usr/bin/time -v`` output that matter here."""
    out = {}
    m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", text)
    if m:
        out["max_rss_bytes"] = int(m.group(1)) * 1024
    m = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\S+)", text)
    if m:
        out["elapsed"] = m.group(1)
    m = re.search(r"Exit status: (\d+)", text)
    if m:
        out["exit_status"] = int(m.group(1))
    return out


def measure(cmd: list[str], interval: float, kill_above: float, timeout: float, log: Path) -> dict:
    """Run ``cmd`` under ``/usr/bin/time -v`` and sample its process tree until it ends."""
    time_file = log.with_suffix(".time.txt")
    full = ["/usr/bin/time", "-v", "-o", str(time_file), *cmd]
    t0 = time.perf_counter()
    with open(log, "w") as out:
        proc = subprocess.Popen(full, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    peak_rss = peak_pss = peak_procs = 0
    trace: list[tuple[float, int, int, int]] = []
    killed = None
    while proc.poll() is None:
        rss, pss, n = tree_memory(proc.pid)
        now = time.perf_counter() - t0
        trace.append((round(now, 1), rss, pss, n))
        peak_rss, peak_pss, peak_procs = max(peak_rss, rss), max(peak_pss, pss), max(peak_procs, n)
        if kill_above and pss > kill_above * GIB:
            killed = f"tree PSS {pss / GIB:.2f} GiB passed --kill-above-gib {kill_above}"
        elif timeout and now > timeout:
            killed = f"ran past --timeout {timeout} s"
        if killed:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            break
        time.sleep(interval)
    wall = time.perf_counter() - t0
    res = {"wall_s": wall, "returncode": proc.returncode, "killed": killed,
           "peak_tree_rss_bytes": peak_rss, "peak_tree_pss_bytes": peak_pss, "max_processes": peak_procs,
           "samples": len(trace)}
    if time_file.exists():
        res.update(parse_time_v(time_file.read_text()))
    step = max(1, len(trace) // 120)
    res["trace_gib"] = [(t, round(r / GIB, 3), round(p / GIB, 3), n) for t, r, p, n in trace[::step]]
    return res


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--items", type=int, default=200_000)
    p.add_argument("--users", type=int, default=100_000)
    p.add_argument("--draws", type=int, default=4_000_000)
    p.add_argument("--seed", type=int, default=0, help="graph seed")
    p.add_argument("--epochs", type=int, default=2, help="train.epochs (>= 2 for hard negatives)")
    p.add_argument("--pairs", type=int, default=5120, help="train.pairs_per_epoch")
    p.add_argument("--set", dest="settings", action="append", default=[], metavar="SECTION.KEY=VALUE")
    p.add_argument("--interval", type=float, default=0.5, help="seconds between samples")
    p.add_argument("--kill-above-gib", type=float, default=0.0, help="end the run past this tree PSS (0: never)")
    p.add_argument("--timeout", type=float, default=900.0, help="end the run after this many seconds (0: never)")
    p.add_argument("--workdir", default=None, help="inputs and the run directory (default: a temporary one)")
    p.add_argument("--json", default=None, help="write the result here")
    args = p.parse_args(argv)

    tmp = None
    if args.workdir is None:
        tmp = tempfile.TemporaryDirectory(prefix="pinsage_memory_")
        workdir = Path(tmp.name)
    else:
        workdir = Path(args.workdir)
        workdir.mkdir(parents=True, exist_ok=True)
    inter, cfg_file, edges, cfg = write_inputs(workdir, args.items, args.users, args.draws, args.seed,
                                               args.epochs, args.pairs, args.settings)
    out = workdir / "run"
    cmd = [sys.executable, "-m", "pinsage.cli", "train", "--interactions", str(inter), "--user-col", "user",
           "--item-col", "item", "--config", str(cfg_file), "--out", str(out), "--overwrite", "--quiet"]
    print("running: " + " ".join(cmd), flush=True)
    res = measure(cmd, args.interval, args.kill_above_gib, args.timeout, workdir / "train.log")
    res.update({"date": _dt.date.today().isoformat(), "items": args.items, "users": args.users,
                "draws": args.draws, "edges": edges, "config": cfg, "command": " ".join(cmd),
                "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "numpy": np.__version__}})
    if (out / "run.json").exists():
        res["timings"] = json.loads((out / "run.json").read_text()).get("timings")
    if res["returncode"] and not res["killed"]:
        res["log_tail"] = (workdir / "train.log").read_text()[-3000:]

    g = lambda b: f"{b / GIB:.2f}" if b else "-"  # noqa: E731
    print("\n| items | users | draws | edges | main max RSS (GiB) | tree RSS peak (GiB) | tree PSS peak (GiB) "
          "| processes | wall (s) | exit |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    print(f"| {args.items:,} | {args.users:,} | {args.draws:,} | {edges:,} | {g(res.get('max_rss_bytes', 0))} | "
          f"{g(res['peak_tree_rss_bytes'])} | {g(res['peak_tree_pss_bytes'])} | {res['max_processes']} | "
          f"{res['wall_s']:.0f} | {res['killed'] or res['returncode']} |")
    if res.get("timings"):
        print("phases (s): " + ", ".join(f"{k} {v:.1f}" for k, v in res["timings"].items()))
    if res.get("log_tail"):
        print(res["log_tail"])
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1))
    if tmp is not None:
        tmp.cleanup()
    return 0 if res["returncode"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
