"""gunicorn settings for consumer-api (loaded by ``gunicorn.conf.py`` and ``consumer-api serve``).

One worker process: the logs, sessions and groups live in it. Its class
(:mod:`consumer_api.server.worker`) reads and writes on an event loop and runs the app on a
pool of ``threads`` threads, one per request being answered (a waiting long-poll holds one).
``CONSUMER_API_BIND`` and ``CONSUMER_API_THREADS`` override the address and the thread
count; command-line flags (``--bind``) override all.
"""
import os


def _settings_or_stop() -> None:
    """Check every CONSUMER_API_* setting in the master, before it binds: a wrong one stops
    the server with a message naming it instead of a worker that cannot boot."""
    from consumer_api.app import check_settings
    try:
        check_settings()
    except ValueError as exc:
        raise SystemExit(f"consumer-api cannot start: {exc}") from None


_settings_or_stop()

wsgi_app = "consumer_api.wsgi:app"
bind = os.environ.get("CONSUMER_API_BIND", "127.0.0.1:8080")
worker_class = "consumer_api.server.worker.Worker"
workers = 1  # the state lives in the worker; never more than one
threads = int(os.environ.get("CONSUMER_API_THREADS", "64"))
# connections held at once (a quiet one costs a socket and a few buffers, no thread)
worker_connections = max(1000, 2 * threads)
# A long-poll may wait 300 s; gunicorn's timeout is a worker heartbeat, not a request
# limit, but keep it above the longest poll anyway.
timeout = 330
graceful_timeout = 30
keepalive = 75
max_requests = 0  # never recycle the worker: it holds the state
preload_app = False  # open the data directory in the worker, after the fork
# gunicorn's control socket lives in ~/.gunicorn and would clash between two servers
control_socket_disable = True
# The worker touches its heartbeat file on every turn of its event loop: on a tmpfs that is
# a cheap in-memory update, on a disk file system a journalled metadata write.
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None


def post_worker_init(worker):
    """Cap the waiting polls by the worker's threads; start background threads in the
    worker that serves requests."""
    from consumer_api.app import configure_threads, start_background
    configure_threads(worker.wsgi, worker.cfg.threads)
    start_background(worker.wsgi)


def worker_exit(server, worker):
    """Flush and close the logs when the worker stops."""
    from consumer_api.app import shutdown
    app = getattr(worker, "wsgi", None)
    if app is not None:
        shutdown(app)
