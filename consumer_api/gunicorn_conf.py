"""gunicorn settings for consumer-api (loaded by ``gunicorn.conf.py`` and ``consumer-api serve``).

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
# gthread serves at most worker_connections connections and keeps idle ones alive only
# while connections exceed threads: leave room for twice as many as there are threads.
worker_connections = max(1000, 2 * threads)
# A long-poll may wait 300 s; gthread's timeout is a worker heartbeat, not a request limit,
# but keep it above the longest poll anyway.
timeout = 330
graceful_timeout = 30
keepalive = 75
max_requests = 0  # never recycle the worker: it holds the state
preload_app = False  # open the data directory in the worker, after the fork
# gunicorn's control socket lives in ~/.gunicorn and would clash between two servers
control_socket_disable = True
# The worker touches its heartbeat file on every turn of its event loop: on a tmpfs that is
# a cheap in-memory update, on a disk file system a journalled metadata write (measured:
# ~8% of the worker's time under a produce load).
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None


def post_worker_init(worker):
    """Start background threads in the worker that serves requests."""
    from consumer_api.app import start_background
    _throttle_heartbeat(worker)
    _drain_on_sigterm(worker)
    start_background(worker.wsgi)


def _drain_on_sigterm(worker):
    """On SIGTERM, before gunicorn stops accepting and waits for the requests in flight:
    answer every waiting long-poll now and refuse new work (503), so the graceful stop takes
    milliseconds, not the longest poll. The logs close in worker_exit, after the requests."""
    import signal
    import threading

    from consumer_api.app import begin_shutdown
    stop = worker.handle_exit

    def handle_exit(sig, frame):
        threading.Thread(target=begin_shutdown, args=(worker.wsgi,), name="drain",
                         daemon=True).start()
        stop(sig, frame)

    signal.signal(signal.SIGTERM, handle_exit)
    signal.siginterrupt(signal.SIGTERM, False)  # as gunicorn had it: no EINTR in requests


def _throttle_heartbeat(worker, every_s=1.0):
    """gthread touches its heartbeat file (an ``utime`` syscall) on every turn of its event
    loop, i.e. a few times per request: ~100 us of a ~650 us trivial request on this
    machine. The arbiter only needs a sign of life within ``timeout`` (330 s), so touch it
    at most once a second."""
    import time
    touch, last = worker.notify, [0.0]

    def notify():
        now = time.monotonic()
        if now - last[0] >= every_s:
            last[0] = now
            touch()

    worker.notify = notify


def worker_exit(server, worker):
    """Flush and close the logs when the worker stops."""
    from consumer_api.app import shutdown
    app = getattr(worker, "wsgi", None)
    if app is not None:
        shutdown(app)
