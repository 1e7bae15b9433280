"""Alerts: rules held for a time, sent once when they fire and once when they resolve.

``rules`` reads and validates the ``[[alerts]]`` rules of the config; ``fields`` lists the
summary figures of each channel that a threshold rule may watch; ``conditions`` finds what
breaches a rule in the channels' current states; ``engine`` decides when an alert fires,
repeats and resolves; ``store`` keeps the alerts' state and log in the history file, so a
restart does not send again; ``notify`` delivers the messages, queued and retried per URL,
and ``services`` is its Apprise side (one send, URLs kept secret).
"""
