"""The WSGI entry point: ``gunicorn -c gunicorn.conf.py wsgi:app``."""
from imagedata.app import create_app
from imagedata.server.maintenance import start_maintenance

app = create_app()
start_maintenance(app)
