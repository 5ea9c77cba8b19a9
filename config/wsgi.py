import os

from django.core.wsgi import get_wsgi_application

from config.collector import freeze_loaded_web_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.prod")
application = get_wsgi_application()
freeze_loaded_web_application()
