# PiChat server for Azure App Service (Linux, custom container).
# Build: docker build -t pichat-backend .
# Run:   docker run -p 8080:8080 --env-file .env pichat-backend

FROM python:3.11-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY pichat_trio ./pichat_trio
RUN pip wheel --no-cache-dir --wheel-dir /wheels '.[azure-sql,speech]'

FROM python:3.11-slim-bookworm
# espeak-ng: offline text to speech; unixODBC + Microsoft ODBC Driver 18: Azure SQL;
# libssl3 and ca-certificates: the Azure Speech SDK's TLS.
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
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index --find-links /wheels 'pichat-trio[azure-sql,speech]' \
    && rm -rf /wheels \
    && useradd --create-home --uid 10001 pichat \
    && mkdir -p /home/pichat/data && chown pichat /home/pichat/data

USER pichat
WORKDIR /home/pichat/data
# App Service sends traffic to WEBSITES_PORT (set it to 8080) and keeps /home persistent.
ENV ENVIRONMENT=production \
    SERVER_HOST=0.0.0.0 \
    SERVER_PORT=8080 \
    DATABASE_URL=sqlite:////home/pichat/data/pichat.db \
    AUDIO_DIR=/home/pichat/data/audio \
    PYTHONUNBUFFERED=1
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=3s --start-period=20s \
    CMD python -c "import os, urllib.request; urllib.request.urlopen(f'http://127.0.0.1:{os.environ.get(\"SERVER_PORT\", \"8080\")}/healthz', timeout=2)"
# exec form: pichat is PID 1 and gets SIGTERM, so shutdown drains and closes with 1001.
CMD ["pichat", "serve"]
