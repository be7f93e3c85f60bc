"""The CPU allocator tuning: freed large tensors are reused without new page faults, and it can be turned off."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

PROBE = """
import resource, sys, torch
from acdc_compare.backends import make_patcher
from acdc_compare.allocator import tune_cpu_allocator
tuned = tune_cpu_allocator()
def faults_of_one_big_tensor():
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    x = torch.ones(64 * 2**20 // 4)  # 64 MiB, above glibc's default mmap threshold
    del x
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
for _ in range(2):
    faults_of_one_big_tensor()
print(tuned, min(faults_of_one_big_tensor() for _ in range(3)))
"""


def probe(env_value: str | None) -> tuple[bool, int]:
    env = dict(os.environ)
    env.pop("ACDC_COMPARE_MALLOC", None)
    if env_value is not None:
        env["ACDC_COMPARE_MALLOC"] = env_value
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True)
    tuned, faults = out.stdout.split()
    return tuned == "True", int(faults)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc tuning is Linux-only")
def test_tuned_allocator_reuses_freed_memory_without_page_faults():
    tuned, faults = probe(None)
    assert tuned
    assert faults < 100  # 64 MiB = 16,384 pages when faulted in anew


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc tuning is Linux-only")
def test_opt_out_leaves_malloc_alone():
    tuned, faults = probe("default")
    assert not tuned
    assert faults > 10_000


def test_patcher_on_cpu_tunes_the_allocator(tiny_gpt2):
    from acdc_compare import allocator
    from acdc_compare.backends import make_patcher

    allocator._state.clear()
    make_patcher(tiny_gpt2)
    assert "tuned" in allocator._state
