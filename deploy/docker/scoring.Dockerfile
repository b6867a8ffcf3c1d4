# syntax=docker/dockerfile:1
# Porte-Voix scoring worker. Build from the repository root:
#   docker build -f deploy/docker/scoring.Dockerfile -t porte-voix/scoring .
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
# A C compiler for mypyc, which compiles scoring's hot modules (portevoix/native.py); it stays in
# this stage: the runtime image gets the built extensions only.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
RUN python -m venv /opt/venv
COPY pyproject.toml README.md ./
COPY portevoix ./portevoix
COPY services ./services
# One wheel holds the four services; each image runs one of them. The hot modules are compiled
# in the installed package (a failed build fails the image: --strict), then mypy and setuptools,
# needed only to build, leave the venv.
RUN /opt/venv/bin/pip install --no-cache-dir ".[native]" \
    && /opt/venv/bin/python -m portevoix.native build --strict \
    && /opt/venv/bin/pip uninstall -y mypy setuptools

FROM ${PYTHON_IMAGE}
# Fixed numeric ids so Kubernetes can check runAsNonRoot without a passwd lookup.
RUN groupadd --system --gid 10001 portevoix \
    && useradd --system --uid 10001 --gid portevoix --no-create-home --shell /usr/sbin/nologin portevoix
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PORTEVOIX_METRICS_HOST=0.0.0.0 \
    PORTEVOIX_METRICS_PORT=9100
USER 10001:10001
EXPOSE 9100
# Liveness: the worker process answers on its metrics port (bound first thing at start-up).
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/metrics' % os.environ.get('PORTEVOIX_METRICS_PORT', '9100'), timeout=4)"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["python", "-m", "portevoix_scoring"]
