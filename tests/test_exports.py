"""PDF figures: a panel's scene and a whole widget become vector PDFs, written atomically."""

from __future__ import annotations

import re
import shutil
import subprocess
import zlib

import pytest

from app.exports import scene_to_pdf, widget_to_pdf
from app.view import View
from tests.helpers import handmade_run, handmade_snapshot, tiny_config


def _content_ops(pdf: bytes) -> tuple[int, int]:
    """(path-construction operators, image XObjects) in the PDF's content streams."""
    ops = 0
    for m in re.finditer(rb"stream\r?\n(.*?)endstream", pdf, re.S):
        try:
            body = zlib.decompress(m.group(1))
        except zlib.error:
            body = m.group(1)
        ops += len(re.findall(rb"\s[mlc]\s", body))
    images = len(re.findall(rb"/Subtype\s*/Image", pdf))
    return ops, images


@pytest.fixture
def locality_panel(qtbot):
    from app.panels.locality import LocalityPanel

    panel = LocalityPanel()
    qtbot.addWidget(panel)
    panel.resize(600, 400)
    panel.show()
    run = handmade_run(c_seen=10, c_unseen=6)  # 16 classes: 120 class pairs
    snap = handmade_snapshot(step=5, run=run)
    panel.set_view(View(config=tiny_config(), run=run, snapshot=snap, rows=[snap.scalars()],
                    steps=[5], index=0))
    qtbot.wait(10)
    return panel


def test_panel_pdf_is_vector_with_every_point(locality_panel, tmp_path):
    out = scene_to_pdf(locality_panel.graphics.scene(), locality_panel.graphics,
                       tmp_path / "locality.pdf")
    pdf = out.read_bytes()
    assert pdf.startswith(b"%PDF")
    ops, images = _content_ops(pdf)
    assert images == 0  # points are drawn as vector symbols, not embedded pixmaps
    assert ops > 120  # at least one path per measured class pair
    if shutil.which("pdftoppm"):
        subprocess.run(["pdftoppm", "-png", "-r", "30", str(out), str(tmp_path / "page")],
                       check=True)
        assert (tmp_path / "page-1.png").stat().st_size > 0


def test_window_pdf_and_failed_pdf_write_is_reported(locality_panel, tmp_path):
    out = widget_to_pdf(locality_panel, tmp_path / "window.pdf")
    assert out.read_bytes().startswith(b"%PDF")
    with pytest.raises(OSError):
        widget_to_pdf(locality_panel, tmp_path / "missing-folder" / "window.pdf")
    with pytest.raises(OSError):
        widget_to_pdf(locality_panel, "/proc/window.pdf")
    assert not (tmp_path / "missing-folder").exists()
