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


def test_heatmap_pdf_is_vector_cells_not_an_image(qtbot, tmp_path):
    """A PDF viewer blurs an upscaled image: the collision heatmap is drawn cell by cell."""
    from app.panels.collisions import CollisionPanel

    panel = CollisionPanel()
    qtbot.addWidget(panel)
    panel.resize(500, 400)
    panel.show()
    run = handmade_run(c_seen=10, c_unseen=6)
    snap = handmade_snapshot(step=5, run=run)
    panel.set_view(View(config=tiny_config(), run=run, snapshot=snap, rows=[snap.scalars()],
                        steps=[5], index=0))
    qtbot.wait(10)
    out = scene_to_pdf(panel.graphics.scene(), panel.graphics, tmp_path / "heat.pdf")
    pdf = out.read_bytes()
    _ops, images = _content_ops(pdf)
    assert images <= 1  # the colour bar's gradient, not the 16x16 heatmap
    cells = 16 * 16
    body = b"".join(zlib.decompress(m.group(1)) for m in
                    re.finditer(rb"stream\r?\n(.*?)endstream", pdf, re.S)
                    if m.group(1)[:1] == b"x")
    assert len(re.findall(rb"\sre\s", body)) + len(re.findall(rb"\sh\s", body)) >= cells
    assert panel.image.paint.__func__ is type(panel.image).paint  # restored after


def test_window_pdf_draws_what_is_shown_with_vector_plots(qtbot, locality_panel, tmp_path):
    from PySide6 import QtWidgets

    box = QtWidgets.QWidget()
    qtbot.addWidget(box)
    layout = QtWidgets.QVBoxLayout(box)
    table = QtWidgets.QTableWidget(3, 30)  # far wider than the box: columns scrolled off
    layout.addWidget(table)
    locality_panel.setParent(box)
    layout.addWidget(locality_panel)
    box.resize(500, 700)
    box.show()
    qtbot.wait(20)
    out = widget_to_pdf(box, tmp_path / "window.pdf")
    locality_panel.setParent(None)  # the fixture closes it
    pdf = out.read_bytes()
    ops, images = _content_ops(pdf)
    assert images == 1  # the window as shown, once; the plot over it as paths
    assert ops > 120  # every class pair's point is a vector path
    if shutil.which("pdftoppm"):
        subprocess.run(["pdftoppm", "-png", "-r", "96", str(out), str(tmp_path / "page")],
                       check=True)
        from PySide6 import QtGui

        page = QtGui.QImage(str(next(tmp_path.glob("page*.png"))))
        assert abs(page.width() - box.width()) <= 2 and abs(page.height() - box.height()) <= 2
