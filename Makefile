# knnd: kNN-Diffusion as small Unix filters.
#   make          build every tool into bin/
#   make check    build and run the whole test suite (plain and sanitizer builds)
#   make asan     build and run the suite under AddressSanitizer + UBSan
#   make deps     install the Debian packages everything needs
#   make bench    run the benchmarks in bench/
#   make demo     the main job: generated stickers and clothes for a list of
#                 prompts, from the default models (work/demo/sheet.png)
#   make default-models  retrain models/ from the pipelines (about 3.5 h on 2 cores)
#   make eval     the paper's claims measured at small scale (docs/results.md)
#   make CUDA=0   build without the CUDA parts even when nvcc is present

CC       ?= cc
CFLAGS   ?= -O2 -g
WARN     := -Wall -Wextra -Wno-missing-field-initializers
CPPFLAGS += -Ilib -D_GNU_SOURCE
# OpenMP parallelises the CPU backend's loops; OpenBLAS does its sgemm.
OMP      := -fopenmp
CXX      ?= c++
LDLIBS   := -lfaiss -lopenblas -licuuc -lpng -lz -lm -lpthread -lstdc++

BUILD    ?= build/release
BINDIR   ?= bin

# Debian packages: libraries the tools link, and what the tests and fuzzers use.
DEBS := libfaiss-dev libopenblas-dev libpng-dev libmsgpack-dev zlib1g-dev libicu-dev pkg-config \
        clang libclang-rt-14-dev libomp-dev python3 python3-msgpack python3-numpy python3-faiss dataset-fashion-mnist \
        fonts-noto-color-emoji unicode-data libharfbuzz-bin jq

# CUDA is an accelerator, never a requirement: built when nvcc is found.
NVCC ?= $(shell command -v nvcc 2>/dev/null || ls /usr/local/cuda/bin/nvcc 2>/dev/null)
CUDA ?= $(if $(NVCC),1,0)

TOOLS   := $(patsubst cmd/%.c,%,$(wildcard cmd/*.c))
LIB_SRC := $(wildcard lib/*/*.c lib/*/*/*.c)
LIB_CU  := $(wildcard lib/*/*.cu lib/*/*/*.cu)
# C++ only where a dependency has no C interface (Debian's FAISS ships no C API library).
LIB_CXX := $(wildcard lib/*/*.cpp)
LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/%.o) $(LIB_CXX:%.cpp=$(BUILD)/%.cpp.o)
ifeq ($(CUDA),1)
  CPPFLAGS += -DKNND_CUDA=1
  CUDA_HOME ?= $(patsubst %/bin/nvcc,%,$(NVCC))
  LIB_OBJ += $(LIB_CU:%.cu=$(BUILD)/%.cu.o)
  LDLIBS  += -L$(CUDA_HOME)/lib64 -Wl,-rpath,$(CUDA_HOME)/lib64 -lcublas -lcudart
endif
UNIT_SRC := $(wildcard tests/unit/*.c)
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
FUZZ_SRC := $(wildcard tests/fuzz/*.c)

.PHONY: FORCE all tests check asan asan-build fuzz fuzz-build deps bench clean demo default-models eval
.DEFAULT_GOAL := all
# Keep objects of tools and tests between runs.
.SECONDARY:

# Missing Debian packages are installed before anything is built.
ifeq ($(filter deps clean,$(MAKECMDGOALS)),)
  MISSING_DEBS := $(shell command -v dpkg >/dev/null && for p in $(DEBS); do \
                    dpkg -s $$p >/dev/null 2>&1 || echo $$p; done)
  ifneq ($(strip $(MISSING_DEBS)),)
    $(info knnd: missing Debian packages: $(MISSING_DEBS); running make deps)
    DEPS_RC := $(shell $(MAKE) --no-print-directory deps >&2; echo $$?)
    ifneq ($(DEPS_RC),0)
      $(error make deps failed)
    endif
  endif
endif

all: $(TOOLS:%=$(BINDIR)/%)

# The pipelines run the tools built here; OpenMP threads sleep while they
# wait, so the tools of one pipe share the cores instead of spinning.
PIPELINE_ENV := OMP_WAIT_POLICY=passive
demo: all
	$(PIPELINE_ENV) $(MAKE) --no-print-directory -f pipelines/demo.mk KNND_BIN=$(CURDIR)/$(BINDIR)

eval: all
	$(PIPELINE_ENV) $(MAKE) --no-print-directory -f pipelines/eval.mk KNND_BIN=$(CURDIR)/$(BINDIR)

default-models: all
	$(PIPELINE_ENV) $(MAKE) --no-print-directory -f pipelines/models.mk KNND_BIN=$(CURDIR)/$(BINDIR)
	mkdir -p models
	for m in clip vqgan diffuse; do cp work/models/$$m.safetensors models/$$m.safetensors.tmp && \
	  mv -f models/$$m.safetensors.tmp models/$$m.safetensors; done

deps:
	@SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	 $$SUDO apt-get update -qq && \
	 DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $(DEBS)

$(BUILD)/libknnd.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

# Objects depend on the flags they were built with, so that changing CC,
# CFLAGS or CUDA rebuilds instead of mixing stale objects.
FLAGS_LINE := $(CC) $(CPPFLAGS) $(CFLAGS) $(OMP) $(LDFLAGS) CUDA=$(CUDA)
$(BUILD)/flags: FORCE
	@mkdir -p $(dir $@)
	@[ "$$(cat $@ 2>/dev/null)" = "$(FLAGS_LINE)" ] || echo "$(FLAGS_LINE)" > $@
FORCE:

$(BUILD)/%.o: %.c $(BUILD)/flags
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(OMP) $(WARN) -MMD -MP -c -o $@ $<

$(BUILD)/%.cpp.o: %.cpp $(BUILD)/flags
	@mkdir -p $(dir $@)
	$(CXX) $(CPPFLAGS) $(CXXFLAGS) -O2 -g $(OMP) -Wall -Wextra -MMD -MP -c -o $@ $<

$(BUILD)/%.cu.o: %.cu $(BUILD)/flags
	@mkdir -p $(dir $@)
	$(NVCC) -O2 -Ilib -DKNND_CUDA=1 -Xcompiler -Wall,-Wextra,-fPIC $(NVCCFLAGS) -c -o $@ $<

$(BINDIR)/%: $(BUILD)/cmd/%.o $(BUILD)/libknnd.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(OMP) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/tests/%: $(BUILD)/tests/unit/%.o $(BUILD)/libknnd.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(OMP) $(LDFLAGS) -o $@ $^ $(LDLIBS) $(UNIT_LDLIBS_$*)

# Benchmark helper programs (bench/*.c), built like the tools.
$(BUILD)/bench/%: $(BUILD)/bench/%.o $(patsubst %.c,$(BUILD)/%.o,$(wildcard bench/common/*.c)) $(BUILD)/libknnd.a
	$(CC) $(CFLAGS) $(OMP) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/bench/%.o: CPPFLAGS += -Ibench

# test_interop checks our codec against msgpack-c, an independent implementation.
UNIT_LDLIBS_test_msgpack_interop := -lmsgpackc

tests: all $(UNIT_BIN)

# The suite runs twice (release build, then ASan+UBSan build), then each
# fuzz target runs for a short fixed budget.
check: tests asan-build fuzz-build
	@tests/run --bin $(BINDIR) --units $(BUILD)/tests \
	  --bin build/asan/bin --units build/asan/tests --fuzz build/fuzz

SAN := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined -Wno-pass-failed

asan-build:
	@$(MAKE) --no-print-directory BUILD=build/asan BINDIR=build/asan/bin CUDA=0 CC=clang CXX=clang++ CXXFLAGS="$(SAN)" \
	  CFLAGS="-O1 -g $(SAN)" LDFLAGS="$(SAN)" tests

asan: asan-build
	@tests/run --bin build/asan/bin --units build/asan/tests

# libFuzzer targets (tests/fuzz/fuzz_*.c), built with clang.
FUZZ_BIN := $(FUZZ_SRC:tests/fuzz/%.c=build/fuzz/%)

fuzz-build:
	@$(MAKE) --no-print-directory BUILD=build/fuzz CUDA=0 CC=clang CXX=clang++ CXXFLAGS="$(SAN)" \
	  CFLAGS="-O1 -g -fsanitize=fuzzer-no-link $(SAN)" $(FUZZ_BIN)

build/fuzz/fuzz_%: tests/fuzz/fuzz_%.c build/fuzz/libknnd.a
	$(CC) $(CPPFLAGS) -O1 -g -fsanitize=fuzzer $(SAN) $(OMP) $(WARN) -o $@ $^ $(LDLIBS)

# A longer fuzzing session: make fuzz FUZZ_SECONDS=600
fuzz: fuzz-build
	@tests/fuzz/run build/fuzz

BENCH_BIN := $(patsubst bench/%.c,$(BUILD)/bench/%,$(wildcard bench/*.c))
bench: all $(BENCH_BIN)
	@for b in bench/*.sh; do KNND_BENCH_BIN=$(BUILD)/bench bash $$b || exit 1; done

clean:
	rm -rf build bin

-include $(LIB_OBJ:.o=.d) $(TOOLS:%=$(BUILD)/cmd/%.d) $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/unit/%.d)
