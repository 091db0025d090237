#!/usr/bin/env python3
"""Fails when a BPF object breaks a limit of the oldest verifier csumfix supports (Debian 12's 6.1):

1. A loop (a back-edge in any function's control-flow graph). Debian 12's 6.1 verifier rejects a bounded loop whose back-edge is the fall-through of a helper
call ("back-edge from insn N to N+1"); newer kernels accept it, so only the VM matrix would notice.
This check runs on every build instead: loops in bpf/ are fully unrolled (#pragma unroll) or run
through bpf_loop() callbacks, which are calls, not back-edges.
2. Stack: a program and the subprograms and callbacks it calls share 512 bytes, each frame rounded
   up to 32 ("combined stack size of 2 calls is 544. Too large" on 6.1). Checked conservatively:
   every program's frame plus the two largest non-program frames must fit.
With --compat (the compat object, for kernels without bpf_loop, down to 5.10), instead of rule 1:
1c. Loops are allowed (5.10's verifier walks bounded loops), except one whose back-edge is the
    fall-through of a call: 5.10 and 6.1 refuse that edge ("back-edge from insn N to N+1").
1d. No helper newer than 5.10 (helper ids up to 155, bpf_redirect_peer) and no bpf_loop callback
    address (ld_imm64 of a function: "unrecognized bpf_ld_imm64 insn" on 5.10).
2c. The stack estimate of rule 2 is only reported: the real per-call-chain rule is the same in
    every verifier, and the bpf_compat suite loads the object through this kernel's.
Usage: object_check.py [--compat] OBJECT [llvm-objdump]"""
import re, subprocess, sys
compat = "--compat" in sys.argv[1:]
if compat: sys.argv.remove("--compat")
objdump = sys.argv[2] if len(sys.argv) > 2 else "llvm-objdump-19"
out = subprocess.run([objdump, "-d", "--no-show-raw-insn", "--section-headers", sys.argv[1]],
                     capture_output=True, text=True).stdout
# Functions in program sections (tc, xdp, classifier/...) are programs; the rest, in .text, are
# subprograms and callbacks.
sections = {}
for line in out.splitlines():
    m = re.match(r"^Disassembly of section (\S+):", line)
    if m: sec = m.group(1)
    m = re.match(r"^[0-9a-f]+ <(\S+)>:", line)
    if m: sections[m.group(1)] = sec
out = subprocess.run([objdump, "-d", "--no-show-raw-insn", sys.argv[1]], capture_output=True, text=True).stdout
funcs = {}; cur = None
for line in out.splitlines():
    m = re.match(r"^([0-9a-f]+) <(\S+)>:", line)
    if m: cur = m.group(2); funcs[cur] = []; continue
    m = re.match(r"^\s*(\d+):\s+(.*)$", line)
    if m and cur: funcs[cur].append((int(m.group(1)), m.group(2)))
total = 0
for f, insns in funcs.items():
    idx = {n: i for i, (n, _) in enumerate(insns)}
    succ = {}
    for i, (n, t) in enumerate(insns):
        s = []
        m = re.search(r"goto ([+-]0x[0-9a-f]+|[+-]\d+)", t)
        nxt = insns[i+1][0] if i + 1 < len(insns) else None
        if t.startswith("exit"): pass
        elif m:
            off = int(m.group(1), 0); s.append(n + 1 + off)
            if t.startswith("if ") and nxt is not None: s.append(nxt)
        elif nxt is not None: s.append(nxt)
        succ[n] = s
    # iterative DFS for back edges
    state = {}; back = []
    start = insns[0][0]
    stack = [(start, iter(succ[start]))]; state[start] = 1
    while stack:
        n, it = stack[-1]
        for w in it:
            if state.get(w) == 1: back.append((n, w)); continue
            if w not in state and w in succ:
                state[w] = 1; stack.append((w, iter(succ[w]))); break
        else:
            state[n] = 2; stack.pop()
    text = dict(insns)
    if compat:  # only the fall-through of a call may not close a loop
        back = [(a, b) for a, b in back if text[a].startswith("call")]
    if back:
        total += len(back)
        print(f"{f}: {len(back)} back-edge(s){' after a call' if compat else ''}: " +
              ", ".join(f"{a}->{b}" for a, b in back[:10]))
print(f"total back-edges{' after a call' if compat else ''}: {total}")
too_new = []
if compat:
    # Relocations by (section, byte offset): a call with one is a kfunc or bpf-to-bpf call, not a
    # helper; an ld_imm64 relocated against code is a callback address (bpf_loop's argument).
    rel = subprocess.run([objdump, "-r", sys.argv[1]], capture_output=True, text=True).stdout
    relocs, rsec = {}, None
    for line in rel.splitlines():
        m = re.match(r"RELOCATION RECORDS FOR \[(\S+)\]:", line)
        if m: rsec = m.group(1); continue
        m = re.match(r"([0-9a-f]{16})\s+(\S+)\s+(\S+)", line)
        if m and rsec:
            relocs[(rsec, int(m.group(1), 16))] = (m.group(2), m.group(3))
            if m.group(2) == "R_BPF_64_64" and (m.group(3) in funcs or m.group(3) == ".text"):
                too_new.append(f"callback address of {m.group(3)} in {rsec} (bpf_loop)")
    for f, insns in funcs.items():
        for n, t in insns:
            m = re.match(r"call (0x[0-9a-f]+|\d+)$", t)
            if m and (sections.get(f), n * 8) not in relocs and int(m.group(1), 0) > 155:
                too_new.append(f"{f}:{n} helper {int(m.group(1), 0)}")
    print(f"helpers or callbacks 5.10 lacks: {len(too_new)}")
    for t in too_new[:10]: print("  " + t)
frames = {}
for f, insns in funcs.items():
    deep = 0
    for _, t in insns:
        for m in re.finditer(r"r10 - (0x[0-9a-f]+|\d+)", t):
            deep = max(deep, int(m.group(1), 0))
    frames[f] = (max(deep, 1) + 31) // 32 * 32
subs = sorted((v for f, v in frames.items() if sections.get(f) == ".text"), reverse=True)
extra = sum(subs[:2])
too_big = []
for f, v in sorted(frames.items()):
    if sections.get(f) == ".text": continue
    print(f"stack {f}: {v} + {extra} (two largest subprogram frames) = {v + extra}")
    if v + extra > 512: too_big.append(f)
if not funcs:
    sys.exit(f"no_loops.py: no functions disassembled from {sys.argv[1]}")
if too_new:
    sys.exit("object_check.py: the compat object uses what 5.10 does not have (above)")
if compat and too_big:
    # The estimate above assumes the two largest subprogram frames sit under every program; the
    # compat object's global functions make it overshoot. The real rule (each call chain's
    # frames, rounded up to 32, within 512) is the same in 5.10 and this kernel's verifier, which
    # the bpf_compat suite loads the object through.
    print("stack: estimate over 512 for " + ", ".join(too_big) + "; left to the verifier "
          "(ctest bpf_compat loads this object)")
    too_big = []
if too_big:
    sys.exit(f"object_check.py: {', '.join(too_big)} may exceed the 512-byte combined stack; move "
             "large locals into a per-CPU map or a global")
if total:
    sys.exit("no_loops.py: the BPF object has loops; 6.1 kernels may refuse to load it "
             "(unroll them with #pragma unroll or use bpf_loop)")
