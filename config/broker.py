"""The Redis transport, with the one guard that keeps a worker alive when Redis goes away.

kombu 5.7 / celery 5.7, reproduced by tests/deliveries/test_faults.py with a production-style
worker (gossip, mingle and event heartbeats on): when the connection to Redis drops while
a task with ``acks_late`` runs, the consumer closes the old connection; closing its channel
restores the unacknowledged messages, which needs a new Redis client; by then the channel's
transport has let go of its connection parameters (``connection.client`` is ``None``), so
building the client raises ``AttributeError: 'NoneType' object has no attribute
'hostname'``. That is not one of the transport's connection errors, so Celery treats it as
"Unrecoverable error" and the worker exits (the same failure as kombu issues #582 and
#970: restoring through a channel whose connection is already gone).

A second path fails the same way: a task that finished during the outage acknowledges its
message through the old channel once the event loop runs again (``'NoneType' object has no
attribute 'client'``).

The guard: a channel whose connection is gone skips the restore, the acknowledgement or
the rejection, and says so. Nothing is
lost by skipping: the messages stay in Redis' unacknowledged set and Redis redelivers them
after the visibility timeout; when Redis itself lost its data, there is nothing to restore
anyway, and the delivery watchdog (deliveries.services.delivery_requeue_stalled) enqueues
every unfinished delivery again. A delivery message delivered twice finds its lease held or
its work done and stops.

Used for ``redis://`` brokers by config.celery (``broker_transport``).
"""

from __future__ import annotations

import logging
from typing import Any

from kombu.transport import redis

logger = logging.getLogger(__name__)


class QoS(redis.QoS):
    @property
    def _unacked(self) -> Any:
        return self._delivered  # an OrderedDict once the QoS exists (typed None in kombu)

    def _connection_gone(self) -> bool:
        transport = getattr(self.channel, "connection", None)
        return transport is None or getattr(transport, "client", None) is None

    def restore_unacked(self, client: Any = None) -> None:
        if client is None and self._connection_gone():
            logger.warning(
                "broker connection lost: %d unacknowledged message(s) are left for Redis to "
                "redeliver after the visibility timeout",
                len(self._unacked),
            )
            self._unacked.clear()
            return
        super().restore_unacked(client)

    def ack(self, delivery_tag: Any) -> None:
        # A task that finished during the outage acknowledges through the old channel.
        if self._connection_gone():
            logger.warning("broker connection lost: message %s left unacknowledged", delivery_tag)
            self._unacked.pop(delivery_tag, None)
            return
        super().ack(delivery_tag)

    def reject(self, delivery_tag: Any, requeue: bool = False) -> None:
        if self._connection_gone():
            logger.warning("broker connection lost: message %s left unacknowledged", delivery_tag)
            self._unacked.pop(delivery_tag, None)
            return
        super().reject(delivery_tag, requeue=requeue)


class Channel(redis.Channel):
    QoS = QoS


class Transport(redis.Transport):
    Channel = Channel
