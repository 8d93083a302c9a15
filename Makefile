# pg_soup: neural-network checkpoints as data, merged inside PostgreSQL.
EXTENSION = pg_soup
EXTVERSION = 0.2.0
MODULE_big = pg_soup

KERNELS = src/kernels/dtype.o src/kernels/accum.o src/kernels/fused.o src/kernels/radix_select.o src/kernels/sparse.o src/kernels/della.o src/kernels/fit.o
GLUE = src/pg_soup.o src/tensor.o src/tensor_text.o src/tensor_ops.o \
	src/mstate.o src/avg.o src/fisher.o src/task.o src/ema.o src/gram.o src/sparsify.o src/fits.o \
	src/safetensors.o \
	src/catalog.o src/import.o src/export.o src/fileio.o src/progress.o src/merge_driver.o src/rechunk.o src/threshold.o src/della.o src/tau_stream.o
OBJS = $(KERNELS) $(GLUE)

# 0.2.0 installs as 0.1.0 (as shipped) plus the update script, so a new
# install and an updated one are the same by construction.
DATA = $(EXTENSION)--0.1.0.sql $(EXTENSION)--0.1.0--0.2.0.sql
REGRESS = tensor catalog import_export avg merge merge_methods merge_config runs fits run_queries jobs determinism fused layouts
REGRESS_OPTS = --load-extension=$(EXTENSION)
EXTRA_CLEAN = results regression.diffs regression.out test/unit/*.bin client/pg_soup test/bench/kernels.bin \
	$(EXTENSION)-*.zip

PG_CONFIG ?= pg_config
# No LLVM bitcode: JIT-inlining these functions buys nothing.
override with_llvm = no
PG_CPPFLAGS = -Isrc

PG_CFLAGS = -Wall -Wextra -Werror -Wno-unused-parameter \
	-Wno-missing-field-initializers -Wno-sign-compare -fopenmp \
	-ffp-contract=off
SHLIB_LINK = -fopenmp -llbfgs -lopenblas -lm

PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# ---- standalone unit tests of the pure-C pieces (no server needed) ----
PG_INCLUDE_SERVER := $(shell $(PG_CONFIG) --includedir-server)
PG_PKGLIBDIR_STATIC := $(shell $(PG_CONFIG) --libdir)/postgresql/15/lib
PG_STATIC_LIBDIR := $(firstword $(wildcard $(shell $(PG_CONFIG) --pkglibdir)/libpgcommon.a $(PG_PKGLIBDIR_STATIC)/libpgcommon.a))
UNIT_CC ?= $(CC)
UNIT_CFLAGS = -O2 -g -ffp-contract=off -Wall -Wextra -Werror -Wno-unused-parameter \
	-Wno-missing-field-initializers -Wno-sign-compare -fopenmp \
	-DFRONTEND -Isrc -I$(PG_INCLUDE_SERVER)
UNIT_LIBS = -L$(dir $(PG_STATIC_LIBDIR)) -lpgcommon -lpgport -fopenmp -lm

UNIT_TESTS = test/unit/test_dtype.bin test/unit/test_safetensors.bin test/unit/test_sparse.bin \
	test/unit/test_fit.bin test/unit/test_fused.bin test/unit/test_radix.bin test/unit/test_della.bin

test/unit/test_dtype.bin: test/unit/test_dtype.c src/kernels/dtype.c src/kernels/dtype.h
	$(UNIT_CC) $(UNIT_CFLAGS) -o $@ test/unit/test_dtype.c src/kernels/dtype.c $(UNIT_LIBS)

test/unit/test_safetensors.bin: test/unit/test_safetensors.c src/safetensors.c src/safetensors.h src/kernels/dtype.c
	$(UNIT_CC) $(UNIT_CFLAGS) -o $@ test/unit/test_safetensors.c src/safetensors.c src/kernels/dtype.c $(UNIT_LIBS)

test/unit/test_sparse.bin: test/unit/test_sparse.c test/unit/order.h src/kernels/sparse.c src/kernels/sparse.h src/kernels/dtype.c
	$(UNIT_CC) $(UNIT_CFLAGS) -o $@ test/unit/test_sparse.c src/kernels/sparse.c src/kernels/dtype.c $(UNIT_LIBS)

FUSED_SRCS = src/kernels/fused.c src/kernels/accum.c src/kernels/dtype.c
test/unit/test_fused.bin: test/unit/test_fused.c $(FUSED_SRCS) src/kernels/fused.h src/kernels/accum.h src/kernels/dd.h
	$(UNIT_CC) $(UNIT_CFLAGS) -o $@ test/unit/test_fused.c $(FUSED_SRCS) $(UNIT_LIBS)

test/unit/test_radix.bin: test/unit/test_radix.c test/unit/order.h src/kernels/radix_select.c src/kernels/radix_select.h src/kernels/sparse.c
	$(UNIT_CC) $(UNIT_CFLAGS) -o $@ test/unit/test_radix.c src/kernels/radix_select.c src/kernels/sparse.c src/kernels/dtype.c $(UNIT_LIBS)

test/unit/test_della.bin: test/unit/test_della.c src/kernels/della.c src/kernels/della.h src/kernels/sparse.c src/kernels/dd.h
	$(UNIT_CC) $(UNIT_CFLAGS) -o $@ test/unit/test_della.c src/kernels/della.c src/kernels/sparse.c src/kernels/dtype.c $(UNIT_LIBS)

test/unit/test_fit.bin: test/unit/test_fit.c src/kernels/fit.c src/kernels/fit.h
	$(UNIT_CC) $(UNIT_CFLAGS) -o $@ test/unit/test_fit.c src/kernels/fit.c -llbfgs -lm

.PHONY: unit
SOUP_FIXTURES ?= $(CURDIR)/../shared/fixtures/safetensors
SOUP_DATA ?= $(CURDIR)/../shared/data
unit: $(UNIT_TESTS)
	@echo "== test/unit/test_dtype"; ./test/unit/test_dtype.bin
	@echo "== test/unit/test_safetensors"; ./test/unit/test_safetensors.bin $(SOUP_FIXTURES)
	@echo "== test/unit/test_sparse"; ./test/unit/test_sparse.bin
	@echo "== test/unit/test_fit"; ./test/unit/test_fit.bin $(SOUP_DATA)
	@echo "== test/unit/test_fused"; ./test/unit/test_fused.bin
	@echo "== test/unit/test_radix"; ./test/unit/test_radix.bin
	@echo "== test/unit/test_della"; ./test/unit/test_della.bin

# ---- the command-line client (libpq), installed beside the server's programs ----
CLIENT = client/pg_soup
CLIENT_SRCS = client/main.c client/conn.c client/files.c client/progress.c \
	client/cmd_import.c client/cmd_export.c client/cmd_ls.c client/cmd_merge.c \
	client/cmd_log_metrics.c client/cmd_greedy.c client/cmd_methods.c client/yaml_json.c src/safetensors.c src/kernels/dtype.c
CLIENT_CFLAGS = -O2 -g -Wall -Wextra -Werror -Wno-unused-parameter \
	-Wno-missing-field-initializers -Wno-sign-compare -fopenmp-simd \
	-DFRONTEND -DPG_SOUP_VERSION='"$(EXTVERSION)"' -Isrc -Iclient -I$(shell $(PG_CONFIG) --includedir) -I$(PG_INCLUDE_SERVER)

$(CLIENT): $(CLIENT_SRCS) client/client.h src/safetensors.h src/tensor_wire.h Makefile
	$(UNIT_CC) $(CLIENT_CFLAGS) -o $@ $(CLIENT_SRCS) \
		-L$(shell $(PG_CONFIG) --libdir) -lpq -L$(dir $(PG_STATIC_LIBDIR)) -lpgcommon -lpgport -lyaml -lm

# Debian keeps the server's programs out of PATH (pg_config --bindir is
# /usr/lib/postgresql/15/bin), so a link in a directory on every user's
# default PATH makes `pg_soup` run by name.  CLIENT_LINK_DIR= (empty) skips it.
CLIENT_LINK_DIR ?= /usr/local/bin

all: $(CLIENT)
install: install-client
uninstall: uninstall-client
.PHONY: install-client uninstall-client
install-client: $(CLIENT)
	$(MKDIR_P) '$(DESTDIR)$(bindir)'
	$(INSTALL_PROGRAM) $(CLIENT) '$(DESTDIR)$(bindir)/pg_soup'
ifneq ($(CLIENT_LINK_DIR),)
	$(MKDIR_P) '$(DESTDIR)$(CLIENT_LINK_DIR)'
	ln -sfn '$(bindir)/pg_soup' '$(DESTDIR)$(CLIENT_LINK_DIR)/pg_soup'
endif
uninstall-client:
	rm -f '$(DESTDIR)$(bindir)/pg_soup'
ifneq ($(CLIENT_LINK_DIR),)
	if [ -L '$(DESTDIR)$(CLIENT_LINK_DIR)/pg_soup' ]; then rm -f '$(DESTDIR)$(CLIENT_LINK_DIR)/pg_soup'; fi
endif

# ---- the Python package, for Debian's /usr/bin/python3 ----
# Pure Python on Debian's python3-psycopg2 and python3-numpy (torch and
# matplotlib optional); no PyPI, so make install puts it on python3's path.
PYTHON_SITE ?= /usr/lib/python3/dist-packages
PYTHON_SRCS = $(wildcard python/pg_soup/*.py)
install: install-python
uninstall: uninstall-python
.PHONY: install-python uninstall-python
install-python:
	$(MKDIR_P) '$(DESTDIR)$(PYTHON_SITE)/pg_soup'
	$(INSTALL_DATA) $(PYTHON_SRCS) '$(DESTDIR)$(PYTHON_SITE)/pg_soup/'
uninstall-python:
	rm -rf '$(DESTDIR)$(PYTHON_SITE)/pg_soup'

# ---- the release archive for PGXN: the committed tree of HEAD, under pg_soup-VERSION/ ----
DIST_DIR ?= .
.PHONY: dist
dist:
	git archive --format zip --prefix=$(EXTENSION)-$(EXTVERSION)/ \
		-o $(DIST_DIR)/$(EXTENSION)-$(EXTVERSION).zip HEAD

# ---- convenience targets ----
.PHONY: test demo bench
test:
	bash scripts/test.sh
demo:
	bash scripts/demo.sh
bench:
	bash test/bench/run.sh
# what each means buys (storage ceilings, WAL, threads, plans, huge pages, client)
bench-means:
	bash test/bench/means.sh

# each merge method's backend memory on models with a 200M-element tensor
# what an import would gain by writing whole pages instead of TOAST rows
# (builds a small measurement module; BENCH_FILE: the file to write)
.PHONY: bench-pagewrite
bench-pagewrite:
	bash test/bench/pagewrite/run.sh $(BENCH_FILE)

.PHONY: bench-memory
bench-memory:
	bash test/bench/memory.sh

# the merge kernels alone against memory copy and OpenBLAS (part of make bench)
test/bench/kernels.bin: test/bench/kernels.c src/kernels/accum.c src/kernels/accum.h src/kernels/dtype.c src/kernels/dd.h \
		src/kernels/fused.c src/kernels/fused.h
	$(UNIT_CC) -O2 -g -ffp-contract=off -fopenmp -Wall -Wextra -Werror -Wno-unused-parameter \
		-Isrc $(shell pkg-config --cflags openblas 2>/dev/null) -o $@ \
		test/bench/kernels.c src/kernels/accum.c src/kernels/fused.c src/kernels/dtype.c -lopenblas -lm
.PHONY: bench-kernels
bench-kernels: test/bench/kernels.bin
	./test/bench/kernels.bin

# libFuzzer harnesses (clang, ASan + UBSan) for the safetensors parser and
# the tensor text/binary input; FUZZ_SECONDS per harness (not run in CI)
.PHONY: fuzz
fuzz:
	bash test/fuzz/run.sh
