# The code location image: `dagster api grpc` serving recsys_assets.definitions, also the image of every run
# and step pod (K8sRunLauncher, k8s_job_executor). One file, two variants:
#   docker build -t recsys-assets:cpu .                            # CPU PyTorch from PyTorch's CPU index
#   docker build -t recsys-assets:cuda --build-arg TORCH_VARIANT=cuda .   # PyPI's default (CUDA) PyTorch
# deploy/k8s/values.yaml points Dagster's Helm chart at it (README, "Production deployment").
ARG PYTHON_VERSION=3.11
FROM python:${PYTHON_VERSION}-slim

# cpu or cuda; the version must stay inside pyproject.toml's torch range (test_deploy_k8s.py checks it)
ARG TORCH_VARIANT=cpu
ARG TORCH_VERSION=2.13.0
# the project's extras the image installs (pyproject.toml's optional-dependencies)
ARG EXTRAS=postgres,k8s,celery,object-store

ENV PYTHONDONTWRITEBYTECODE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DAGSTER_HOME=/opt/dagster/dagster_home \
    MPLBACKEND=Agg

WORKDIR /opt/dagster/app
RUN mkdir -p "$DAGSTER_HOME" \
 && case "$TORCH_VARIANT" in \
      cpu) pip install --no-cache-dir "torch==${TORCH_VERSION}" --index-url https://download.pytorch.org/whl/cpu ;; \
      cuda) pip install --no-cache-dir "torch==${TORCH_VERSION}" ;; \
      *) echo "TORCH_VARIANT must be cpu or cuda, got ${TORCH_VARIANT}" >&2; exit 1 ;; \
    esac

# dependencies first, from pyproject.toml alone (a code change does not reinstall them), then the package
COPY pyproject.toml constraints.txt README.md ./
RUN python -c "import os, tomllib; p = tomllib.load(open('pyproject.toml', 'rb'))['project']; \
print('\n'.join(p['dependencies'] + [d for x in os.environ['EXTRAS'].split(',') \
for d in p['optional-dependencies'][x]]))" > /tmp/requirements.txt \
 && pip install --no-cache-dir -c constraints.txt -r /tmp/requirements.txt
COPY recsys_assets ./recsys_assets
RUN pip install --no-cache-dir --no-deps . \
 && python -c "import recsys_assets.definitions, torch; print('torch', torch.__version__)"

EXPOSE 3030
CMD ["dagster", "api", "grpc", "--host", "0.0.0.0", "--port", "3030", "--module-name", "recsys_assets.definitions"]
