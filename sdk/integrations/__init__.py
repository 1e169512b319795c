"""Built-in integrations: lifecycle-hook plugins for tools around a release (experiment trackers, ...).

Each is registered through the ``edgecraft`` entry-point group like any plugin, stays inert until
configured, and imports its tool lazily, so an integration whose extra is not installed costs nothing.
"""
