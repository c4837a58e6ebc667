"""The store decides what is new. It inserts items and returns only the new or changed ones;
it writes alerts and their deliveries in the caller's transaction; it keeps per-feed state
(validators, health, next due time) and the delivery outbox. All of monitor's SQL is here
(and the engine and schema in db.py): the CLI, the endpoint and the metrics call `views`.

Every function takes an open Session and does not commit (except where it says so: claims
are committed at once, so other processes see them): the orchestrator owns the transaction,
so an item and the alerts it caused are committed together or not at all.

Claiming (feeds to poll, deliveries to send) is an optimistic UPDATE ... WHERE the row is
still due, which moves the due time forward by a lease. One process wins each row on SQLite
and PostgreSQL alike; a process that dies mid-work leaves the row due again once the lease
expires, so another process (or the same one after restart) picks it up.

    feeds.py    configured feeds, due and claimed feeds, the outcome of each poll
    items.py    new and changed items, tombstones, paging through stored items
    alerts.py   alerts (one per rule and item, and per rule and story) and their deliveries
    health.py   changes of a feed's health state and their deliveries
    outbox.py   due deliveries, claims, the outcome of each attempt
    rules.py    when each version of a rule became active
    stories.py  the story window's index (members, LSH band keys)
    views.py    read-only queries for cli, server and metrics
"""

from monitor.store.alerts import (
    NewAlert,
    add_alerts,
    held_back_now,
    hold_back,
    last_alert_at,
    new_alert_id,
    write_alerts,
)
from monitor.store.feeds import (
    FeedClaim,
    FeedRow,
    claim_feeds,
    get_feed,
    load_feeds,
    record_failure,
    record_success,
    record_unproven,
    release_feed,
    save_feeds,
    sync_feeds,
)
from monitor.store.health import (
    add_health_change,
    health_changes,
    health_message,
    health_messages,
    new_health_id,
)
from monitor.store.items import (
    StoredItem,
    item_data,
    items_since,
    purge_batch,
    unseen_or_changed,
    upsert_items,
    upsert_many,
)
from monitor.store.outbox import (
    Claimed,
    alert_message,
    claim,
    due_deliveries,
    mark_failed,
    mark_sent,
    messages_sent_since,
    pending_deliveries,
    release_deliveries,
    requeue_delivery,
)
from monitor.store.rules import activate_rules, mark_backfilled
from monitor.store.stories import item_stories
from monitor.store.stories import purge as purge_stories
from monitor.store.views import AlertRecord, Snapshot, feeds_by_id, recent_alerts, snapshot

__all__ = [
    "AlertRecord",
    "Claimed",
    "FeedClaim",
    "FeedRow",
    "NewAlert",
    "Snapshot",
    "StoredItem",
    "activate_rules",
    "add_alerts",
    "add_health_change",
    "alert_message",
    "claim",
    "claim_feeds",
    "due_deliveries",
    "feeds_by_id",
    "get_feed",
    "health_changes",
    "health_message",
    "health_messages",
    "held_back_now",
    "hold_back",
    "item_data",
    "item_stories",
    "items_since",
    "last_alert_at",
    "load_feeds",
    "mark_backfilled",
    "mark_failed",
    "mark_sent",
    "messages_sent_since",
    "new_alert_id",
    "new_health_id",
    "pending_deliveries",
    "purge_batch",
    "purge_stories",
    "recent_alerts",
    "record_failure",
    "record_success",
    "record_unproven",
    "release_deliveries",
    "release_feed",
    "requeue_delivery",
    "save_feeds",
    "snapshot",
    "sync_feeds",
    "unseen_or_changed",
    "upsert_items",
    "upsert_many",
    "write_alerts",
]
