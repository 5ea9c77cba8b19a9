from tests.engine.service_fixtures import celery_workers, fake_api

__all__ = ["celery_workers", "fake_api"]
