"""The report's timing tables, from the benchmark records launch/benchmark*.py write
(results/benchmark-*.json)."""

from __future__ import annotations

import glob
import json
import os


def _read(results_dir: str, name: str):
    """The benchmark record results_dir/name, or None."""
    path = os.path.join(results_dir, name)
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def _read_all(results_dir: str, pattern: str):
    """The benchmark records results_dir/<pattern>, in name order."""
    for path in sorted(glob.glob(os.path.join(results_dir, pattern))):
        with open(path) as f:
            yield json.load(f)


def _written_by(bench) -> str:
    """"`<command>`, load average <1, 5, 15 min>": how a benchmark's numbers were measured."""
    machine = bench["machine"]
    cpu = ""
    if "cpu_model" in machine:
        features = ", ".join(machine.get("bfloat16_features") or []) or "none"
        cpu = f", CPU {machine['cpu_model']} (bfloat16 features: {features})"
    return f"`{bench['command']}`, load average {machine.get('load_average_1_5_15min', '?')}{cpu}"


def updates_benchmark_tables(results_dir: str) -> str:
    """Seconds per training update by method and precision (launch/benchmark_updates.py), with
    the time 10,000 updates take at that rate (training alone, no evaluation)."""
    blocks = []
    for bench in _read_all(results_dir, "benchmark-updates-*.json"):
        lines = ["", f"Seconds per training update, {bench['task']} ({_written_by(bench)}):", "",
                 "| method | precision | XLA | s/update (batch) | train / adversarial steps | "
                 "10,000 updates, min | ÷ float32 |",
                 "|---|---|---|---|---|---|---|"]
        for row in bench["rows"]:
            speedup = row.get("speedup_vs_float32")
            lines.append(
                f"| {row['method']} | {row['policy']} | {'yes' if row.get('jit_compile') else 'no'} | "
                f"{row['seconds_per_update']:.3f} ({row['batch_size']}) | "
                f"{row['train_refine_steps']} / {row['adversarial_steps']} | "
                f"{row['seconds_per_update'] * 10000 / 60:.0f} | "
                f"{'–' if speedup is None else f'{speedup:.2f}×'} |")
        blocks.append("\n".join(lines))
    return "\n".join(blocks)


def benchmark_table(results_dir: str) -> str:
    bench = _read(results_dir, "benchmark-bibtex.json")
    if bench is None:
        return ""
    lines = ["", f"Refinement on Bibtex shapes (20 steps; {_written_by(bench)}):", "",
             "| batch | compiled ms/example | XLA ms/example | eager loop ms/example | compiled ÷ eager |",
             "|---|---|---|---|---|"]
    for row in bench["refinement"]:
        lines.append(f"| {row['batch_size']} | {row['compiled_ms_per_example']:.4f} | "
                     f"{row['compiled_xla_ms_per_example']:.4f} | {row['eager_loop_ms_per_example']:.4f} | "
                     f"{row['compiled_speedup_over_eager']:.1f}× |")
    lines += ["", "| method | train ms/step (batch 20) | projected Bibtex schedule, s |", "|---|---|---|"]
    for row in bench["train_step"]:
        lines.append(f"| {row['method']} | {row['ms_per_step']:.1f} | {row['projected_train_seconds']:.0f} |")
    return "\n".join(lines)


def segmentation_benchmark_tables(results_dir: str) -> str:
    """One table per launch/benchmark_segmentation.py output (benchmark-<task>.json)."""
    blocks = []
    for bench in _read_all(results_dir, "benchmark-*.json"):
        rows = bench.get("refinement", [])
        if not rows or "crops_per_image" not in rows[0]:
            continue  # the Bibtex benchmark has its own table
        eager = "eager_loop_ms_per_image" in rows[0]
        lines = ["", f"Test-time refinement, {bench['benchmark']} ({_written_by(bench)}):", "",
                 "| method | crops | images | steps × η | compiled ms/image | XLA ms/image"
                 + (" | eager loop ms/image | compiled ÷ eager |" if eager else " |"),
                 "|---|---|---|---|---|---" + ("|---|---|" if eager else "|")]
        for row in rows:
            line = (f"| {row['method']} ({row['crop_mode']}) | {row['crops_per_image']} × {row['crop_size']}² | "
                    f"{row['images']} | {row['steps']} × {row['step_size']:g} | "
                    f"{row['compiled_ms_per_image']:.2f} | {row['compiled_xla_ms_per_image']:.2f} |")
            if eager:
                line += f" {row['eager_loop_ms_per_image']:.2f} | {row['compiled_speedup_over_eager']:.1f}× |"
            lines.append(line)
        blocks.append("\n".join(lines))
    return "\n".join(blocks)


def epoch_benchmark_table(results_dir: str) -> str:
    """Seconds per training epoch and per inference pass (launch/benchmark_epoch.py)."""
    bench = _read(results_dir, "benchmark-bibtex-epoch.json")
    if bench is None:
        return ""
    lines = ["", f"Seconds per Bibtex epoch, one run on one machine ({_written_by(bench)}); the paper's "
                 "seconds are on its own hardware, compare the ratios:", "",
             "| method | train s/epoch | ÷ DVN | inference s (test split) | ÷ DVN | inference net alone s | "
             "paper train s/epoch | paper inference s |",
             "|---|---|---|---|---|---|---|---|"]
    for row in bench["rows"]:
        paper = row.get("paper") or {}
        alone = row.get("inference_seconds_test_split_inference_net_alone")
        lines.append(
            f"| {row['method']} | {row['train_seconds_per_epoch']:.1f} | {row.get('train_ratio_to_dvn', float('nan')):.2f} | "
            f"{row['inference_seconds_test_split']:.2f} | {row.get('inference_ratio_to_dvn', float('nan')):.2f} | "
            f"{'–' if alone is None else f'{alone:.2f}'} | {paper.get('train_s_per_epoch', '–')} | "
            f"{paper.get('inference_s', '–')} |")
    return "\n".join(lines)
