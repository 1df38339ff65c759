"""Small hand-written SVG charts for report.html: no matplotlib, no script, no fonts to
fetch. Every text placed in a chart is HTML-escaped here."""

import html
import math
from typing import Sequence

W, H, PAD = 420, 260, 40
COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2")


def esc(text) -> str:
    return html.escape(str(text), quote=True)


def _scale(values: Sequence[float]) -> tuple[float, float]:
    finite = [v for v in values if isinstance(v, (int, float)) and math.isfinite(v)]
    low, high = (min(finite), max(finite)) if finite else (0.0, 1.0)
    return (low - 0.5, high + 0.5) if high == low else (low, high)


def _frame(title: str, x_label: str, y_label: str, x_range, y_range) -> list[str]:
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" '
             f'viewBox="0 0 {W} {H}" role="img"><title>{esc(title)}</title>',
             f'<rect x="{PAD}" y="10" width="{W - PAD - 10}" height="{H - PAD - 10}" '
             'fill="#fafafa" stroke="#888"/>',
             f'<text x="{W / 2}" y="{H - 5}" text-anchor="middle" font-size="11">'
             f'{esc(x_label)}</text>',
             f'<text x="10" y="{H / 2}" font-size="11" transform="rotate(-90 10 {H / 2})" '
             f'text-anchor="middle">{esc(y_label)}</text>']
    for value, x in ((x_range[0], PAD), (x_range[1], W - 10)):
        parts.append(f'<text x="{x}" y="{H - PAD + 14}" font-size="10" '
                     f'text-anchor="middle">{value:.3g}</text>')
    for value, y in ((y_range[0], H - PAD), (y_range[1], 14)):
        parts.append(f'<text x="{PAD - 3}" y="{y}" font-size="10" '
                     f'text-anchor="end">{value:.3g}</text>')
    return parts


def _xy(x, y, x_range, y_range) -> tuple[float, float]:
    px = PAD + (x - x_range[0]) / (x_range[1] - x_range[0]) * (W - PAD - 10)
    py = H - PAD - (y - y_range[0]) / (y_range[1] - y_range[0]) * (H - PAD - 10)
    return round(px, 1), round(py, 1)


def line_chart(series: dict, title: str, x_label: str, y_label: str) -> str:
    """One polyline (with dots) per name -> [(x, y), ...]; a legend in the corner."""
    points = [p for pts in series.values() for p in pts]
    x_range, y_range = _scale([p[0] for p in points]), _scale([p[1] for p in points])
    parts = _frame(title, x_label, y_label, x_range, y_range)
    for i, (name, pts) in enumerate(series.items()):
        colour = COLOURS[i % len(COLOURS)]
        xy = [_xy(x, y, x_range, y_range) for x, y in pts if math.isfinite(y)]
        parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="'
                     + " ".join(f"{x},{y}" for x, y in xy) + '"/>')
        parts += [f'<circle cx="{x}" cy="{y}" r="3" fill="{colour}"/>' for x, y in xy]
        parts.append(f'<text x="{PAD + 8}" y="{26 + 13 * i}" font-size="11" '
                     f'fill="{colour}">{esc(name)}</text>')
    return "".join(parts) + "</svg>"


def reliability_chart(bins: list[dict], ece: float) -> str:
    """Accuracy per confidence bin (bars) against the diagonal of perfect calibration."""
    parts = _frame(f"Reliability (ECE {ece:.4f})", "confidence", "accuracy", (0, 1), (0, 1))
    for b in bins:
        if not b["count"]:
            continue
        x0, y0 = _xy(b["low"], b["accuracy"], (0, 1), (0, 1))
        x1, y1 = _xy(b["high"], 0, (0, 1), (0, 1))
        parts.append(f'<rect x="{x0}" y="{y0}" width="{round(x1 - x0, 1)}" '
                     f'height="{round(y1 - y0, 1)}" fill="#1f77b4" fill-opacity="0.7" '
                     f'stroke="#fff"><title>{b["low"]:.2f}-{b["high"]:.2f}: {b["count"]} '
                     f'rows, accuracy {b["accuracy"]:.3f}, confidence {b["confidence"]:.3f}'
                     '</title></rect>')
    (ax, ay), (bx, by) = _xy(0, 0, (0, 1), (0, 1)), _xy(1, 1, (0, 1), (0, 1))
    parts.append(f'<line x1="{ax}" y1="{ay}" x2="{bx}" y2="{by}" stroke="#d62728" '
                 'stroke-dasharray="4 3"/>')
    return "".join(parts) + "</svg>"


def scatter_chart(predicted: Sequence[float], true: Sequence[float]) -> str:
    """Predicted against true scores, with the diagonal y = x."""
    both = list(predicted) + list(true)
    span = _scale(both)
    parts = _frame("Predicted vs true", "true", "predicted", span, span)
    for p, t in zip(predicted, true):
        x, y = _xy(t, p, span, span)
        parts.append(f'<circle cx="{x}" cy="{y}" r="2.5" fill="#1f77b4" fill-opacity="0.6"/>')
    (ax, ay), (bx, by) = _xy(span[0], span[0], span, span), _xy(span[1], span[1], span, span)
    parts.append(f'<line x1="{ax}" y1="{ay}" x2="{bx}" y2="{by}" stroke="#d62728" '
                 'stroke-dasharray="4 3"/>')
    return "".join(parts) + "</svg>"
