"""Per-connection facts: the frozen record the diagnosis and the reports read."""
