# monitor as a container. With no configuration it runs the seed demo and logs its alert.
ARG BASE_IMAGE=python:3.12-slim

FROM ${BASE_IMAGE} AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY monitor ./monitor
RUN python -m venv /opt/monitor \
 && /opt/monitor/bin/pip install --no-cache-dir --upgrade pip \
 && /opt/monitor/bin/pip install --no-cache-dir .

FROM ${BASE_IMAGE}
RUN useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin monitor \
 && mkdir -p /app /data && chown monitor /data
COPY --from=build /opt/monitor /opt/monitor
WORKDIR /app
COPY config ./config
COPY seeds ./seeds
ENV PATH=/opt/monitor/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    MONITOR_CONFIG=/app/config/monitor.yaml
# The demo config keeps its SQLite file under data/, relative to /app: point it at the volume.
RUN ln -s /data /app/data
VOLUME ["/data"]
USER monitor
ENTRYPOINT ["monitor"]
CMD ["run"]
