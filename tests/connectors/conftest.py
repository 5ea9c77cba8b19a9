from tests.engine.service_fixtures import fake_api

__all__ = ["fake_api"]
