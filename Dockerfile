# One image for every Gatehouse process; the command picks which one runs:
#   gatehouse serve identity|rbac|tenancy|audit|proxmox_sync|gateway
#   gatehouse migrate && gatehouse setup-broker    (one-shot, before the processes)
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# slapd (with its argon2 module) and ldap-utils: the `directory` container runs
# `gatehouse directory`; the others do not use them.
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends slapd ldap-utils \
    && rm -rf /var/lib/apt/lists/*

# Only what the package is built from, so edits to tests or docs keep the layer cached.
WORKDIR /src
COPY pyproject.toml ./
COPY kernel ./kernel
COPY contracts ./contracts
COPY services ./services
COPY gateway ./gateway
COPY ops ./ops
RUN pip install . \
    && rm -rf /src \
    && useradd --system --uid 10001 --user-group --no-log-init \
               --home-dir /var/lib/gatehouse --create-home --shell /usr/sbin/nologin gatehouse

USER gatehouse
WORKDIR /var/lib/gatehouse
ENV GATEHOUSE_DATA_DIR=/var/lib/gatehouse

EXPOSE 8080
CMD ["gatehouse", "serve", "gateway"]
