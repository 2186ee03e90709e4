"""Semantic search latency of one ctxmesh binary with the embedded model.

Usage: python3 tools/bench/semantic_search.py BINARY MODEL_DIR [QUERIES]

Starts `BINARY serve` on a temporary data directory with
`--embedding-model-dir MODEL_DIR`, writes 100 entries, then times QUERIES
(default 200) sequential `mode=semantic` searches, each of which embeds
its query with the model, and prints the figures as one JSON line. Used to
compare two builds of the same code (docs/benchmarks.md#the-release-build).
Standard library only.
"""
import json, os, re, subprocess, sys, tempfile, time, urllib.request, urllib.parse, statistics
binary, model = sys.argv[1], sys.argv[2]
n_queries = int(sys.argv[3]) if len(sys.argv) > 3 else 200
d = tempfile.mkdtemp()
log = open(os.path.join(d, "log"), "w+")
p = subprocess.Popen([binary, "serve", "--data-dir", d + "/data", "--listen", "127.0.0.1:0", "--auth", "off",
                      "--embedding-model-dir", model], stdout=log, stderr=subprocess.STDOUT)
base = None
for _ in range(600):
    log.flush(); txt = open(log.name).read()
    m = re.search(r"listening on (http://127\.0\.0\.1:\d+)", txt)
    if m: base = m.group(1); break
    time.sleep(0.1)
def req(method, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    r = urllib.request.Request(base + path, data=data, method=method, headers={"content-type": "application/json"})
    with urllib.request.urlopen(r) as resp:
        return json.loads(resp.read() or b"null")
try:
    for _ in range(100):
        try: req("GET", "/readyz"); break
        except Exception: time.sleep(0.1)
    req("POST", "/v1/contexts", {"id": "emb"})
    words = "plan build deploy test review database cache index query watch lock agent handoff token budget".split()
    t0 = time.perf_counter()
    for i in range(100):
        req("PUT", f"/v1/contexts/emb/entries/n{i}", {"value": f"note {i}: " + " ".join(words[(i + k) % len(words)] for k in range(12))})
    writes = time.perf_counter() - t0
    lat = []
    for i in range(n_queries):
        q = urllib.parse.quote(f"how do we {words[i % len(words)]} the {words[(i * 7) % len(words)]} number {i}")
        t = time.perf_counter(); req("GET", f"/v1/contexts/emb/search?q={q}&mode=semantic&limit=5"); lat.append(time.perf_counter() - t)
    lat.sort()
    print(json.dumps({"binary": binary, "writes_100_s": round(writes, 3), "queries": n_queries,
                      "search_p50_ms": round(lat[len(lat)//2]*1000, 2), "search_p99_ms": round(lat[int(len(lat)*0.99)-1]*1000, 2),
                      "search_mean_ms": round(statistics.mean(lat)*1000, 2)}))
finally:
    p.terminate(); p.wait()
