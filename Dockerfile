# kmop-docs worker image: Debian's LibreOffice and uno, the project in a virtualenv.
FROM debian:bookworm-slim

RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      python3 python3-venv python3-uno libreoffice-writer-nogui poppler-utils \
      fonts-dejavu-core fonts-liberation2 fonts-noto-core fonts-noto-cjk tzdata ca-certificates \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY pyproject.toml README.md ./
COPY kmop kmop
COPY workers workers
COPY templates templates
COPY signing signing
COPY storage storage
COPY conversion conversion
COPY workflow workflow
COPY api api
COPY index index
RUN python3 -m venv /opt/kmop && /opt/kmop/bin/pip install --no-cache-dir . \
 && useradd --create-home --uid 10001 kmop
ENV PATH=/opt/kmop/bin:$PATH KMOP_UNO_PYTHON=/usr/bin/python3
USER kmop
CMD ["kmop", "worker"]
