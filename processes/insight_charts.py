"""Server-rendered SVG charts for the insights page: bars, grouped by a label, drawn with
presentation attributes only (the pages' Content-Security-Policy allows no inline styles)."""

from collections.abc import Sequence

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

WIDTH, HEIGHT, LEFT, BOTTOM, TOP = 720, 220, 44, 46, 12


def bar_chart(
    labels: Sequence[str],
    series: Sequence[tuple[str, str, Sequence[int]]],
    *,
    title: str,
    testid: str,
) -> SafeString:
    """Grouped bars: one group per label, one bar per series (name, colour, values)."""
    top = max([1, *(value for _, _, values in series for value in values)])
    plot_w, plot_h = WIDTH - LEFT - 8, HEIGHT - BOTTOM - TOP
    group_w = plot_w / max(len(labels), 1)
    bar_w = max(group_w * 0.8 / max(len(series), 1), 1.0)
    bars = []
    for index, label in enumerate(labels):
        x0 = LEFT + index * group_w + group_w * 0.1
        for number, (name, colour, values) in enumerate(series):
            value = values[index]
            height = plot_h * value / top
            bars.append(
                (
                    f"{x0 + number * bar_w:.1f}",
                    f"{TOP + plot_h - height:.1f}",
                    f"{bar_w:.1f}",
                    f"{height:.1f}",
                    colour,
                    f"{label}: {value} {name}",
                )
            )
    step = max(1, len(labels) // 8)
    ticks = [
        (f"{LEFT + i * group_w + group_w / 2:.1f}", f"{HEIGHT - BOTTOM + 14}", label)
        for i, label in enumerate(labels)
        if i % step == 0
    ]
    legend = [
        (f"{LEFT + i * 130}", f"{HEIGHT - 10}", colour, f"{LEFT + i * 130 + 14}", name)
        for i, (name, colour, _) in enumerate(series)
    ]
    return format_html(
        '<svg class="chart" data-testid="{}" role="img" aria-label="{}" viewBox="0 0 {} {}" '
        'width="100%" preserveAspectRatio="xMinYMin meet"><title>{}</title>'
        '<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="#999"/>'
        '<text x="4" y="{}" font-size="11" fill="#555">{}</text>{}{}{}</svg>',
        testid,
        title,
        WIDTH,
        HEIGHT,
        title,
        LEFT,
        HEIGHT - BOTTOM,
        WIDTH - 8,
        HEIGHT - BOTTOM,
        TOP + 10,
        top,
        format_html_join(
            "",
            '<rect x="{}" y="{}" width="{}" height="{}" fill="{}"><title>{}</title></rect>',
            bars,
        ),
        format_html_join(
            "",
            '<text x="{}" y="{}" font-size="10" fill="#555" text-anchor="middle">{}</text>',
            ticks,
        ),
        format_html_join(
            "",
            '<rect x="{}" y="{}" width="10" height="10" fill="{}"/>'
            '<text x="{}" y="{}" font-size="11" dy="9" fill="#333">{}</text>',
            [(x, str(int(y) - 9), c, tx, str(int(y) - 9), n) for x, y, c, tx, n in legend],
        ),
    )


def empty_chart(message: str) -> SafeString:
    return mark_safe(format_html('<p class="muted">{}</p>', message))  # noqa: S308
