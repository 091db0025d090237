import sys, subprocess, collections
# Self time by symbol over samples whose stack contains bpf_prog_test_run_skb (the measured loop).
out = subprocess.run(["perf", "script", "-i", sys.argv[1], "-F", "ip,sym"], capture_output=True, text=True).stdout
c = collections.Counter(); tot = 0
for block in out.split("\n\n"):
    lines = [l.strip() for l in block.strip().split("\n") if l.strip()]
    if not lines or not any("bpf_prog_test_run_skb" in l for l in lines): continue
    sym = lines[0].split(None, 1)[1] if len(lines[0].split(None, 1)) > 1 else "?"
    sym = sym.split("+")[0]
    c[sym] += 1; tot += 1
for s, n in c.most_common(int(sys.argv[2]) if len(sys.argv) > 2 else 15):
    print(f"{100.0*n/tot:6.1f}%  {s}")
print(f"({tot} samples in the test-run loop)")
