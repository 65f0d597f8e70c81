#!/usr/bin/env bash
# Download, on a machine with pip and the package index, the wheels that byg needs on the GPU device machine
# beyond what its image holds (torch, transformers, peft, accelerate, typer, rich, tensorboard are there;
# diffusers, pydantic, importlib-metadata and tomli-w are not; typing-extensions is carried for the version
# pydantic needs). Python 3.12, x86-64. Writes them into .whl/ (git-ignored).
set -euo pipefail
cd "$(dirname "$0")/../.."
platforms=()
for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux1_x86_64; do
  platforms+=(--platform "$p")
done
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp "${platforms[@]}" \
  -d .whl diffusers==0.42.1 pydantic==2.14.4 pydantic-core==2.50.5 annotated-types==0.8.0 \
  typing-inspection==0.4.5 typing-extensions==4.16.0 importlib-metadata==10.2.0 tomli-w==1.2.0
ls -l .whl
