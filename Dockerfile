# SegmentLens: the dashboard + JSON API under gunicorn (docs/container.md).
#
#   podman build -t segmentlens .                       (or: docker build -t segmentlens .)
#   podman run -p 8050:8050 -v segmentlens:/var/lib/segmentlens segmentlens
#
# Build arguments:
#   WITH_SPARK=1  adds the Spark extra: a Java 17 runtime and pyspark (requirements-spark.txt), for
#                 `python -m core train --engine spark` and the Spark master/worker of compose.yaml.
#   PIP_CERT      path of a CA bundle for pip, for builds behind a TLS-intercepting proxy; mount the
#                 file at build time (`podman build -v CA:CA:ro --build-arg PIP_CERT=CA`), it is never
#                 copied into the image. Empty (the default) everywhere else.
#
# Everything the app writes lives under one volume, /var/lib/segmentlens (models, accounts and
# audit log in models/, results cache, uploads and metrics in cache/); the rest of the filesystem
# can be read-only (`--read-only --tmpfs /tmp`).

# ---------------------------------------------------------------- build stage: the virtualenv
FROM debian:bookworm-slim AS build
ARG WITH_SPARK=0
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3 python3-venv \
 && rm -rf /var/lib/apt/lists/*
# The dependencies get their own layer: it is rebuilt only when a requirements file changes.
COPY requirements.txt requirements-spark.txt /tmp/requirements/
ARG PIP_CERT
# pip itself and the libraries' own test suites and C headers (about 130 MB) are not kept: the app
# never imports them. Only wheels are accepted (and pyspark's pure-Python sdist), so no compiler is
# needed (nor installed).
RUN set -eu; \
    if [ -z "${PIP_CERT:-}" ]; then unset PIP_CERT; fi; \
    python3 -m venv /opt/segmentlens; \
    extra=""; if [ "$WITH_SPARK" = 1 ]; then extra="-r /tmp/requirements/requirements-spark.txt --no-binary=pyspark --use-pep517"; fi; \
    /opt/segmentlens/bin/pip install --no-cache-dir --disable-pip-version-check --only-binary=:all: \
        -r /tmp/requirements/requirements.txt $extra; \
    /opt/segmentlens/bin/pip uninstall --yes --quiet pip; \
    find /opt/segmentlens/lib -depth -type d -name tests -exec rm -rf {} +; \
    rm -rf /opt/segmentlens/lib/python3*/site-packages/pyarrow/include /opt/segmentlens/lib/python3*/site-packages/pyarrow/src

# ---------------------------------------------------------------- final stage
FROM debian:bookworm-slim
ARG WITH_SPARK=0
LABEL org.opencontainers.image.title="SegmentLens" \
      org.opencontainers.image.description="Customer-segmentation dashboard and JSON API"
RUN set -eu; \
    packages="python3"; \
    if [ "$WITH_SPARK" = 1 ]; then packages="$packages openjdk-17-jre-headless procps"; fi; \
    apt-get update; \
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $packages; \
    apt-get clean; \
    rm -rf /var/lib/apt/lists/* /var/cache/apt/* /var/log/apt /var/log/dpkg.log /root/.cache; \
    echo 'segmentlens:x:10001:10001:SegmentLens:/var/lib/segmentlens:/usr/sbin/nologin' >> /etc/passwd; \
    echo 'segmentlens:x:10001:' >> /etc/group; \
    mkdir -p /var/lib/segmentlens/models /var/lib/segmentlens/cache /var/lib/segmentlens/data; \
    chown -R 10001:10001 /var/lib/segmentlens; \
    chmod 0750 /var/lib/segmentlens
COPY --from=build /opt/segmentlens /opt/segmentlens
WORKDIR /app
COPY . /app
RUN python3 -m compileall -q /app >/dev/null && chmod -R a+rX,go-w /app

ENV PATH=/opt/segmentlens/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/var/lib/segmentlens \
    SEGMENTLENS_MODELS=/var/lib/segmentlens/models \
    SEGMENTLENS_CACHE_DIR=/var/lib/segmentlens/cache \
    PORT=8050 \
    WEB_CONCURRENCY=2
USER 10001:10001
VOLUME ["/var/lib/segmentlens"]
EXPOSE 8050
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
    CMD ["python3", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/api/v1/health' % os.environ.get('PORT', '8050'), timeout=4)"]
# The Procfile's command: gunicorn binds 0.0.0.0:$PORT and starts $WEB_CONCURRENCY workers.
# The first start trains a model on the embedded sample (or $SEGMENTLENS_DATA), as scripts/run.sh does.
CMD ["gunicorn", "app:server", "--config", "gunicorn.conf.py"]
