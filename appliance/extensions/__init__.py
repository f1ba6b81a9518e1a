"""Agent types from outside the project: Python packages that declare Agent subclasses under
the ``qey.agents`` entry-point group, installed into the data directory (the root is
read-only on the device) and loaded at start, each in isolation."""
