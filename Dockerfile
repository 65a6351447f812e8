# cdc in a container: `docker build -t cdc .`, then `docker run cdc run --dsn-file ...`
# (see docker-compose.yml). The entrypoint is the `cdc` command; the user is not root.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN groupadd --system --gid 10001 cdc \
    && useradd --system --uid 10001 --gid cdc --home-dir /nonexistent --no-create-home \
       --shell /usr/sbin/nologin cdc

WORKDIR /src
COPY pyproject.toml README.md ./
COPY cdc ./cdc
RUN pip install . && rm -rf /src

WORKDIR /
USER cdc:cdc
EXPOSE 8080
STOPSIGNAL SIGTERM
ENTRYPOINT ["cdc"]
CMD ["--help"]
