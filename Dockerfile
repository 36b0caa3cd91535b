# syntax=docker/dockerfile:1
#
# One image for every Planboard process:
#   planboard serve | relay | worker --group NAME | migrate | backup | restore   (ENTRYPOINT planboard)
#   planboard-operator                                     (the chart's operator Deployment sets
#                                                           `command: ["planboard-operator"]`)
# Build (needs a Docker engine or BuildKit):  docker build -t planboard:dev .
# See docs/deploy.md.

# Exact version tag: bump deliberately (the builder and the runtime must use the same
# Python, since the virtualenv's interpreter is a symlink into /usr/local).
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

# ---------------------------------------------------------------------------- builder
FROM ${PYTHON_IMAGE} AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PYTHON=/usr/local/bin/python3.11 \
    UV_PROJECT_ENVIRONMENT=/opt/planboard/venv

# uv, the version the Makefile pins.
RUN pip install --no-cache-dir uv==0.13.9

WORKDIR /src

# Dependencies first (a layer cached until uv.lock changes): runtime dependencies only,
# from the lock file, no dev extras.
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-dev --no-install-project --no-editable

# Then the code, installed into the same venv as a regular (non-editable) package.
COPY service/ service/
COPY operator/ operator/
RUN uv sync --frozen --no-dev --no-editable

# ---------------------------------------------------------------------------- runtime
FROM ${PYTHON_IMAGE} AS runtime

LABEL org.opencontainers.image.title="planboard" \
      org.opencontainers.image.description="Planboard API, relay, workers and operator" \
      org.opencontainers.image.source="https://github.com/planboard/planboard" \
      org.opencontainers.image.licenses="Apache-2.0"

# A fixed numeric non-root user (the chart's securityContext uses the same UID/GID).
RUN groupadd --system --gid 10001 planboard \
 && useradd --system --uid 10001 --gid 10001 --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin planboard

# Only the virtualenv (it holds the installed code); owned by root, read-only for the app.
COPY --from=builder /opt/planboard/venv /opt/planboard/venv

ENV PATH=/opt/planboard/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PLANBOARD_ENV=production \
    PLANBOARD_HOST=0.0.0.0 \
    PLANBOARD_PORT=8080

USER 10001:10001
WORKDIR /tmp
EXPOSE 8080

# For `docker run` of the API (Kubernetes ignores HEALTHCHECK and uses the probes the
# operator sets). Python, because the slim image has no curl.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('PLANBOARD_PORT', '8080') + '/healthz', timeout=4)"]

ENTRYPOINT ["planboard"]
CMD ["serve"]
