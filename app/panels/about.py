"""About this experiment: what gamma, theta, buckets and one-shot mean here (resources/about.md)."""

from __future__ import annotations

from pathlib import Path

from PySide6 import QtWidgets

ABOUT_MD = Path(__file__).resolve().parents[2] / "resources" / "about.md"


class AboutPanel(QtWidgets.QTextBrowser):
    name = "about"
    title = "About"  # a dock tab beside Parameters: short

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName(self.name)
        self.setOpenExternalLinks(True)
        try:
            text = ABOUT_MD.read_text(encoding="utf-8")
        except OSError:
            text = "# GSH Lab\n\nHelp text missing (resources/about.md)."
        self.setMarkdown(text)
