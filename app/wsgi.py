import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "app.settings")
application = get_wsgi_application()

from workers.broker_config import broker_config_enforce  # noqa: E402 - needs the settings loaded above

broker_config_enforce("web")  # a web that answers 202 for work the broker would lose must not start
