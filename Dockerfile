# aec: the aecd REST daemon, the aec-train trainer and the aec file tool in one small image.
#
#   docker build -t aec .
#   docker run -p 8080:8080 aec                       # serves every model in /models
#   docker run -p 8080:8080 -v "$PWD/models:/models" aec   # your folder; docker kill -s HUP reloads it
#   docker run -v "$PWD/photos:/data" -v "$PWD/models:/models" aec \
#       aec-train --data /data --out /models/x.safetensors
#   docker run -v "$PWD:/w" aec aec compress /w/photo.jpg -q 60 -o /w/photo.aec   # the photo codec
#
# More in docker/README.md (compose with a load balancer, Kubernetes).
# Every stage is FROM debian:bookworm-slim (CI builds it from a locally made
# base image; see tests/container/run.sh).
#
# Build arguments:
#   AEC_RUN_TESTS=1   run the ctest suite in the build stage (0 skips it).
#                     Tests that need ../shared (photos, PyTorch vectors)
#                     skip themselves; the rest, unit and HTTP integration
#                     tests, must pass or the build fails.
#   AEC_CTEST_ARGS=   extra ctest arguments, e.g. "-E test_stress" or "-L unit".
#   AEC_JOBS=2        parallel compile and test jobs.

# ---------------------------------------------------------------- build
FROM debian:bookworm-slim AS build
ARG DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      build-essential cmake pkg-config libopenblas-dev libcjson-dev libstb-dev \
      libmicrohttpd-dev libcurl4-openssl-dev python3 \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /src
# Only what the build reads, so that a new model (models/) or a docs change
# does not invalidate the compiled layers.
COPY CMakeLists.txt openapi.yaml ./
COPY cmake/ cmake/
COPY include/ include/
COPY src/ src/
COPY bench/ bench/
COPY tests/ tests/

ARG AEC_JOBS=2
# aecd's built-in default model folder is where the runtime stage puts it;
# AEC_MODELS (set below) says the same and can be overridden at `docker run`.
RUN cmake -S . -B build -DCMAKE_BUILD_TYPE=Release \
      -DAEC_DEFAULT_MODELS=/models \
      -DAEC_SHARED_DIR=/nonexistent/shared \
 && cmake --build build -j "$AEC_JOBS"

ARG AEC_RUN_TESTS=1
ARG AEC_CTEST_ARGS=
RUN if [ "$AEC_RUN_TESTS" = 1 ]; then \
      ctest --test-dir build --output-on-failure -j "$AEC_JOBS" --timeout 600 $AEC_CTEST_ARGS; \
    else echo "AEC_RUN_TESTS=$AEC_RUN_TESTS: tests skipped"; fi

RUN cmake --install build --prefix /opt/aec --strip

# ---------------------------------------------------------------- runtime
FROM debian:bookworm-slim
ARG DEBIAN_FRONTEND=noninteractive
# Runtime libraries only: OpenBLAS (pthread flavour, as built against; it
# brings libgfortran5), cJSON, stb_image, libmicrohttpd. (No libgomp1: the
# engine uses its own pthreads, not OpenMP; the ldd check below fails the
# build if a library is ever missing.)
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      libopenblas0-pthread libcjson1 libstb0 libmicrohttpd12 \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/apt/* /var/log/dpkg.log

# A fixed numeric uid/gid, so that Kubernetes' runAsNonRoot can verify it
# and host directories can be chowned to it (docker/README.md).
RUN groupadd --system --gid 10001 aec \
 && useradd --system --uid 10001 --gid 10001 --no-create-home \
      --home-dir /nonexistent --shell /usr/sbin/nologin aec

COPY --from=build /opt/aec/bin/aecd /opt/aec/bin/aec-train /opt/aec/bin/aec /usr/local/bin/
RUN for b in /usr/local/bin/aecd /usr/local/bin/aec-train /usr/local/bin/aec; do \
      if ldd "$b" | grep 'not found'; then echo "$b: runtime library missing" >&2; exit 1; fi; \
    done
# The shipped models. A folder from the host: -v "$PWD/models:/models"
# (this hides the baked ones); -e AEC_DEFAULT_MODEL=NAME picks the default.
COPY models/ /models/

ENV AEC_HOST=0.0.0.0 \
    AEC_MODELS=/models
USER 10001:10001
EXPOSE 8080
STOPSIGNAL SIGTERM
# aecd --check-health is a built-in loopback HTTP client (no curl in the image).
HEALTHCHECK --interval=15s --timeout=6s --start-period=30s --retries=3 \
  CMD ["aecd", "--check-health", "http://127.0.0.1:8080/healthz"]
# Exec form: aecd is PID 1 and receives docker stop's SIGTERM itself; it
# stops accepting, drains in-flight requests (--shutdown-timeout, 10 s) and
# exits 0. `docker run IMAGE aec-train ...` replaces this command.
CMD ["aecd"]
