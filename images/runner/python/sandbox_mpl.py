"""Matplotlib backend for multilang-sandbox (MPLBACKEND=module://sandbox_mpl).

Non-interactive (Agg). `plt.show()` saves every open figure as a PNG in
/outputs and closes it, so the sandbox returns plots as images; the Python
kernel calls `save_open_figures()` after each execute for figures that were
never shown.

Every PNG a figure is saved as (here, or by the code's own `savefig`)
carries a short text description of the chart in its `Description` text
chunk, read from the figure object, not from pixels: the size, each axes'
title, labels, scales and limits, and each series' kind, label, point
count and ranges (bar labels and heights for small bar charts). The
server returns it as text beside the image, for models whose client
drops images.
"""

import itertools
import os

from matplotlib.backend_bases import _Backend
from matplotlib.backends.backend_agg import _BackendAgg

OUTPUTS = "/outputs"
_numbers = itertools.count(1)
# The PNG text chunk the description goes in, and its bounds.
DESCRIPTION_KEY = "Description"
MAX_DESCRIPTION = 2000
MAX_BARS_LISTED = 12


def _number(value):
    try:
        return "%.4g" % float(value)
    except (TypeError, ValueError):
        return str(value)


def _span(values):
    """`low to high` of the finite numbers in `values`, or first/last of others."""
    import numpy

    try:
        array = numpy.asarray(values, dtype=float).ravel()
        array = array[numpy.isfinite(array)]
        if array.size == 0:
            return "none"
        return "%s to %s" % (_number(array.min()), _number(array.max()))
    except (TypeError, ValueError):
        items = list(values)
        if not items:
            return "none"
        return "%s to %s" % (items[0], items[-1])


def _label(artist):
    label = artist.get_label()
    return ' "%s"' % label if label and not label.startswith("_") else ""


def _axes_line(number, axes):
    parts = ["axes %d" % number]
    title = axes.get_title() or axes.get_title("left") or axes.get_title("right")
    if title:
        parts[0] += ' "%s"' % title
    for name, label, scale, limits in (
        ("x", axes.get_xlabel(), axes.get_xscale(), axes.get_xlim()),
        ("y", axes.get_ylabel(), axes.get_yscale(), axes.get_ylim()),
    ):
        shown = ' "%s"' % label if label else ""
        parts.append("%s%s (%s, %s)" % (name, shown, scale, _span(limits)))
    return ": ".join([parts[0], ", ".join(parts[1:])])


def _bars(axes, container):
    patches = list(container.patches)
    horizontal = getattr(container, "orientation", None) == "horizontal"
    sizes = [patch.get_width() if horizontal else patch.get_height() for patch in patches]
    line = "  bars%s: %d, %s %s" % (
        _label(container),
        len(patches),
        "widths" if horizontal else "heights",
        _span(sizes),
    )
    if 0 < len(patches) <= MAX_BARS_LISTED:
        ticks = axes.get_yticklabels() if horizontal else axes.get_xticklabels()
        names = [tick.get_text() for tick in ticks]
        if len(names) == len(patches) and all(names):
            pairs = ["%s=%s" % (name, _number(size)) for name, size in zip(names, sizes)]
        else:
            pairs = [_number(size) for size in sizes]
        line += " (%s)" % ", ".join(pairs)
    return line


def _series(axes):
    from matplotlib.collections import PathCollection
    from matplotlib.container import BarContainer

    lines = []
    for line in axes.get_lines():
        x, y = line.get_xdata(), line.get_ydata()
        lines.append("  line%s: %d points, x %s, y %s" % (_label(line), len(y), _span(x), _span(y)))
    for container in axes.containers:
        if isinstance(container, BarContainer):
            lines.append(_bars(axes, container))
    for collection in axes.collections:
        if isinstance(collection, PathCollection):
            offsets = collection.get_offsets()
            lines.append(
                "  scatter%s: %d points, x %s, y %s"
                % (_label(collection), len(offsets), _span(offsets[:, 0]), _span(offsets[:, 1]))
            )
    for image in axes.get_images():
        lines.append("  image: %s" % "x".join(str(size) for size in image.get_array().shape))
    return lines


def describe(figure):
    """A short text description of `figure` (bounded)."""
    width, height = figure.get_size_inches()
    axes = figure.get_axes()
    lines = ["figure %sx%s in, %d axes" % (_number(width), _number(height), len(axes))]
    suptitle = getattr(figure, "_suptitle", None)
    if suptitle is not None and suptitle.get_text():
        lines[0] += ' "%s"' % suptitle.get_text()
    for number, each in enumerate(axes, 1):
        lines.append(_axes_line(number, each))
        lines.extend(_series(each))
    text = "\n".join(lines)
    if len(text) > MAX_DESCRIPTION:
        text = text[: MAX_DESCRIPTION - 3] + "..."
    return text


def _describing_savefig(savefig):
    """Figure.savefig that puts the description in PNGs it writes."""

    def wrapper(figure, fname, *args, **kwargs):
        target = kwargs.get("format")
        if target is None:
            try:
                target = os.fspath(fname)
            except TypeError:  # a file object
                target = getattr(fname, "name", "")
            if not os.path.splitext(str(target))[1]:
                # No extension: matplotlib saves in its default format.
                from matplotlib import rcParams

                target = rcParams["savefig.format"]
        if str(target).lower().endswith("png"):
            metadata = dict(kwargs.get("metadata") or {})
            if DESCRIPTION_KEY not in metadata:
                try:
                    metadata[DESCRIPTION_KEY] = describe(figure)
                except Exception:  # a chart it cannot read is saved without one
                    pass
                kwargs["metadata"] = metadata
        return savefig(figure, fname, *args, **kwargs)

    wrapper.describes = True
    return wrapper


def _install():
    from matplotlib.figure import Figure

    if not getattr(Figure.savefig, "describes", False):
        Figure.savefig = _describing_savefig(Figure.savefig)


_install()


def save_open_figures():
    """Saves each open figure to /outputs/figure-N.png and closes it."""
    from matplotlib import pyplot
    from matplotlib._pylab_helpers import Gcf

    managers = Gcf.get_all_fig_managers()
    if not managers:
        return []
    saved, failures = [], []
    try:
        os.makedirs(OUTPUTS, exist_ok=True)
        for manager in managers:
            while True:
                path = os.path.join(OUTPUTS, "figure-%d.png" % next(_numbers))
                if not os.path.exists(path):
                    break
            try:
                manager.canvas.figure.savefig(path, format="png", dpi=100)
                saved.append(path)
            except Exception as error:  # one bad figure must not stop the others
                failures.append("figure %s: %s" % (manager.num, error))
    finally:
        # Closed even when saving failed, so a bad figure is not retried
        # (and the good ones not saved again) after every later cell.
        pyplot.close("all")
    if failures:
        raise RuntimeError("; ".join(failures))
    return saved


@_Backend.export
class _BackendSandbox(_BackendAgg):
    @staticmethod
    def show(*args, **kwargs):
        save_open_figures()
