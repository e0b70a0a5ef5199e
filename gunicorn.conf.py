"""gunicorn settings for consumer-api: ``gunicorn -c gunicorn.conf.py`` from the repository
root. The settings themselves live in the package (``consumer_api/gunicorn_conf.py``), so
that ``consumer-api serve`` finds them wherever the package is installed."""
from consumer_api.gunicorn_conf import *  # noqa: F401,F403
