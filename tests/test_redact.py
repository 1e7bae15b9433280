"""URLs shown to people carry no password and no secret query value."""

import pytest

from monitor.redact import redact_url


@pytest.mark.parametrize(("url", "shown"), [
    ("http://ops:s3cret@127.0.0.1:8001/webhook-status", "http://ops:***@127.0.0.1:8001/webhook-status"),
    ("postgresql://monitor:pw@db:5432/adw?sslmode=require&password=pw2",
     "postgresql://monitor:***@db:5432/adw?sslmode=require&password=***"),
    ("http://svc/status?api_key=abc&X-Amz-Signature=f00&page=2", "http://svc/status?api_key=***&X-Amz-Signature=***&page=2"),
    ("http://svc/status?access_token=abc#top", "http://svc/status?access_token=***#top"),
    ("http://svc:8001/health", "http://svc:8001/health"),
    ("sqlite:////var/lib/adw/db/database.db?mode=ro", "sqlite:////var/lib/adw/db/database.db?mode=ro"),
    ("sqlite:///db.sqlite?password=x", "sqlite:///db.sqlite?password=***"),
    ("http://[::1/health?token=abc", "(unreadable URL)"),
])
def test_secrets_are_masked_and_the_rest_kept(url, shown):
    assert redact_url(url) == shown
