"""The eight channel names of the wire contract, in dashboard order."""

CHANNEL_NAMES = (
    "queue",
    "adw-monitor",
    "system-status",
    "workflows",
    "routes",
    "workflow-history",
    "planned-features",
    "webhook-status",
)
