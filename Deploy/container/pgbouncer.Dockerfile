# PgBouncer from Debian (bookworm ships 1.18) for Deploy/compose.yaml, in transaction mode.
#   docker build -f Deploy/container/pgbouncer.Dockerfile Deploy/container
FROM debian:bookworm-slim
# hadolint ignore=DL3008
RUN export DEBIAN_FRONTEND=noninteractive \
    && apt-get update -q \
    && apt-get install -y -q --no-install-recommends pgbouncer \
    && rm -rf /var/lib/apt/lists/*
COPY pgbouncer.ini /etc/pgbouncer/pgbouncer.ini
COPY pgbouncer-start.sh /usr/local/bin/pgbouncer-start
# The user Debian's package runs PgBouncer as.
# hadolint ignore=DL3066
USER postgres
EXPOSE 6432
ENTRYPOINT ["pgbouncer-start"]
