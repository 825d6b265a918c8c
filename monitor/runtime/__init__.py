"""Running: the daemon, its wiring from settings and rules, metrics."""
