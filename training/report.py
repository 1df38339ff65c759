"""report.html: one evaluation as a page a person can read.

One self-contained file: inline CSS, charts as inline SVG (training/svg.py), no script,
nothing fetched (a Content-Security-Policy forbids it too). Every text that comes from the
data (texts, label names, flag values) is HTML-escaped. Written atomically.

Sections (each an <h2 id=...>): summary, notes (warnings), results, curves; then by
problem type: classification (confusion, per-class, reliability, mistakes), regression
(scatter, errors), multi-label (per-label, reliability, mistakes). With windows the
mistakes are per document, with each document's window count.
"""

import os
from dataclasses import dataclass, field
from typing import Optional, Sequence

import numpy as np

from modeling.disk import atomic_write_text
from modeling.heads import MULTI_LABEL, REGRESSION
from processors import metrics

from . import plot, svg
from .calibration import expected_calibration_error, probabilities, reliability
from .evaluation import decide

REPORT_FILE = "report.html"
TEXT_CHARS = 400  # a text longer than this is cut in the tables (with an ellipsis)
CSS = ("body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;color:#222}"
       "table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;"
       "padding:3px 8px;text-align:left;vertical-align:top}th{background:#eee}"
       "td.n{text-align:right;font-variant-numeric:tabular-nums}.warn{background:#fff3cd;"
       "padding:.5em 1em;border-left:4px solid #e0a800}h2{border-bottom:1px solid #ddd}"
       "td.t{max-width:600px;white-space:pre-wrap;word-break:break-word}")
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"


@dataclass
class ReportInputs:
    """What one evaluation's page shows (all plain values)."""

    summary: dict  # label -> value, shown in order
    results: dict  # eval_results' keys and values
    problem_type: str
    label_list: Optional[Sequence[str]]
    logits: np.ndarray  # dev, one row per document (calibrated when calibrated)
    labels: np.ndarray
    texts: Sequence[str]  # dev texts, one per row
    threshold: object = 0.5  # as evaluation.decide takes it
    stats: list = field(default_factory=list)  # per-epoch rows (training_stats.json)
    warnings: list = field(default_factory=list)
    windows: Optional[Sequence[int]] = None  # windows per document (--long_text=windows)
    top: int = 20  # mistakes shown


esc = svg.esc


def _cut(text: str) -> str:
    return text if len(text) <= TEXT_CHARS else text[:TEXT_CHARS] + "\u2026"


def table(header: Sequence[str], rows: Sequence[Sequence], text_column: int = -1) -> str:
    """An HTML table, every cell escaped; numbers right-aligned, 4 decimals for floats."""
    def cell(i, v):
        if isinstance(v, (float, np.floating)):
            return f'<td class="n">{float(v):.4f}</td>'
        if isinstance(v, (int, np.integer)):
            return f'<td class="n">{int(v)}</td>'
        return f'<td class="t">{esc(_cut(str(v)))}</td>' if i == text_column else \
            f"<td>{esc(v)}</td>"
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(cell(i, v) for i, v in enumerate(r)) + "</tr>" for r in rows)
    return f"<table>{f'<tr>{head}</tr>' if head else ''}{body}</table>"


def _section(ident: str, title: str, body: str) -> str:
    return f'<section><h2 id="{ident}">{esc(title)}</h2>{body}</section>'


def _curves(stats: list) -> str:
    if not stats:
        return "<p>No training in this run (evaluation only).</p>"
    return "".join(plot.curve_charts(stats)) or "<p>No numeric per-epoch values.</p>"


def _names(r: ReportInputs) -> list[str]:
    return [str(n) for n in r.label_list] if r.label_list else []


def _row_label(r: ReportInputs, i: int) -> list:
    """The mistakes table's first cells: the dev row (document) and its window count."""
    return [i] + ([int(r.windows[i])] if r.windows is not None else [])


def _mistake_header(r: ReportInputs) -> list[str]:
    return ["dev row" if r.windows is None else "document"] + (
        ["windows"] if r.windows is not None else [])


def _classification(r: ReportInputs) -> str:
    names, probs = _names(r), probabilities(r.logits, r.problem_type)
    labels = np.asarray(r.labels).astype(np.int64)
    predicted = decide(r.logits, r.problem_type, r.threshold)
    ids = list(range(len(names)))
    matrix = metrics.confusion(labels, predicted, len(names))
    confusion = table(["true \\ predicted"] + names,
                      [[names[i]] + [int(v) for v in row] for i, row in enumerate(matrix)])
    p, rec, f1, support = metrics.per_class(matrix)
    per_class = table(["label", "precision", "recall", "F1", "support"],
                      [[names[i], p[i], rec[i], f1[i], int(support[i])] for i in ids])
    wrong = np.flatnonzero(predicted != labels)
    confidence = probs[np.arange(len(probs)), predicted] if len(probs) else probs
    worst = wrong[np.argsort(-confidence[wrong], kind="stable")][:r.top]
    mistakes = table(_mistake_header(r) + ["text", "true", "predicted", "probability"],
                     [_row_label(r, i) + [r.texts[i], names[labels[i]], names[predicted[i]],
                                          float(confidence[i])] for i in worst],
                     text_column=len(_mistake_header(r)))
    return (_section("confusion", "Confusion matrix", confusion)
            + _section("per-class", "Per-class precision, recall, F1", per_class)
            + _reliability(r) + _section("mistakes", _mistakes_title(r, len(wrong)), mistakes))


def _mistakes_title(r: ReportInputs, n: int) -> str:
    what = "documents" if r.windows is not None else "dev rows"
    return f"The {min(n, r.top)} most confident mistakes ({n} wrong {what} in all)"


def _reliability(r: ReportInputs) -> str:
    ece = r.results.get("ece")  # (finish_eval's, on these logits)
    if ece is None:
        ece = expected_calibration_error(r.logits, r.labels, r.problem_type)
    chart = svg.reliability_chart(reliability(r.logits, r.labels, r.problem_type), ece)
    return _section("reliability", "Reliability diagram", chart + f"<p>ECE {ece:.4f} "
                    "(15 equal-width confidence bins; 0 is perfectly calibrated).</p>")


def _multi_label(r: ReportInputs) -> str:
    names, probs = _names(r), probabilities(r.logits, r.problem_type)
    labels = np.asarray(r.labels).astype(np.int64)
    predicted = decide(r.logits, r.problem_type, r.threshold)
    p, rec, f1, support = metrics.label_counts(labels, predicted)
    limits = np.broadcast_to(np.asarray(r.threshold, dtype=np.float64), (len(names),))
    per_label = table(["label", "threshold", "precision", "recall", "F1", "support"],
                      [[n, float(limits[j]), p[j], rec[j], f1[j], int(support[j])]
                       for j, n in enumerate(names)])
    wrong = np.flatnonzero((predicted != labels).any(-1))
    sure = np.where(predicted != labels, np.maximum(probs, 1 - probs), 0).max(-1)
    worst = wrong[np.argsort(-sure[wrong], kind="stable")][:r.top]

    def joined(row):
        return "|".join(names[j] for j in np.flatnonzero(row)) or "(none)"
    mistakes = table(_mistake_header(r) + ["text", "true", "predicted", "probability"],
                     [_row_label(r, i) + [r.texts[i], joined(labels[i]), joined(predicted[i]),
                                          float(sure[i])] for i in worst],
                     text_column=len(_mistake_header(r)))
    return (_section("per-label", "Per-label thresholds, precision, recall, F1", per_label)
            + _reliability(r) + _section("mistakes", _mistakes_title(r, len(wrong)), mistakes))


def _regression(r: ReportInputs) -> str:
    predicted, true = np.asarray(r.logits)[:, 0], np.asarray(r.labels, dtype=np.float64)
    errors = np.abs(predicted - true)
    worst = np.argsort(-errors, kind="stable")[:r.top]
    rows = [_row_label(r, i) + [r.texts[i], float(true[i]), float(predicted[i]),
                                float(errors[i])] for i in worst]
    return (_section("scatter", "Predicted vs true", svg.scatter_chart(predicted, true))
            + _section("errors", f"The {len(worst)} largest errors", table(
                _mistake_header(r) + ["text", "true", "predicted", "error"], rows,
                text_column=len(_mistake_header(r)))))


def render(r: ReportInputs) -> str:
    """The page's HTML."""
    notes = "".join(f'<p class="warn">{esc(w)}</p>' for w in r.warnings) or "<p>None.</p>"
    results = table(["key", "value"], [[k, v] for k, v in sorted(r.results.items())])
    body = {REGRESSION: _regression, MULTI_LABEL: _multi_label}.get(
        r.problem_type, _classification)(r)
    title = f"Evaluation report: {r.summary.get('task', '')}"
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
            f"<title>{esc(title)}</title><style>{CSS}</style></head><body>"
            f"<h1>{esc(title)}</h1>"
            + _section("summary", "Run summary", table([], list(r.summary.items())))
            + _section("notes", "Warnings", notes)
            + _section("results", "Dev results", results)
            + _section("curves", "Learning curves", _curves(r.stats))
            + body + "</body></html>\n")


def write_report(output_dir: str, inputs: ReportInputs) -> str:
    """Writes output_dir/report.html; returns its path."""
    path = os.path.join(output_dir, REPORT_FILE)
    atomic_write_text(path, render(inputs))
    return path
