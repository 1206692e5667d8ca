# Image of Warden's exporter and enforcer; deploy/docker-compose.yml picks
# the program with `command`. Build from the repository root:
#   docker build -t container-warden:0.1.0 .
FROM python:3.11-slim

# XDG_RUNTIME_DIR is where gunicorn puts its control socket, because the
# warden user has no home folder.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    XDG_RUNTIME_DIR=/tmp

WORKDIR /src
COPY pyproject.toml README.md ./
COPY exporter ./exporter
COPY enforcer ./enforcer
COPY alerts ./alerts
RUN pip install . && rm -rf /src

# An unprivileged user. Access to the Docker API comes from membership of
# the socket's group, added at run time (group_add in Compose).
RUN useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin warden \
    && mkdir -p /var/lib/warden \
    && chown warden /var/lib/warden
USER 10001
WORKDIR /var/lib/warden

EXPOSE 9648 9649
CMD ["warden-exporter"]
