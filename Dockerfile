# monitor as a container. With no configuration it runs the seed demo and logs its alert.
#   docker build -t monitor .            (or: --build-arg BASE_IMAGE=<a python 3.11+ image>)
#   docker run --rm -p 8080:8080 -v monitor-data:/data monitor
# The base must provide python 3.11+ with venv and pip, and nothing else (no curl: the health
# check is Python).
ARG BASE_IMAGE=python:3.12-slim

# --- build: a virtualenv with monitor and its dependencies ---------------------------------
FROM ${BASE_IMAGE} AS build
WORKDIR /src
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/monitor
# Dependencies first, from pyproject.toml alone (a stub package stands in for the code), so a
# change to the code rebuilds only the last, small layer.
COPY pyproject.toml ./
RUN mkdir monitor && touch monitor/__init__.py README.md \
 && /opt/monitor/bin/pip install --quiet . \
 && /opt/monitor/bin/pip uninstall --quiet --yes monitor \
 && rm -rf monitor README.md build
COPY README.md ./
COPY monitor ./monitor
RUN /opt/monitor/bin/pip install --quiet --no-deps . \
 && /opt/monitor/bin/python -m compileall -q /opt/monitor/lib

# --- runtime: the virtualenv, the demo configuration and seeds, a non-root user ------------
FROM ${BASE_IMAGE}
RUN groupadd --gid 10001 monitor \
 && useradd --uid 10001 --gid monitor --home-dir /app --no-create-home \
        --shell /usr/sbin/nologin monitor \
 && mkdir -p /app /data && chown monitor:monitor /data
COPY --from=build /opt/monitor /opt/monitor
WORKDIR /app
COPY config ./config
COPY seeds ./seeds
# The demo config keeps its SQLite file under data/, relative to /app: point it at the volume.
RUN ln -s /data /app/data
ENV PATH=/opt/monitor/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    MONITOR_CONFIG=/app/config/monitor.yaml \
    MONITOR_LISTEN=0.0.0.0:8080 \
    MONITOR_CACHE_DIR=/tmp/monitor-cache
VOLUME ["/data"]
EXPOSE 8080
USER 10001:10001
# GET /healthz on $MONITOR_LISTEN (a wildcard host asked on loopback): 200 while the scheduler
# runs and the database answers; a 503 or no answer raises, and python exits 1. Plain urllib:
# importing monitor would take a second or two of CPU at every check.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as u; h, _, p = os.environ.get('MONITOR_LISTEN', '0.0.0.0:8080').rpartition(':'); h = {'0.0.0.0': '127.0.0.1', '[::]': '[::1]'}.get(h, h); u.urlopen(f'http://{h}:{p}/healthz', timeout=4)"]
# monitor is PID 1 (exec form): SIGTERM from `docker stop` reaches it and it exits 0 within
# 10 s, leaving unfinished work to be picked up at the next start.
ENTRYPOINT ["monitor"]
CMD ["run"]
