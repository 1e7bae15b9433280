"""The demo workspace: a realistic ADW system that keeps changing, for a one-command first run."""
