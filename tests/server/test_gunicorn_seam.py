"""What the worker (consumer_api/server/worker.py) takes from gunicorn, checked against the
installed gunicorn: a gunicorn upgrade that renames or drops any of it fails here, loudly,
instead of in a running server. The list mirrors the worker: keep them together."""
from __future__ import annotations

import configparser
import inspect
import pathlib

import gunicorn
from gunicorn.config import Config
from gunicorn.workers import base

from consumer_api.server.worker import Worker

#: base.Worker methods the worker overrides and calls through super()
OVERRIDDEN = ("init_process", "notify", "handle_exit", "run")
#: settings the worker reads from ``self.cfg``
SETTINGS = ("is_ssl", "worker_connections", "threads", "keepalive", "graceful_timeout")
#: attributes base.Worker sets that the worker reads or writes
ATTRIBUTES = ("alive", "ppid", "sockets", "cfg", "tmp")


def pinned_gunicorn() -> str:
    setup = configparser.ConfigParser()
    setup.read(pathlib.Path(__file__).parents[2] / "setup.cfg")
    for line in setup["options"]["install_requires"].split():
        if line.startswith("gunicorn=="):
            return line.split("==", 1)[1]
    raise AssertionError("gunicorn is not pinned in setup.cfg")


def test_the_installed_gunicorn_is_the_pinned_one():
    assert gunicorn.__version__ == pinned_gunicorn()


def test_the_worker_is_a_gunicorn_worker_overriding_what_base_still_has():
    assert issubclass(Worker, base.Worker)
    for name in OVERRIDDEN:
        assert callable(getattr(base.Worker, name, None)), f"base.Worker.{name} is gone"
        assert name in vars(Worker), f"the worker no longer overrides {name}"
    assert list(inspect.signature(base.Worker.handle_exit).parameters) == ["self", "sig", "frame"]
    assert list(inspect.signature(base.Worker.__init__).parameters) == [
        "self", "age", "ppid", "sockets", "app", "timeout", "cfg", "log"]


def test_the_settings_and_attributes_the_worker_uses_exist():
    cfg = Config()
    for name in SETTINGS:
        getattr(cfg, name)  # AttributeError names what is gone
    worker = Worker(0, 1, [], None, 30, cfg, log=None)
    try:  # ``wsgi`` is set by init_process through load_wsgi
        assert callable(getattr(base.Worker, "load_wsgi", None))
        for name in ATTRIBUTES:
            assert hasattr(worker, name), f"base.Worker no longer sets {name}"
        assert callable(worker.tmp.notify)
    finally:
        worker.tmp.close()


def test_the_worker_class_is_what_gunicorn_conf_names():
    import runpy
    conf = runpy.run_path(str(pathlib.Path(__file__).parents[2] / "gunicorn.conf.py"))
    assert conf["worker_class"] == "consumer_api.server.worker.Worker"
