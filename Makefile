# hestia: GNU make build.
#   make            build build/hestia (release, -O2)
#   make test       unit + integration tests under AddressSanitizer and UBSan (build/san/)
#   make run        set up and run the default model
#   make bench      benchmarks on synthetic models (table + JSON in build/bench/)
#   make bench-serve  serving throughput at 1/4/8/16 clients (build/bench/serve.json)
#   make bench-agents 13 agents with 13 adapters: /v1/assess vs one by one, and the
#                     cost of mixed adapters in a batch (build/bench/agents.json)
#   make load-test  64 clients for LOAD_SECONDS (180) against the release server
#   make fuzz       every fuzz target for FUZZ_SECONDS each (clang libFuzzer)
#   make lint       layering and banned-function checks
# Files named *_avx2.c / *_avx512.c get their instruction-set flags; the rest is
# portable C11 and picks kernels at start-up from cpuid.

PKGS      := jansson libpcre2-8 libutf8proc libmicrohttpd libcurl sqlite3 libfyaml libsodium libxxhash gsl
TEST_PKGS := cmocka
CC        ?= cc
SAN       ?= 0
FUZZ_SECONDS ?= 60

BUILDROOT ?= build
ifeq ($(SAN),1)
  BUILD   := $(BUILDROOT)/san
  OPT     := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined
  LDSAN   := -fsanitize=address,undefined
else
  BUILD   := $(BUILDROOT)
  OPT     := -O2 -g
  LDSAN   :=
endif

WARN      := -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter
CFLAGS_BASE = -std=c11 -D_GNU_SOURCE $(OPT) $(WARN) -Isrc -pthread \
              $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
LDLIBS    = $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lm -pthread
AVX2_FLAGS   := -mavx2 -mfma -mf16c
AVX512_FLAGS := -mavx2 -mfma -mf16c -mavx512f -mavx512bw -mavx512vl -mavx512dq \
                -mavx512vnni -mavx512bf16

LAYERS    := base gguf tensor model engine ops server
LIB_SRC   := $(foreach l,$(LAYERS),$(wildcard src/$(l)/*.c))
LIB_OBJ   := $(patsubst src/%.c,$(BUILD)/obj/%.o,$(LIB_SRC))
CLI_SRC   := $(wildcard src/cli/*.c)
CLI_OBJ   := $(patsubst src/%.c,$(BUILD)/obj/%.o,$(CLI_SRC))
TEST_SRC  := $(filter-out tests/unit/test_util.c,$(wildcard tests/unit/test_*.c))
TEST_BIN  := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(TEST_SRC))
TEST_SUPPORT_SRC := $(filter-out $(TEST_SRC),$(wildcard tests/unit/*.c))
TEST_SUPPORT_OBJ := $(patsubst tests/unit/%.c,$(BUILD)/tests/obj/%.o,$(TEST_SUPPORT_SRC))
LIB       := $(BUILD)/libhestia.a
BIN       := $(BUILD)/hestia

.PHONY: all deps test test-unit check run bench bench-serve bench-agents load-test fuzz lint clean valgrind quant-table
# Keep test objects between runs (they are intermediate files of a pattern chain).
.SECONDARY:
.DEFAULT_GOAL := all

all: deps $(BIN)

# Installs Debian packages only when one is missing (pkg-config answers in milliseconds).
deps:
	@pkg-config --exists $(PKGS) $(TEST_PKGS) 2>/dev/null || scripts/install-deps.sh

$(BUILD)/obj/%_avx2.o: src/%_avx2.c | deps
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_BASE) $(AVX2_FLAGS) -MMD -MP -c $< -o $@

$(BUILD)/obj/%_avx512.o: src/%_avx512.c | deps
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_BASE) $(AVX512_FLAGS) -MMD -MP -c $< -o $@

$(BUILD)/obj/%.o: src/%.c | deps
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_BASE) -MMD -MP -c $< -o $@

# The /dashboard page (issue 6): web/ and the uPlot chart library (npm, pinned by
# web/package-lock.json) turned into C by scripts/embed_assets.c and compiled
# into route_dashboard.o, so the binary serves them offline. The generated file
# is included, not compiled on its own, so that a build of src/ without make
# (scripts/fuzz.sh) still compiles: it gets a dashboard without its assets.
HOSTCC    ?= cc
UPLOT_DIR := web/node_modules/uplot/dist
WEB_FILES := dashboard.html=web/dashboard.html dashboard.js=web/dashboard.js dashboard.css=web/dashboard.css \
             uPlot.iife.min.js=$(UPLOT_DIR)/uPlot.iife.min.js uPlot.min.css=$(UPLOT_DIR)/uPlot.min.css
WEB_SRC   := $(foreach f,$(WEB_FILES),$(word 2,$(subst =, ,$(f))))
WEB_GEN   := $(BUILD)/gen/web_assets.inc

$(BUILD)/tools/embed_assets: scripts/embed_assets.c
	@mkdir -p $(dir $@)
	$(HOSTCC) -std=c11 -O1 -Wall -Wextra -Werror -o $@ $<

# npm writes node_modules/.package-lock.json on every install: it is the stamp
# that says web/node_modules matches web/package-lock.json.
web/node_modules/.package-lock.json: web/package-lock.json
	@command -v npm >/dev/null 2>&1 || { echo "error: npm is needed to fetch the dashboard's chart library (uplot, web/package-lock.json): install Node.js and npm, or run scripts/install-js.sh where npm is"; exit 1; }
	cd web && npm ci --no-audit --no-fund --loglevel=error >/dev/null
	@touch $@

$(UPLOT_DIR)/uPlot.iife.min.js $(UPLOT_DIR)/uPlot.min.css: web/node_modules/.package-lock.json
	@test -f $@ || { echo "error: $@ is missing after npm ci in web/"; exit 1; }
	@touch $@ # npm keeps the tarball's 1985 mtimes: date it after the stamp

$(WEB_GEN): $(WEB_SRC) $(BUILD)/tools/embed_assets
	@mkdir -p $(dir $@)
	$(BUILD)/tools/embed_assets $@ $(WEB_FILES)

$(BUILD)/obj/server/route_dashboard.o: $(WEB_GEN)
$(BUILD)/obj/server/route_dashboard.o: CFLAGS_BASE += -I$(BUILD)/gen -DHS_WEB_ASSETS=1

$(LIB): $(LIB_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@
	ar rcs $@ $^

$(BIN): $(CLI_OBJ) $(LIB)
	$(CC) $(LDSAN) -o $@ $(CLI_OBJ) $(LIB) $(LDLIBS)

$(BUILD)/tests/obj/%.o: tests/unit/%.c | deps
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_BASE) $(shell pkg-config --cflags $(TEST_PKGS)) -Itests/unit -MMD -MP -c $< -o $@

$(BUILD)/tests/%: $(BUILD)/tests/obj/%.o $(TEST_SUPPORT_OBJ) $(LIB)
	$(CC) $(LDSAN) -o $@ $< $(TEST_SUPPORT_OBJ) $(LIB) $(LDLIBS) $(shell pkg-config --libs $(TEST_PKGS))

# The tests always run under ASan + UBSan; they use small models only.
test:
	@scripts/install-js.sh
	@$(MAKE) --no-print-directory -j$(shell nproc) SAN=1 test-unit

test-unit: all $(TEST_BIN)
	@HS_BIN=$(abspath $(BIN)) TEST_LOGS=$(BUILD)/test-logs scripts/run-tests.sh $(TEST_BIN)

run: all
	scripts/run-default.sh $(BIN)

bench: all
	scripts/bench.sh $(BIN)

# hestia serve under 1, 4, 8, 16 concurrent clients (scripts/bench-serve.sh)
bench-serve: all
	@scripts/install-js.sh
	scripts/bench-serve.sh $(BIN)

# 13 expert agents with their own adapters on the 1B-class model (scripts/bench-agents.sh)
bench-agents: all
	scripts/bench-agents.sh $(BIN)

# the bounded load test of `make test`, longer and on the release build
LOAD_SECONDS ?= 180
load-test: all
	@scripts/install-js.sh
	HS_BIN=$(abspath $(BIN)) LOAD_SECONDS=$(LOAD_SECONDS) bash tests/integration/serve_load.sh

# docs/quantization.md: size, quality and speed of every quantize type (scripts/quant-table.sh)
quant-table: all
	scripts/quant-table.sh $(BIN)

fuzz: deps
	scripts/fuzz.sh $(FUZZ_SECONDS)

lint:
	scripts/lint.sh

# memcheck on a few commands and unit tests, on a normal build (scripts/valgrind.sh)
valgrind:
	BUILDROOT=$(BUILDROOT) scripts/valgrind.sh

clean:
	rm -rf build

-include $(LIB_OBJ:.o=.d) $(CLI_OBJ:.o=.d) $(patsubst $(BUILD)/tests/%,$(BUILD)/tests/obj/%.d,$(TEST_BIN))
