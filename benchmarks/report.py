"""The benchmark table: medians, ratios per round, targets."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Metric:
    """One row: medians per contender, the median of per-round ratios ours/reference, the target."""

    label: str
    ours: float | None
    reference: float | None
    bare: float | None
    ratio: float | None
    ratio_rounds: list[float]
    bare_ratio: float | None
    target: str
    passed: bool


def _number(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"


def render(rows: list[Metric], rounds: int) -> str:
    """A markdown table of every metric."""
    lines = [
        f"SDK benchmark, {rounds} interleaved round(s); medians; ratio = ours / reference (per-round values)",
        "",
        "| metric | ours | reference | bare Starlette | ours/ref | ours/bare | target | |",
        "|---|---:|---:|---:|---:|---:|---|---|",
    ]
    for row in rows:
        per_round = ", ".join(f"{r:.2f}" for r in row.ratio_rounds)
        ratio = f"{row.ratio:.2f}× ({per_round})" if row.ratio is not None else "–"
        bare = f"{row.bare_ratio:.2f}×" if row.bare_ratio is not None else "–"
        lines.append(
            f"| {row.label} | {_number(row.ours)} | {_number(row.reference)} | {_number(row.bare)} | "
            f"{ratio} | {bare} | {row.target} | {'pass' if row.passed else 'MISS'} |"
        )
    return "\n".join(lines) + "\n"
