"""HTML reports: plain data in (reports.model), one self-contained HTML page out."""

from reports.page import chart_count, render_html
from reports.safety import mask_secrets

__all__ = ["chart_count", "mask_secrets", "render_html"]
