"""About this experiment: what gamma, theta, buckets and one-shot mean here (app/about.md)."""

from __future__ import annotations

from importlib.resources import files

from PySide6 import QtWidgets

ABOUT_MD = files("app") / "about.md"


class AboutPanel(QtWidgets.QTextBrowser):
    name = "about"
    title = "About"  # a dock tab beside Parameters: short

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName(self.name)
        self.setOpenExternalLinks(True)
        try:
            text = ABOUT_MD.read_text(encoding="utf-8")
        except OSError:
            text = "# GSH Lab\n\nHelp text missing (app/about.md, shipped in the package)."
        self.setMarkdown(text)
