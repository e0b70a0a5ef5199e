"""gunicorn settings for consumer-api (``gunicorn -c gunicorn.conf.py``).

One worker process: the logs, sessions and groups live in it. ``gthread`` with many threads:
each waiting long-poll holds a thread. ``CONSUMER_API_BIND`` and ``CONSUMER_API_THREADS``
override the address and the thread count; command-line flags (``--bind``) override all.
"""
import os

wsgi_app = "consumer_api.wsgi:app"
bind = os.environ.get("CONSUMER_API_BIND", "127.0.0.1:8080")
worker_class = "gthread"
workers = 1  # the state lives in the worker; never more than one
threads = int(os.environ.get("CONSUMER_API_THREADS", "64"))
# A long-poll may wait 300 s; gthread's timeout is a worker heartbeat, not a request limit,
# but keep it above the longest poll anyway.
timeout = 330
graceful_timeout = 30
keepalive = 75
max_requests = 0  # never recycle the worker: it holds the state
preload_app = False  # open the data directory in the worker, after the fork
# gunicorn's control socket lives in ~/.gunicorn and would clash between two servers
control_socket_disable = True


def post_worker_init(worker):
    """Start background threads in the worker that serves requests."""
    from consumer_api.app import start_background
    start_background(worker.wsgi)


def worker_exit(server, worker):
    """Flush and close the logs when the worker stops."""
    from consumer_api.app import shutdown
    app = getattr(worker, "wsgi", None)
    if app is not None:
        shutdown(app)
