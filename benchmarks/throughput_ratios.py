"""benchmarks/train_throughput.py's ratios: the project over each HF configuration and over
HF's fastest, run by run, and their report.
"""

import json
import statistics

from benchmarks.hf_peer import HF_CONFIGS


def median_run(runs: list[dict]) -> dict:
    """Each measurement's median over the runs, and the runs' train examples/s and compile
    seconds (the first run's are cold where inductor's cache directory started empty)."""
    out = {k: statistics.median(r[k] for r in runs) if isinstance(v, float) else v
           for k, v in runs[0].items()}  # matmul_share: a float for the project, else None
    for k in ("train_examples_per_s", "compile_s", "predict_compile_s", "timed_graphs"):
        out[f"{k}_runs"] = [round(r[k], 1) for r in runs]
    return out


def hf_fastest(runs: dict[str, list[dict]]) -> list[dict]:
    """Per repeat, HF's fastest configuration among those measured: the best train and the
    best predict examples/s (each measure its own best), and which configurations they were."""
    names = [name for name in runs if name in HF_CONFIGS]
    fastest = []
    for repeat in zip(*(runs[name] for name in names)):
        best = {}
        for k in ("train_examples_per_s", "predict_examples_per_s"):
            i = max(range(len(names)), key=lambda j: repeat[j][k])
            best[k], best[k.replace("examples_per_s", "config")] = repeat[i][k], names[i]
        fastest.append(best)
    return fastest


def paired_ratios(runs: dict[str, list[dict]]) -> dict[str, list[float]]:
    """Project over each HF configuration and over HF's fastest, run by run: runs of one
    repeat are minutes apart, so their ratio is free of the machine's drift between
    repeats. The project's ceiling is compared with the other's train rate."""
    others = {**runs, "hf_fastest": hf_fastest(runs)}
    ratios = {}
    for mine_name in ("project", "project_compiled"):
        for other in HF_CONFIGS + ("hf_fastest", "project"):
            if mine_name == other or mine_name not in runs or not others.get(other):
                continue
            for k in ("train_examples_per_s", "predict_examples_per_s", "ceiling_examples_per_s"):
                base = "train_examples_per_s" if k.startswith("ceiling") else k
                if k in runs[mine_name][0]:
                    ratios[f"{k}_{mine_name}_over_{other}"] = [
                        mine[k] / theirs[base]
                        for mine, theirs in zip(runs[mine_name], others[other])]
    return ratios


def report(ratios: dict[str, list[float]], fastest: list[dict]) -> None:
    """The ratios, those against HF's fastest configuration first, and one JSON line."""
    if fastest:
        print("HF's fastest configuration per run: train "
              f"{[f['train_config'] for f in fastest]}, predict "
              f"{[f['predict_config'] for f in fastest]}")
    print("ratios, the median of the runs' own (the runs' in brackets):")
    for k in sorted(ratios, key=lambda k: not k.endswith("_over_hf_fastest")):
        print(f"{k}: {statistics.median(ratios[k]):.2f}x "
              f"({', '.join(f'{v:.2f}' for v in ratios[k])})")
    medians = {k: statistics.median(v) for k, v in ratios.items()}
    print(json.dumps({"hf_fastest_runs": fastest, "ratio_runs": ratios, "ratios": medians,
                      "ratios_over_hf_fastest": {k: v for k, v in medians.items()
                                                 if k.endswith("_over_hf_fastest")}},
                     sort_keys=True))
