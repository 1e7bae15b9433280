"""The console's own history: each channel's summary figures over time, for sparklines and trends.

``series`` says which figures are kept per channel and how each is read from a channel's
state; ``window`` holds the last slots in memory (pages read them on every render);
``store`` keeps them in a SQLite file of the console's own (fine points for two days,
hourly after that, pruned after ``[history] days``); ``recorder`` samples the broker's
current states every ``[history] step`` seconds; ``api`` serves
``GET /api/v1/<channel>/history``.
"""
