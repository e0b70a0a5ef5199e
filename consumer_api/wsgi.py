"""The WSGI entry point gunicorn loads (``consumer_api.wsgi:app``), configured from the
environment. Importing it opens the data directory: import it only in the serving process."""
from consumer_api.app import create_app

app = create_app()
