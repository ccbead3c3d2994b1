# liqmon daemon image: `docker compose up -d` (see compose.yaml and README "Running as a service").
# Build context: this checkout (.dockerignore keeps node_modules, venvs, caches and databases out).
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY monitor ./monitor
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
LABEL org.opencontainers.image.title="liqmon" \
      org.opencontainers.image.description="Liquidation-threshold monitor for lending protocols on EVM chains"
RUN useradd --system --uid 10001 --home-dir /data --create-home --shell /usr/sbin/nologin liqmon
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
# the database lives on the volume; the config is mounted read-only at /etc/liqmon/config.yaml
VOLUME ["/data"]
WORKDIR /data
USER 10001
ENV PYTHONUNBUFFERED=1 \
    LIQMON_METRICS_HOST=0.0.0.0
EXPOSE 9464
HEALTHCHECK --interval=60s --timeout=5s --start-period=120s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9464/metrics', timeout=4)"]
ENTRYPOINT ["liqmon"]
CMD ["run", "--config", "/etc/liqmon/config.yaml"]
