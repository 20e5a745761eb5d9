"""The event types a retailer can subscribe to, one home for the list.

Apps announce them through the outbox (``workers.outbox.outbox_announce``) with a
payload carrying ``retailer_id``; :mod:`notifications.subscribers` fans them out.
``ping`` is sent only by the API's test call, to one endpoint.
"""

from __future__ import annotations

PAYLOAD_VERSION = 1

EVENT_TYPES: dict[str, str] = {
    "backup.completed": "A backup finished; its manifest is verified.",
    "backup.failed": "A backup stopped with an error.",
    "prices.changed": "Prices changed for one cause (a repricing job, a product write, a refresh...).",
    "endpoint.disabled": "One of the retailer's webhook endpoints was disabled after failing for too long.",
    "ping": "A test event, sent on request to one endpoint.",
}

# Topics fanned out from the outbox to webhooks (ping is sent directly, never fanned out).
FANNED_OUT = tuple(name for name in EVENT_TYPES if name != "ping")
# Topics that also mail the retailer's confirmed notification addresses (the unhealthy warning
# is mailed directly by notifications.services.health: it is not an event anyone subscribes to).
EMAILED = ("backup.completed", "backup.failed", "endpoint.disabled")
