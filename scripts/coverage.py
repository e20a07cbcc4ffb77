"""Print the overall and per-file coverage from `opa test --coverage` JSON."""

import json
import sys

with open(sys.argv[1]) as source:
    report = json.load(source)
for name, f in sorted(report.get("files", {}).items()):
    if not name.endswith("_test.rego"):
        print(f"  {f.get('coverage', 0):6.1f} %  {name}")
print(f"Rego coverage: {report.get('coverage', 0):.1f} % (threshold 90 %)")
