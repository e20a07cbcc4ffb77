# The example AI service (examples/service/app.py) with pygate installed.
#
# Users: `docker compose build` (or `up`) builds it from python:3.11-slim with pip from PyPI.
# Offline (no registry, no index; see scripts/docker-images.sh): PYTHON_IMAGE names a local
# Debian base and PIP_SOURCES="--no-index --find-links /src/build/wheelhouse" installs from
# wheels downloaded on the host; the build then runs with --network none.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm
FROM ${PYTHON_IMAGE}
ARG PIP_SOURCES=""
COPY . /src
RUN python3 -m venv /opt/pygate \
 && /opt/pygate/bin/pip install --no-cache-dir --disable-pip-version-check $PIP_SOURCES /src \
 && mkdir -p /app /var/lib/pygate/state /var/lib/pygate/checkpoints \
 && cp /src/examples/service/app.py /app/app.py \
 && rm -rf /src \
 && chown -R 65534:65534 /var/lib/pygate
ENV PATH=/opt/pygate/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYGATE_AUDIT_DB=/var/lib/pygate/audit.db \
    PYGATE_STATE_DIR=/var/lib/pygate/state \
    SERVICE_HOST=0.0.0.0 \
    SERVICE_PORT=8000
WORKDIR /app
USER 65534:65534
EXPOSE 8000
HEALTHCHECK --interval=5s --timeout=3s --retries=3 \
  CMD ["python3", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ['SERVICE_PORT'], timeout=2)"]
CMD ["python3", "/app/app.py"]
