# Shared by the pipeline fragments: where the tools are, and how a pipe's
# output lands. Include it once (the other fragments do).
#   KNND_BIN   folder of the knnd tools (default: found on PATH)
ifndef KNND_COMMON_MK
KNND_COMMON_MK := 1
KNND_BIN ?=
knnd_tool = $(if $(KNND_BIN),$(KNND_BIN)/$(1),$(1))
# The pipeline scripts beside this file, run with the tools on PATH.
KNND_PIPELINES := $(patsubst %/,%,$(dir $(lastword $(MAKEFILE_LIST))))
knnd_script = $(if $(KNND_BIN),PATH="$(KNND_BIN):$$PATH") $(KNND_PIPELINES)/$(1)
# $(call knnd_atomic,PIPE): PIPE's stdout becomes $@ whole or not at all, so
# that an interrupted run never leaves a file that looks finished. Run it
# under knnd_shell (pipefail: a failure anywhere in the pipe counts).
knnd_atomic = { $(1); } > $@.tmp || { rm -f $@.tmp; exit 1; }; mv -f $@.tmp $@
knnd_shell = /bin/bash
knnd_shellflags = -o pipefail -ec
# Trainers checkpoint as they go, so a run lives in run/ beside its target
# ($(knnd_run)) and only a finished one is copied out ($(knnd_publish)):
# an interrupted run never leaves a target that looks finished, and the
# next `make` resumes it ($(knnd_resume) gives --resume when the run's
# checkpoint is newer than every prerequisite; else its stale files go).
knnd_run = $(dir $@)run/$(notdir $@)
knnd_resume = $$(mkdir -p $(dir $@)run; r=--resume; for d in $^; do [ $(knnd_run) -nt $$d ] || r=; done; \
                 [ -n "$$r" ] || rm -f $(basename $(knnd_run)).*; echo $$r)
knnd_publish = cp $(knnd_run) $@.tmp && mv -f $@.tmp $@
endif
