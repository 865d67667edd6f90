"""The Celery app, and how its processes behave when the broker goes away.

A worker must outlive a broker (Redis) outage of any length and go on consuming when the
broker is back; a web request must never hang on a dead broker. What makes that so:

- ``broker_connection_max_retries=None``: the consumer reconnects forever (the default,
  100 attempts with a growing interval, gives up after roughly ten minutes and the worker
  exits). ``broker_connection_retry_on_startup`` likewise for a broker that is not up yet.
- ``worker_cancel_long_running_tasks_on_connection_loss=False``, stated explicitly (it
  silences the deprecation warning printed on every connection loss): a delivery does not
  need the broker while it runs (it checkpoints in the database) and goes on during the
  outage. Its message may be delivered again afterwards; the lease makes that a no-op.
- Publishing gives up after a few quick attempts (``task_publish_retry_policy``): the
  caller logs it and the scheduler's watchdog enqueues the delivery again later
  (deliveries.services.delivery_requeue_stalled), so nothing waits on the broker.
- Redis socket timeouts and health checks: a half-open connection (Redis killed, host
  unreachable) is noticed in seconds instead of hanging in a blocking read.
- ``config.broker``: the Redis transport (``redis://``) with a guard against a kombu bug
  that otherwise kills the worker when Redis goes away while a task runs (see there).
- The worker process itself is supervised (docker compose ``restart: unless-stopped``,
  ``scripts/supervise.py`` under ``make run``), so even a crash of Celery itself ends in a
  new worker rather than in deliveries nobody runs.
"""

import os

from celery import Celery
from kombu.transport import TRANSPORT_ALIASES

# redis:// URLs use the guarded transport (config.broker); logs still say redis://.
TRANSPORT_ALIASES["redis"] = "config.broker:Transport"

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("audiences")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.update(
    broker_connection_retry=True,
    broker_connection_retry_on_startup=True,
    broker_connection_max_retries=None,
    broker_connection_timeout=5,
    worker_cancel_long_running_tasks_on_connection_loss=False,
    task_publish_retry=True,
    task_publish_retry_policy={
        "max_retries": 3,
        "interval_start": 0,
        "interval_step": 0.5,
        "interval_max": 1,
    },
)


@app.on_after_configure.connect
def _redis_transport_options(sender: Celery, **kwargs: object) -> None:
    if not str(sender.conf.broker_url or "").startswith(("redis://", "rediss://")):
        return
    sender.conf.broker_transport_options = {
        "socket_timeout": 10,
        "socket_connect_timeout": 5,
        "socket_keepalive": True,
        "health_check_interval": 10,
        "retry_on_timeout": True,
        # Redelivery of an unacknowledged message (acks_late) after this long: above any
        # real delivery's run time; a redelivered message finds the lease held and stops.
        "visibility_timeout": 6 * 3600,
        **sender.conf.broker_transport_options,
    }


app.autodiscover_tasks()
