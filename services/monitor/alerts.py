"""The monitor stage's drift alarms to the watchdog's webhook: the same signed, Slack-compatible
sender (services/watchdog.py, services/webhooks.py: https unless allowed, HMAC-signed bodies,
redirects never followed, the URL shown redacted), configured by RADSTREAM_MONITOR_WEBHOOK,
RADSTREAM_MONITOR_SECRET(_FILE) and RADSTREAM_MONITOR_WEBHOOK_ALLOW_HTTP."""

from __future__ import annotations

from radstream.services.watchdog import Alert, WebhookNotifier
from radstream.streams.config import Config
from radstream.streams.stages.monitor import MonitorStage

SECRET_ENV = "RADSTREAM_MONITOR_SECRET"


def wire_webhook(stage: MonitorStage, config: Config, secret: bytes) -> str:
    """Give the stage its webhook (config.monitor_webhook, signed with `secret`); the URL as shown
    (redacted). ValueError for a URL or secret the sender refuses."""
    notifier = WebhookNotifier(config.monitor_webhook, secret, allow_http=config.monitor_webhook_allow_http)
    stage.alert = lambda kind, group, text: notifier.notify(Alert(kind, group, None, text))
    stage.on_close.append(notifier.close)
    return notifier.shown_url
