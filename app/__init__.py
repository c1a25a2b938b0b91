"""GSH Lab's Qt app. Importing the engine first fixes the thread settings (engine.threads)
before anything here loads torch."""

import engine  # noqa: F401
