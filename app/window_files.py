"""Files: experiment configs in and out (all-or-nothing), and every export (panels, window,
history CSV, embeddings NPZ, animations), each written atomically and reported.

A mixin of app.window.MainWindow (it relies on the window's attributes).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6 import QtCore, QtGui, QtWidgets

from app import file_dialogs
from app.exports import EXPORT_FORMATS, save_grab, widget_to_pdf
from app.panels.base import title_of
from engine.atomic import atomic_write
from engine.config import PRESETS, ConfigError, load

if TYPE_CHECKING:
    from app.animate import AnimationExport
    from app.window_host import WindowHost
else:
    WindowHost = object  # the type checker's view of MainWindow (app.window_host)


class FilesMixin(WindowHost):
    def show_error(self, title: str, message: str) -> None:
        """Status bar plus a non-blocking message box; the window's state is untouched."""
        self.last_error = message
        self.statusBar().showMessage(f"{title}: {message}", 15000)
        if self._closing:
            return
        if self.error_box is not None:
            self.error_box.close()
        box = QtWidgets.QMessageBox(QtWidgets.QMessageBox.Icon.Warning, title, message,
                                    QtWidgets.QMessageBox.StandardButton.Ok, self)
        box.setAttribute(QtCore.Qt.WidgetAttribute.WA_DeleteOnClose)
        box.open()
        self.error_box = box
        box.finished.connect(lambda _r: setattr(self, "error_box", None))

    def _confirm(self, title: str, question: str) -> bool:
        """Ask a yes/no question (tests replace this method)."""
        answer = QtWidgets.QMessageBox.question(
            self, title, question,
            QtWidgets.QMessageBox.StandardButton.Yes | QtWidgets.QMessageBox.StandardButton.No,
            QtWidgets.QMessageBox.StandardButton.No,
        )
        return answer == QtWidgets.QMessageBox.StandardButton.Yes

    def load_config(self, path: str | Path) -> bool:
        """Load an experiment TOML into the parameters in one step.

        The whole file is read and validated first; a bad file, or a run in progress,
        changes nothing (neither the editors nor the config Start runs) and says why.
        """
        if self.runner.is_active:
            self.show_error("Cannot load experiment",
                            f"a run is {self.runner.state}: stop it (or Reset) first, then "
                            f"open {Path(path).name} again")
            return False
        try:
            self.params.set_config(load(path))
        except ConfigError as exc:
            self.show_error("Cannot load experiment", str(exc))
            return False
        self._add_recent(Path(path))
        self.statusBar().showMessage(f"Loaded {path}", 5000)
        self._update_actions()
        return True

    def save_config(self, path: str | Path) -> bool:
        cfg = self.params.config()
        if cfg is None:
            self.show_error("Cannot save experiment", "fix the highlighted parameters first")
            return False
        try:
            cfg.save(path)
        except OSError as exc:
            self.show_error("Cannot save experiment", str(exc))
            return False
        self._add_recent(Path(path))
        self.statusBar().showMessage(f"Saved {path}", 5000)
        return True

    def export_window(self, path: str | Path) -> Path:
        """The whole window as PNG, or as a vector PDF (by suffix)."""
        if Path(path).suffix.lower() == ".pdf":
            return widget_to_pdf(self, path)
        return save_grab(self, path)

    def export_panel(self, name: str, path: str | Path) -> Path:
        """Write one panel as PNG, SVG or vector PDF (by suffix); non-plot panels as a PNG
        grab or a PDF. PNG and PDF files carry the panel's title and what it shows (run,
        step, its header line) in their metadata."""
        if name not in self.panels:
            raise ConfigError("--panel", f"unknown panel {name!r} (choose from "
                                f"{', '.join(self.panels)})")
        path = Path(path)
        panel = self.panels[name]
        pdf = path.suffix.lower() == ".pdf"
        title = f"GSH Lab: {title_of(panel)} ({self.export_stem()})"
        plot = self.plot_panels.get(name)
        if plot is not None:
            out = plot.export(path, title=title)
            if out.suffix.lower() == ".png":
                self._describe_png(out, title, plot.info.text())
            return out
        return widget_to_pdf(panel, path, title=title) if pdf else save_grab(panel, path)

    @staticmethod
    def _describe_png(path: Path, title: str, description: str) -> None:
        """PNG text chunks (Title, Description, Software): a figure says what it is."""
        image = QtGui.QImage(str(path))
        image.setText("Title", title)
        image.setText("Description", description)
        image.setText("Software", "GSH Lab")

        def write(tmp: Path) -> None:
            # PySide6's stubs want bytes for the format; Qt takes the str
            if not image.save(str(tmp), "PNG"):  # type: ignore[call-overload]
                raise OSError(f"cannot write {path}: the image could not be encoded")

        atomic_write(path, write)

    def export_all(self, folder: str | Path) -> list[Path]:
        """Every plot panel as PNG, SVG and PDF, plus the whole window, into `folder`."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        out = [self.export_window(folder / "window.png"),
               self.export_window(folder / "window.pdf")]
        for name in self.plot_panels:
            for fmt in EXPORT_FORMATS:
                out.append(self.export_panel(name, folder / f"{name}.{fmt}"))
        return out

    def export_history_csv(self, path: str | Path) -> Path:
        """The run's history, one row per snapshot (the same writer as the CLI's record)."""
        from engine.record_format import write_history_csv

        return write_history_csv(path, self.store.rows)

    def export_embeddings_npz(self, path: str | Path) -> Path:
        """The probe embeddings of the snapshot on screen, with its 2-D frames when drawn
        (the same schema and writer as the CLI's embeddings.npz)."""
        from engine.record_format import write_embeddings_npz

        snap = self.shown_snapshot or self.store.latest
        run = self.session.run_info
        if snap is None or run is None:
            raise ValueError("no snapshot yet: start a run first")
        frame = self.store.frames.get(snap.step)
        raw = self.store.raw_frame
        return write_embeddings_npz(
            path, snap, run.probe, embedding_2d=None if frame is None else frame.coords,
            input_2d=None if raw is None else raw.coords,
        )

    def export_stem(self) -> str:
        """A file name stem that says what is exported: run (or preset) and step."""
        snap = self.shown_snapshot or self.store.latest
        cfg = self.run_config or self.params.config()
        name = "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in
                       (cfg.name if cfg is not None else "gsh-lab"))[:40]
        return f"{name}-step{snap.step}" if snap is not None else name

    def export_folder(self) -> Path:
        """Where the last export went (remembered), else the runs folder's parent."""
        saved = self.settings.value("exports/folder")
        return Path(str(saved)) if saved else self.runs_dir.parent

    def _ask_save(self, title: str, filt: str, default: str) -> str | None:
        start = str(self.export_folder() / f"{self.export_stem()}-{default}")
        path, _ = file_dialogs.get_save_file_name(self, title, start, filt)
        if path:
            self.settings.setValue("exports/folder", str(Path(path).parent))
        return path or None

    def _guard(self, what: str, fn: Callable[..., object], *args: Any) -> None:
        try:
            out = fn(*args)
        except (OSError, ValueError, RuntimeError) as exc:
            self.show_error(f"Cannot {what}", str(exc))
            return
        self.statusBar().showMessage(f"Wrote {out if not isinstance(out, list) else args[0]}",
                                     5000)

    def _on_export_window_triggered(self) -> None:
        path = self._ask_save("Export window", "PNG image (*.png);;PDF, vector (*.pdf)",
                              "gsh-lab.png")
        if path:
            self._guard("export the window", self.export_window, path)

    def _on_export_panel_requested(self, name: str, fmt: str) -> None:
        filt = {"svg": "SVG image (*.svg)", "pdf": "PDF, vector (*.pdf)"}.get(
            fmt, "PNG image (*.png)")
        path = self._ask_save(f"Export {title_of(self.panels[name])}", filt, f"{name}.{fmt}")
        if path:
            if not path.lower().endswith(f".{fmt}"):
                path += f".{fmt}"
            self._guard("export the panel", self.export_panel, name, path)

    def _on_export_all_triggered(self) -> None:
        folder = file_dialogs.get_existing_directory(
            self, "Export all panels to", str(self.export_folder()))
        if not folder:
            return
        self.settings.setValue("exports/folder", folder)
        taken = self.export_all_names(folder)
        if taken and not self._confirm(
                "Replace files?", f"{len(taken)} files of the export already exist in "
                f"{folder} ({', '.join(p.name for p in taken[:4])}…). Replace them?"):
            return
        self._guard("export the panels", self.export_all, folder)

    def export_all_names(self, folder: str | Path) -> list[Path]:
        """The files export_all would replace in `folder`."""
        folder = Path(folder)
        names = ["window.png", "window.pdf"] + [
            f"{name}.{fmt}" for name in self.plot_panels for fmt in EXPORT_FORMATS]
        return [folder / n for n in names if (folder / n).exists()]

    def _on_export_csv_triggered(self) -> None:
        path = self._ask_save("Export history", "CSV (*.csv)", "history.csv")
        if path:
            self._guard("export the history", self.export_history_csv, path)

    def _on_export_npz_triggered(self) -> None:
        path = self._ask_save("Export embeddings", "NumPy archive (*.npz)", "embeddings.npz")
        if path:
            self._guard("export the embeddings", self.export_embeddings_npz, path)

    def export_animation(self, path: str | Path, panel: str = "representation", fps: int = 30,
                         seconds: float = 10.0, size: str = "1280x720",
                         show_progress: bool = True) -> AnimationExport:
        """Render the run on screen (live or reopened) as an MP4 or GIF without blocking the
        window (app/animate.py); returns the AnimationExport (its `finished` signal reports)."""
        from app.animate import AnimationExport, movie_options

        if self.record_dir is None:
            raise ValueError("no recorded run on screen: start or open a run first")
        options = movie_options(path, panel, fps, seconds, size)
        export = AnimationExport(self.record_dir, options, parent=self,
                                 show_progress=show_progress, window_factory=type(self).offscreen)
        export.finished.connect(self._on_animation_finished)
        self._animation_export = export
        return export

    def _on_animation_finished(self, path: str, message: str) -> None:
        if path or self._animation_export.cancelled:
            self.statusBar().showMessage(message, 10000)
        else:
            self.show_error("Cannot export the animation", message)

    def _on_export_animation_triggered(self) -> None:
        from app.animate import AnimationDialog

        # The run's own name, in the folder the last export went to.
        name = self.record_dir.name if self.record_dir is not None else self.export_stem()
        dialog = AnimationDialog(str(self.export_folder() / f"{name}.mp4"), self)
        if dialog.exec() and dialog.options is not None:
            o = dialog.options
            self.settings.setValue("exports/folder", str(Path(o.out).parent))
            try:
                self.export_animation(o.out, o.panel, o.fps, o.seconds,
                                      f"{o.size[0]}x{o.size[1]}")
            except (OSError, ValueError) as exc:
                self.show_error("Cannot export the animation", str(exc))

    def _on_open_triggered(self) -> None:
        path, _ = file_dialogs.get_open_file_name(
            self, "Open experiment", str(PRESETS), "Experiment (*.toml)"
        )
        if path:
            self.load_config(path)

    def _on_save_triggered(self) -> None:
        path = self._ask_save("Save experiment", "Experiment (*.toml)", "experiment.toml")
        if path:
            self.save_config(path)

