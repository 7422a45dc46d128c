# One image for every gridmon process (bridge, workers, beat, API, Flower, simulator, migrate).
# The processes run as the unprivileged user `gridmon` (uid 10001): the code under /app is
# root-owned and read-only to them; /data (GRIDMON_DATA_DIR) is theirs.
FROM python:3.11-slim
WORKDIR /app
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
COPY requirements.txt .
RUN pip install -r requirements.txt
COPY . .
# The detector's compiled loop is built once here, as root, into the read-only code tree, so a
# process does not compile it (10-20 s) at every start.
RUN pip install --no-deps -e . \
    && python -c "import numpy as np; from gridmon.detection.stream.run import run_device; from gridmon.detection.stream.state import DeviceState; run_device(DeviceState.new(['a']), np.arange(3.0), np.ones((3, 1)))" \
    && groupadd --system --gid 10001 gridmon \
    && useradd --system --uid 10001 --gid gridmon --home-dir /data --no-create-home --shell /usr/sbin/nologin gridmon \
    && mkdir -p /data && chown gridmon:gridmon /data
USER 10001:10001
CMD ["gridmon", "--help"]
