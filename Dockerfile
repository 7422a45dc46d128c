# One image for every gridmon process (bridge, workers, beat, API, Flower, simulator, migrate).
# The processes run as the unprivileged user `gridmon` (uid 10001): the code under /app is
# root-owned and read-only to them; /data (GRIDMON_DATA_DIR) is theirs.
FROM python:3.11-slim
WORKDIR /app
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
COPY requirements.txt .
RUN pip install -r requirements.txt
COPY . .
RUN pip install --no-deps -e . \
    && groupadd --system --gid 10001 gridmon \
    && useradd --system --uid 10001 --gid gridmon --home-dir /data --no-create-home --shell /usr/sbin/nologin gridmon \
    && mkdir -p /data && chown gridmon:gridmon /data
USER 10001:10001
CMD ["gridmon", "--help"]
