"""gunicorn settings for `make run` (Procfile), the Dockerfile and docker compose.

The access log names the path only: a query string can carry secrets (the one-time `code`
and `state` TikTok sends to /destinations/tiktok/callback/) and personal data, so neither
it nor the referrer (a full URL, query included) is written.
"""

accesslog = "-"
access_log_format = '%(h)s %(t)s "%(m)s %(U)s %(H)s" %(s)s %(b)s %(M)sms "%(a)s"'
