#!/usr/bin/env python3
"""Writes a `kubectl top pods -A` table of N rows, padded as kubectl pads it (see
fixtures/kubectl-top/generate.py), deterministic for a given N.

    gen-kubectl-top.py ROWS > file.txt
"""
import random
import sys

rows = int(sys.argv[1])
rng = random.Random(rows)
namespaces = ["sample-app", "linkerd", "kube-system", "istio-system", "monitoring"]
names = [f"nginx-{i}-5f7c8d9b6-{rng.randrange(36**5):05x}" for i in range(rows)]
ns_width = max(len("NAMESPACE"), *(len(n) for n in namespaces)) + 3
name_width = max(len(n) for n in names) + 3
out = sys.stdout
out.write(f"{'NAMESPACE':<{ns_width}}{'NAME':<{name_width}}{'CPU(cores)':<13}{'MEMORY(bytes)':<16}\n")
for name in names:
    ns = rng.choice(namespaces)
    cpu = f"{rng.randrange(0, 2000)}m"
    mem = f"{rng.randrange(1, 4096)}Mi"
    out.write(f"{ns:<{ns_width}}{name:<{name_width}}{cpu:<13}{mem:<16}\n")
