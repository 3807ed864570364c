"""The agenda page's chart: how many executions fall due in each minute, as an SVG drawing.

Drawn with presentation attributes only (no style), so the pages' Content-Security-Policy
needs nothing more; every text in it is escaped here.
"""

from __future__ import annotations

from datetime import UTC, datetime

from markupsafe import Markup, escape

WIDTH = 960
HEIGHT = 240
LEFT = 48  # room for the counts' axis
BOTTOM = 28  # room for the times
TOP = 12
BAR_COLOUR = "#3b6ea5"
PEAK_COLOUR = "#c0392b"
AXIS_COLOUR = "#888888"


def _hhmm(instant: float) -> str:
    return datetime.fromtimestamp(instant, UTC).strftime("%H:%M")


def _label_every(minutes: int) -> int:
    """Minutes between time labels: about a dozen labels whatever the span."""
    for step in (5, 10, 15, 30, 60, 120, 240, 360, 720, 1440):
        if minutes / step <= 12:
            return step
    return 1440


def chart(counts: list[tuple[float, int]], *, title: str) -> Markup:
    """A bar per minute of `counts` ((minute, count), in order); the busiest minute in red."""
    plot_width = WIDTH - LEFT - 8
    plot_height = HEIGHT - TOP - BOTTOM
    peak = max((c for _, c in counts), default=0)
    scale = plot_height / peak if peak else 0.0
    bar = plot_width / max(1, len(counts))
    parts = [
        (
            f'<svg xmlns="http://www.w3.org/2000/svg" role="img" viewBox="0 0 {WIDTH} {HEIGHT}" '
            f'width="100%" aria-label="{escape(title)}">'
        ),
        f"<title>{escape(title)}</title>",
        (
            f'<line x1="{LEFT}" y1="{TOP + plot_height}" x2="{WIDTH - 8}" '
            f'y2="{TOP + plot_height}" stroke="{AXIS_COLOUR}"/>'
        ),
        f'<text x="{LEFT - 6}" y="{TOP + 10}" text-anchor="end" font-size="11">{peak}</text>',
        f'<text x="{LEFT - 6}" y="{TOP + plot_height}" text-anchor="end" font-size="11">0</text>',
    ]
    every = _label_every(len(counts))
    for n, (minute, count) in enumerate(counts):
        x = LEFT + n * bar
        if int(minute // 60) % every == 0:
            parts.append(
                f'<text x="{x:.1f}" y="{HEIGHT - 8}" text-anchor="middle" font-size="11">'
                f"{_hhmm(minute)}</text>"
            )
            parts.append(
                f'<line x1="{x:.1f}" y1="{TOP + plot_height}" x2="{x:.1f}" '
                f'y2="{TOP + plot_height + 4}" stroke="{AXIS_COLOUR}"/>'
            )
        if not count:
            continue
        height = max(1.0, count * scale)
        colour = PEAK_COLOUR if count == peak else BAR_COLOUR
        parts.append(
            f'<rect x="{x:.1f}" y="{TOP + plot_height - height:.1f}" '
            f'width="{max(1.0, bar - 0.5):.1f}" height="{height:.1f}" fill="{colour}">'
            f"<title>{_hhmm(minute)} UTC: {count} due</title></rect>"
        )
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - numbers, and texts escaped above
