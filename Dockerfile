# One image for every gridmon process (bridge, workers, beat, API, Flower, simulator, migrate).
FROM python:3.11-slim
WORKDIR /app
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
COPY requirements.txt .
RUN pip install -r requirements.txt
COPY . .
RUN pip install --no-deps -e .
CMD ["gridmon", "--help"]
