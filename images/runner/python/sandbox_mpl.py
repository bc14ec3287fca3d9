"""Matplotlib backend for multilang-sandbox (MPLBACKEND=module://sandbox_mpl).

Non-interactive (Agg). `plt.show()` saves every open figure as a PNG in
/outputs and closes it, so the sandbox returns plots as images; the Python
kernel calls `save_open_figures()` after each execute for figures that were
never shown.
"""

import itertools
import os

from matplotlib.backend_bases import _Backend
from matplotlib.backends.backend_agg import _BackendAgg

OUTPUTS = "/outputs"
_numbers = itertools.count(1)


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
