import uvicorn

from portevoix_api.app import create_app
from portevoix_api.settings import ApiSettings

if __name__ == "__main__":
    settings = ApiSettings()
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
        access_log=False,
        # Open live-feed (SSE) connections must not hold a shutdown for long.
        timeout_graceful_shutdown=5,
    )
