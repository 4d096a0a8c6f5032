import json, sys
data, model, stage = json.load(open(sys.argv[1])), sys.argv[2], sys.argv[3]
def cell(value):
    return "" if value is None else f"{value:.4f}" if isinstance(value, float) else str(value)
def table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows])
print(f"### {model}: this run against {stage}\n")
if "rows" in data:
    old, new = (run[:12] for run in data["run_ids"])
    # `runs compare` keeps timing metrics in a section of their own
    metrics = [r for r in data["rows"] if r["section"] in ("metric", "timing")]
    other = [r for r in data["rows"] if r["section"] not in ("metric", "timing") and r["differs"]]
else:
    old, new = None, data["run_id"][:12]
    # per-iteration curves (xgb.*) stay in the tracking UI, as in `mlkit runs compare`
    metrics = [{"key": k, "values": [None, v]} for k, v in sorted(data["metrics"].items())
               if not k.startswith("xgb.")]
    other = []
    print(f"No {stage} model of {model} to compare with yet.\n")
timing = [r for r in metrics if r["key"].endswith("_seconds")]
rows = []
for r in metrics:
    if r in timing:
        continue
    before, after = r["values"]
    change = after - before if isinstance(before, float) and isinstance(after, float) else None
    rows.append((r["key"], before, after, f"{change:+.4f}" if change is not None else ""))
print(table(("metric", f"{stage} ({old})" if old else stage, f"this run ({new})", "change"), rows))
if other:
    print()
    print(table(("", "key", f"{stage}", "this run"), [(r["section"], r["key"], *r["values"]) for r in other]))
if timing:
    print()
    print("Timing (not compared): " + ", ".join(f"{r['key']} {cell(r['values'][-1])}" for r in timing))
