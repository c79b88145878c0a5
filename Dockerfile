# PiChat server for Azure App Service (Linux, custom container).
# Build: docker build -t pichat-backend .
# Run:   docker run -p 8080:8080 --env-file .env pichat-backend
# The install steps below are run outside Docker by tests/test_dockerfile.py.

# The same pinned base for both stages: a rebuild next month gets the same Python.
FROM python:3.11.11-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY pichat_trio ./pichat_trio
# Only our own wheel here; its dependencies come from PyPI at the versions of constraints.txt.
# The requirement names the wheel's file, whatever its version.
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /dist . \
    && wheel="$(ls /dist/pichat_trio-*.whl)" \
    && echo "pichat-trio[azure-sql,speech,azure-monitor,redis] @ file://${wheel}" > /dist/requirements.txt

FROM python:3.11.11-slim-bookworm
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# espeak-ng: offline text to speech; unixODBC + Microsoft ODBC Driver 18: Azure SQL;
# libssl3 and ca-certificates: the Azure Speech SDK's TLS.
# Debian's versions are not pinned: the base image fixes the release (bookworm), and its
# security updates must reach the image; a pin would break the build at each of them.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        ca-certificates curl gnupg espeak-ng libodbc2 unixodbc libssl3 libasound2 \
    && curl -fsSL https://packages.microsoft.com/keys/microsoft.asc \
        | gpg --dearmor -o /usr/share/keyrings/microsoft-prod.gpg \
    && echo "deb [arch=amd64,arm64 signed-by=/usr/share/keyrings/microsoft-prod.gpg] https://packages.microsoft.com/debian/12/prod bookworm main" \
        > /etc/apt/sources.list.d/mssql-release.list \
    && apt-get update \
    && ACCEPT_EULA=Y apt-get install -y --no-install-recommends msodbcsql18 \
    && apt-get purge -y curl gnupg && apt-get autoremove -y \
    && rm -rf /var/lib/apt/lists/*
COPY constraints.txt /tmp/constraints.txt
COPY --from=build /dist /dist
RUN pip install --no-cache-dir -c /tmp/constraints.txt -r /dist/requirements.txt \
    && rm -rf /dist /tmp/constraints.txt \
    && groupadd --gid 10001 pichat \
    && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /var/lib/pichat pichat \
    && mkdir -p /var/lib/pichat && chown 10001:10001 /var/lib/pichat

# Numeric, so the platform can tell it is not root without reading /etc/passwd.
USER 10001:10001
WORKDIR /var/lib/pichat
# No SERVER_PORT here: App Service's WEBSITES_PORT (or PORT) picks the port, else 8080.
# SQLite in the container is for a quick try only (lost on restart; the server warns):
# production sets DB_* (Azure SQL) or DATABASE_URL.
ENV ENVIRONMENT=production \
    SERVER_HOST=0.0.0.0 \
    DATABASE_URL=sqlite:////var/lib/pichat/pichat.db \
    AUDIO_DIR=/var/lib/pichat/audio \
    PYTHONUNBUFFERED=1
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=3s --start-period=20s \
    CMD ["python", "-m", "pichat_trio.healthcheck"]
# exec form: pichat is PID 1 and gets SIGTERM, so shutdown drains and closes with 1001.
CMD ["pichat", "serve"]
