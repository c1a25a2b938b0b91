# The two commands in the README: `make run` launches the app, `make test` runs the tests.
# Each creates .venv if missing and installs everything it needs.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# Qt's xcb platform plugin (the app's window on Linux) loads these system libraries.
# A minimal Debian or Ubuntu lacks some of them; `make run` names the missing packages.
# Each entry is DEBIAN-PACKAGE:SONAME.
QT_SYSTEM_LIBS := libxcb1:libxcb.so.1 libx11-6:libX11.so.6 libx11-xcb1:libX11-xcb.so.1 \
	libxcb-cursor0:libxcb-cursor.so.0 libxcb-icccm4:libxcb-icccm.so.4 \
	libxcb-image0:libxcb-image.so.0 libxcb-keysyms1:libxcb-keysyms.so.1 \
	libxcb-randr0:libxcb-randr.so.0 libxcb-render-util0:libxcb-render-util.so.0 \
	libxcb-render0:libxcb-render.so.0 libxcb-shape0:libxcb-shape.so.0 \
	libxcb-shm0:libxcb-shm.so.0 libxcb-sync1:libxcb-sync.so.1 libxcb-util1:libxcb-util.so.1 \
	libxcb-xfixes0:libxcb-xfixes.so.0 libxcb-xkb1:libxcb-xkb.so.1 libxcb-glx0:libxcb-glx.so.0 \
	libxkbcommon0:libxkbcommon.so.0 libxkbcommon-x11-0:libxkbcommon-x11.so.0 \
	libegl1:libEGL.so.1 libgl1:libGL.so.1 libfontconfig1:libfontconfig.so.1 \
	libfreetype6:libfreetype.so.6 libdbus-1-3:libdbus-1.so.3 libglib2.0-0:libglib-2.0.so.0

.PHONY: run test lint bench venv clean system-libs print-system-libs

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install -e ".[test]"
	@echo "Compiling UMAP's kernels once for this install (about a minute; later launches reuse them)…"
	$(BIN)/python -c "from engine.projection import compile_kernels; compile_kernels()"
	touch $(STAMP)

venv: $(STAMP)

# On Linux, check Qt's system libraries before launching and print the exact install line.
system-libs:
	@if [ "$$(uname -s)" = Linux ] && [ "$${QT_QPA_PLATFORM:-xcb}" = xcb ]; then \
	  ldc=$$(command -v ldconfig || echo /sbin/ldconfig); missing=""; \
	  for entry in $(QT_SYSTEM_LIBS); do \
	    $$ldc -p 2>/dev/null | grep -qF "$${entry#*:} " || missing="$$missing $${entry%%:*}"; \
	  done; \
	  if [ -n "$$missing" ]; then \
	    echo "GSH Lab's window needs system libraries that this machine lacks:$$missing"; \
	    echo "Install them, then run 'make run' again:"; \
	    echo "  sudo apt-get install -y$$missing"; \
	    exit 1; \
	  fi; \
	fi

# The Debian/Ubuntu packages of QT_SYSTEM_LIBS, one line (.ci/run installs them).
print-system-libs:
	@echo $(foreach entry,$(QT_SYSTEM_LIBS),$(firstword $(subst :, ,$(entry))))

run: system-libs $(STAMP)
	$(BIN)/python main.py gui

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports

test: lint
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest

bench: $(STAMP)
	$(BIN)/python bench/train_overhead.py
	$(BIN)/python bench/contention.py
	QT_QPA_PLATFORM=offscreen $(BIN)/python bench/contention.py --app
	$(BIN)/python bench/science.py
	$(BIN)/python bench/projection.py
	$(BIN)/python bench/runs.py
	$(BIN)/python bench/memory.py
	$(BIN)/python bench/resources.py
	$(BIN)/python bench/sweep.py
	QT_QPA_PLATFORM=offscreen $(BIN)/python bench/gui_responsiveness.py
	QT_QPA_PLATFORM=offscreen $(BIN)/python bench/panel_cost.py
	QT_QPA_PLATFORM=offscreen $(BIN)/python bench/app_memory.py
	QT_QPA_PLATFORM=offscreen $(BIN)/python bench/inspector.py
	QT_QPA_PLATFORM=offscreen $(BIN)/python bench/animation.py
	$(BIN)/python bench/startup.py  # needs Xvfb, openbox and xdotool

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache
