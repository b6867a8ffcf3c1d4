# syntax=docker/dockerfile:1
# Porte-Voix API (REST, SSE, /metrics). Build from the repository root:
#   docker build -f deploy/docker/api.Dockerfile -t porte-voix/api .
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
RUN python -m venv /opt/venv
COPY pyproject.toml README.md ./
COPY portevoix ./portevoix
COPY services ./services
RUN /opt/venv/bin/pip install --no-cache-dir .

FROM ${PYTHON_IMAGE}
RUN groupadd --system --gid 10001 portevoix \
    && useradd --system --uid 10001 --gid portevoix --no-create-home --shell /usr/sbin/nologin portevoix
COPY --from=build /opt/venv /opt/venv
# The API serves docs/asyncapi/*.json from <install prefix>/lib/docs/asyncapi when installed
# from a wheel (portevoix_api.app.ASYNCAPI_DIR is three levels above the package).
COPY docs/asyncapi /opt/venv/lib/docs/asyncapi
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PORTEVOIX_HOST=0.0.0.0 \
    PORTEVOIX_PORT=8080
USER 10001:10001
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/v1/health' % os.environ.get('PORTEVOIX_PORT', '8080'), timeout=4)"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["python", "-m", "portevoix_api"]
