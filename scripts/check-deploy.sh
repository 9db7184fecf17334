#!/usr/bin/env bash
# Checks what deploy/ ships: the Prometheus rules (syntax, then each alert fired from synthetic
# series by promtool's unit tests), the Grafana dashboard (JSON, and every metric it plots is
# one mnemo exports), and the systemd unit (systemd-analyze verify, with ExecStart pointed at
# the binary given as $1, since the unit's own path need not exist here).
set -euo pipefail
cd "$(dirname "$0")/.."
binary=${1:-target/release/mnemo}
promtool check rules deploy/prometheus/alerts.yml
(cd deploy/prometheus && promtool test rules alerts_test.yml)
python3 - <<'PY'
import json, re, pathlib
dashboard = json.loads(pathlib.Path("deploy/grafana/mnemo.json").read_text())
source = "".join(p.read_text() for p in pathlib.Path("crates/server/src").rglob("metrics.rs"))
exported = {"mnemo_" + name for name in re.findall(r'"([a-z_]+)"', source)}
for panel in dashboard["panels"]:
    for target in panel["targets"]:
        for metric in re.findall(r"mnemo_[a-z_]+", target["expr"]):
            base = re.sub(r"_(bucket|sum|count)$", "", metric)
            assert metric in exported or base in exported, f"{panel['title']}: {metric} is not exported"
print(f"deploy/grafana/mnemo.json: {len(dashboard['panels'])} panels, every metric exported")
PY
unit=$(mktemp -d)
trap 'rm -rf "$unit"' EXIT
sed "s#/usr/local/bin/mnemo#$(realpath "$binary")#" deploy/mnemo.service > "$unit/mnemo.service"
systemd-analyze verify "$unit/mnemo.service"
echo "deploy/mnemo.service: systemd-analyze verify passed"
