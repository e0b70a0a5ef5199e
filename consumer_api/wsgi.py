"""The WSGI entry point gunicorn loads (``consumer_api.wsgi:app``), configured from the
environment. Importing it opens the data directory: import it only in the serving process."""
from consumer_api.app import create_app
from consumer_api.config import Config
from consumer_api.logs import configure

config = Config.from_env()
configure(config)
app = create_app(config, defer_open=True)
