"""Summaries of the samples: medians, paired ratios, targets, the table.

A ratio is the median of the per-round ratios icsssl ÷ pyOpenSSL, so
each ratio compares two batches that ran in the same round.  Its
interquartile range (IQR) shows how much the rounds disagreed.
"""

from __future__ import annotations

import dataclasses
import statistics
from typing import Any

ICSSSL = "icsssl"
PYOPENSSL = "pyOpenSSL"
STDLIB = "stdlib ssl"
TABLE_COLUMNS = (ICSSSL, PYOPENSSL, STDLIB)


@dataclasses.dataclass(frozen=True)
class Target:
    """A bound on a figure's ratio (``kind="ratio"``) or on icsssl's own
    value (``kind="value"``).

    It is met when the median is at least *limit* (``at_least``) or at
    most *limit* (otherwise).
    """

    kind: str
    limit: float
    at_least: bool

    def text(self, unit: str) -> str:
        """Return the target as the table shows it, such as ``≥ 0.99``."""
        sign = "≥" if self.at_least else "≤"
        suffix = f" {unit}" if self.kind == "value" else ""
        return f"{sign} {self.limit:g}{suffix}"

    def is_met(self, value: float) -> bool:
        """Return whether *value* meets the target."""
        return value >= self.limit if self.at_least else value <= self.limit


@dataclasses.dataclass
class Figure:
    """One row of the table and the samples behind it."""

    name: str
    unit: str
    samples: dict[str, list[float]]
    target: Target | None = None
    #: The contenders whose per-round ratio is the figure's ratio.
    ratio_of: tuple[str, str] | None = (ICSSSL, PYOPENSSL)
    note: str = ""
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)

    def median(self, label: str) -> float | None:
        """Return the median of *label*'s samples, or None without any."""
        values = self.samples.get(label)
        return statistics.median(values) if values else None

    def ratios(self) -> list[float]:
        """Return the per-round ratios of the two contenders compared."""
        if self.ratio_of is None:
            return []
        numerator, denominator = self.ratio_of
        if numerator not in self.samples or denominator not in self.samples:
            return []
        return [
            top / bottom
            for top, bottom in zip(
                self.samples[numerator], self.samples[denominator]
            )
            if bottom
        ]

    def ratio(self) -> float | None:
        """Return the median per-round ratio, or None."""
        ratios = self.ratios()
        return statistics.median(ratios) if ratios else None

    def ratio_quartiles(self) -> tuple[float, float] | None:
        """Return the first and third quartiles of the per-round ratios."""
        ratios = self.ratios()
        if len(ratios) < 2:
            return None
        first, _, third = statistics.quantiles(ratios, n=4)
        return first, third

    def checked_value(self) -> float | None:
        """Return the value the target applies to."""
        if self.target is None:
            return None
        if self.target.kind == "ratio":
            return self.ratio()
        return self.median(ICSSSL)

    def met(self) -> bool | None:
        """Return whether the target is met, or None without a target."""
        value = self.checked_value()
        if self.target is None or value is None:
            return None
        return self.target.is_met(value)

    def relative_spread(self, label: str) -> float | None:
        """Return *label*'s IQR divided by its median."""
        values = self.samples.get(label) or []
        if len(values) < 2:
            return None
        first, middle, third = statistics.quantiles(values, n=4)
        return (third - first) / middle if middle else None

    def as_dict(self) -> dict[str, Any]:
        """Return the figure as plain JSON values."""
        quartiles = self.ratio_quartiles()
        return {
            "name": self.name,
            "unit": self.unit,
            "medians": {label: self.median(label) for label in self.samples},
            "relative_iqr": {
                label: self.relative_spread(label) for label in self.samples
            },
            "ratio_of": list(self.ratio_of) if self.ratio_of else None,
            "ratio": self.ratio(),
            "ratio_iqr": list(quartiles) if quartiles else None,
            "target": (
                None if self.target is None else self.target.text(self.unit)
            ),
            "met": self.met(),
            "note": self.note,
            "samples": self.samples,
            **self.extra,
        }


def _format_value(value: float | None) -> str:
    if value is None:
        return "—"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def _format_ratio(figure: Figure) -> str:
    ratio = figure.ratio()
    if ratio is None:
        return "—"
    quartiles = figure.ratio_quartiles()
    if quartiles is None:
        return f"{ratio:.3f}"
    return f"{ratio:.3f} [{quartiles[0]:.3f}–{quartiles[1]:.3f}]"


def _format_result(figure: Figure) -> str:
    met = figure.met()
    if met is None:
        return ""
    return "met" if met else "MISSED"


def table_rows(figures: list[Figure]) -> list[list[str]]:
    """Return the table's header and one row of text cells per figure."""
    header = [
        "figure",
        "unit",
        *TABLE_COLUMNS,
        "ratio [IQR]",
        "target",
        "result",
    ]
    rows = [header]
    for figure in figures:
        rows.append(
            [
                figure.name,
                figure.unit,
                *(
                    _format_value(figure.median(label))
                    for label in TABLE_COLUMNS
                ),
                _format_ratio(figure),
                figure.target.text(figure.unit) if figure.target else "",
                _format_result(figure),
            ]
        )
    return rows


def format_text_table(figures: list[Figure]) -> str:
    """Return the table with space-padded columns, for a terminal."""
    rows = table_rows(figures)
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for number, row in enumerate(rows):
        cells = [
            cell.ljust(width) if index == 0 else cell.rjust(width)
            for index, (cell, width) in enumerate(zip(row, widths))
        ]
        lines.append("  ".join(cells).rstrip())
        if number == 0:
            lines.append("  ".join("-" * width for width in widths))
    return "\n".join(lines)


def format_markdown_table(figures: list[Figure]) -> str:
    """Return the table in Markdown."""
    rows = table_rows(figures)
    lines = ["| " + " | ".join(rows[0]) + " |"]
    lines.append("|" + "|".join("---" for _ in rows[0]) + "|")
    for row in rows[1:]:
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)
