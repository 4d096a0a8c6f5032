"""A monitoring report as text: JSON, Markdown (the step summary, `--format markdown`) and a self-contained
HTML page with one inline SVG plot per drifted feature, reference against current."""

from __future__ import annotations

import html
import io
import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from mlkit.monitoring.sketch import CategoricalSketch, NumericSketch

if TYPE_CHECKING:
    from mlkit.monitoring.assess import FeatureDrift
    from mlkit.monitoring.monitor import MonitorReport
    from mlkit.monitoring.profile import FeatureProfile, ReferenceProfile

FEATURE_COLUMNS = ("feature", "kind", "test", "value", "threshold", "drifted", "missing", "note")
MAX_PLOTS = 24
_TOP_BARS = 15
_DENSITY_BINS = 25


def json_text(report: MonitorReport) -> str:
    return json.dumps(report.to_dict(), indent=2, default=str) + "\n"


def headline(report: MonitorReport) -> str:
    a = report.assessment
    verdict = "CROSSED the monitoring policy" if report.crossed else "within the monitoring policy"
    return (
        f"{report.model} version {report.version}{f' ({report.stage})' if report.stage else ''}: "
        f"{len(a.drifted)} of {len(a.features)} features drifted, {report.current_rows:,} rows vs "
        f"{report.reference_rows:,} in training: {verdict}"
    )


def feature_rows(report: MonitorReport) -> list[tuple[str, ...]]:
    """One row per feature (and the prediction and target when compared), for the table and Markdown."""
    a = report.assessment
    rows = [_row(f) for f in a.features]
    if a.prediction is not None:
        rows.append(_row(a.prediction, "(prediction)"))
    if a.target is not None:
        rows.append(_row(a.target, "(labels)"))
    return rows


def finding_rows(report: MonitorReport) -> list[tuple[str, ...]]:
    return [(f.kind, f.feature, f.detail, "yes" if f.crosses else "no") for f in report.assessment.findings]


def metric_rows(report: MonitorReport) -> list[tuple[str, ...]]:
    return [
        (
            m.name,
            _fmt(m.current),
            _fmt(m.training),
            m.floor or "-",
            "-" if m.passed is None else ("yes" if m.passed else "NO"),
        )
        for m in report.assessment.metrics
    ]


def markdown(report: MonitorReport, table: Any) -> str:
    """The report as Markdown; ``table(columns, rows)`` renders a Markdown table."""
    a = report.assessment
    text = f"### mlkit monitor {report.target}\n\n{headline(report)}\n\nSource: {report.source}\n\n"
    if a.reasons:
        text += "Policy crossed:\n" + "".join(f"- {reason}\n" for reason in a.reasons) + "\n"
    text += table(FEATURE_COLUMNS, feature_rows(report))
    if a.findings:
        text += "\nData quality and schema:\n\n" + table(
            ("finding", "feature", "detail", "crosses"), finding_rows(report)
        )
    if a.metrics:
        text += f"\nPerformance on {report.labelled_rows:,} labelled rows:\n\n" + table(
            ("metric", "current", "training", "floor", "passed"), metric_rows(report)
        )
    if report.monitoring_run_id:
        text += f"\nMonitoring run: {report.monitoring_run_id}\n"
    return text


def html_report(
    report: MonitorReport,
    profile: ReferenceProfile,
    sketches: Mapping[str, NumericSketch | CategoricalSketch],
    prediction: NumericSketch | CategoricalSketch | None,
) -> str:
    """One self-contained page: the verdict, the tables, and a plot per drifted feature."""
    a = report.assessment
    plotted: list[tuple[FeatureDrift, FeatureProfile, NumericSketch | CategoricalSketch]] = []
    for feature in a.drifted[:MAX_PLOTS]:
        reference = profile.feature(feature.name)
        if reference is not None and feature.name in sketches:
            plotted.append((feature, reference, sketches[feature.name]))
    if a.prediction is not None and a.prediction.drifted and profile.prediction is not None and prediction:
        plotted.append((a.prediction, profile.prediction, prediction))
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>mlkit monitor {_e(report.target)}</title>",
        "<style>body{font-family:system-ui,sans-serif;margin:2em;max-width:1100px}"
        "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px;"
        "font-size:90%;text-align:left}.bad{color:#b00020;font-weight:bold}.ok{color:#1b5e20}"
        "figure{display:inline-block;margin:0.5em}</style></head><body>",
        f"<h1>mlkit monitor {_e(report.target)}</h1>",
        f"<p class='{'bad' if report.crossed else 'ok'}'>{_e(headline(report))}</p>",
        f"<p>Source: {_e(report.source)}. Reference profile sha256 {_e(report.profile_sha256[:16])}, "
        f"training run {_e(report.training_run_id)}.</p>",
    ]
    if a.reasons:
        parts.append("<h2>Policy crossed</h2><ul>" + "".join(f"<li>{_e(r)}</li>" for r in a.reasons) + "</ul>")
    parts.append("<h2>Drift per feature</h2>" + _html_table(FEATURE_COLUMNS, feature_rows(report)))
    if a.findings:
        parts.append(
            "<h2>Data quality and schema</h2>"
            + _html_table(("finding", "feature", "detail", "crosses"), finding_rows(report))
        )
    if a.metrics:
        parts.append(
            f"<h2>Performance on {report.labelled_rows:,} labelled rows</h2>"
            + _html_table(("metric", "current", "training", "floor", "passed"), metric_rows(report))
        )
    if plotted:
        parts.append("<h2>Drifted: reference against current</h2>")
        parts += [f"<figure>{_plot(feature, reference, sketch)}</figure>" for feature, reference, sketch in plotted]
    parts.append("</body></html>\n")
    return "\n".join(parts)


def _row(f: FeatureDrift, name: str | None = None) -> tuple[str, ...]:
    note = ""
    if f.kind == "numeric" and f.reference_mean is not None and f.current_mean is not None:
        note = f"mean {_fmt(f.reference_mean)} -> {_fmt(f.current_mean)}"
    elif f.new_categories:
        note = "new: " + ", ".join(list(f.new_categories)[:3])
    missing = f"{f.reference_missing_share:.1%} -> {f.current_missing_share:.1%}"
    return (
        name or f.name,
        f.kind,
        f.test,
        _fmt(f.value),
        _fmt(f.threshold),
        "DRIFT" if f.drifted else "no",
        missing,
        note,
    )


def _html_table(columns: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    head = "".join(f"<th>{_e(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{_e(v)}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _plot(feature: FeatureDrift, reference: FeatureProfile, sketch: NumericSketch | CategoricalSketch) -> str:
    """An inline SVG: reference and current shares per bin (numbers) or per category."""
    from matplotlib.figure import Figure

    # the object API: no pyplot, no GUI backend, no global state
    figure = Figure(figsize=(5.2, 3.0), dpi=80)
    axes = figure.subplots()
    if isinstance(sketch, NumericSketch) and not reference.discrete:
        _density(axes, reference, sketch)
    else:
        labels, ref_share, cur_share = _bars(reference, sketch)
        positions = range(len(labels))
        axes.bar([p - 0.2 for p in positions], ref_share, width=0.4, label="reference", color="#1f77b4")
        axes.bar([p + 0.2 for p in positions], cur_share, width=0.4, label="current", color="#d62728")
        axes.set_xticks(list(positions), labels, rotation=45, ha="right", fontsize=7)
        axes.set_ylabel("share")
    axes.set_title(f"{feature.name}: {feature.test} {_fmt(feature.value)}", fontsize=9)
    axes.legend(fontsize=7)
    figure.tight_layout()
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg")
    svg = buffer.getvalue()
    return svg[svg.index("<svg") :]


def _density(axes: Any, reference: FeatureProfile, sketch: NumericSketch) -> None:
    """Step densities on about :data:`_DENSITY_BINS` groups of the reference's percentile bins (finer ones
    look like noise on a plot), current mass outside the training range as bars beside it."""
    import numpy as np

    edges = np.asarray(reference.edges, dtype=np.float64)
    keep = np.unique(np.linspace(0, len(edges) - 1, _DENSITY_BINS + 1).round().astype(int))
    shown = edges[keep]
    width = np.diff(shown)
    width[width <= 0] = np.nan
    for counts, label, colour in ((reference.counts, "reference", "#1f77b4"), (sketch.counts, "current", "#d62728")):
        total = max(sum(counts), 1)
        inner = np.asarray(counts[1:-1], dtype=np.float64)
        inner[-1] += counts[-1]  # the maximum itself joins the last bin
        grouped = np.add.reduceat(inner, keep[:-1]) if len(keep) > 1 else inner
        axes.stairs(np.nan_to_num(grouped / total / width), shown, label=label, color=colour)
    span = (edges[-1] - edges[0]) or 1.0
    total = max(sketch.count, 1)
    if sketch.below:
        axes.bar(
            edges[0] - span * 0.05, sketch.below / total / (span * 0.1), width=span * 0.1, color="#d62728", alpha=0.4
        )
    if sketch.above:
        axes.bar(
            edges[-1] + span * 0.05, sketch.above / total / (span * 0.1), width=span * 0.1, color="#d62728", alpha=0.4
        )
    axes.set_ylabel("density")


def _bars(
    reference: FeatureProfile, sketch: NumericSketch | CategoricalSketch
) -> tuple[list[str], list[float], list[float]]:
    if isinstance(sketch, NumericSketch):  # discrete numbers: one bar per reference value
        labels = [_fmt(e) for e in reference.edges]
        ref = [float(c) for c in reference.counts[1:]]
        cur = [float(c) for c in sketch.counts[1:]]
    else:
        keys = list(reference.categories)
        extra = [k for k in sorted(sketch.counts, key=lambda k: -sketch.counts[k]) if k not in reference.categories]
        keys = (keys + extra)[:_TOP_BARS]
        labels = keys
        ref = [float(reference.categories.get(k, 0)) for k in keys]
        cur = [float(sketch.counts.get(k, 0)) for k in keys]
    ref_total, cur_total = (
        max(sum(reference.counts) if isinstance(sketch, NumericSketch) else reference.count, 1),
        max(sketch.count, 1),
    )
    return labels, [v / ref_total for v in ref], [v / cur_total for v in cur]


def _fmt(value: float | None) -> str:
    if value is None or value != value:
        return "-"
    return f"{value:.4g}"


def _e(text: object) -> str:
    return html.escape(str(text))
