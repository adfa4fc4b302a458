#!/usr/bin/env bash
# Offline tests for pr-comment.sh: a stub stands in for drover, and a local
# mock of the GitHub comments API (python3, on loopback) checks the upsert;
# then the real drover ($DROVER, else target/debug/drover) on a repository
# made from examples/fleet. No network, no cluster.   Usage: examples/ci/test-pr-comment.sh
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
script="$here/pr-comment.sh"
root=$(cd "$here/../.." && pwd)
# The real drover for the end-to-end part: $DROVER, else a cargo build's binary.
real_drover=${DROVER:-}
if [ -z "$real_drover" ]; then
  for c in "${CARGO_TARGET_DIR:-$root/target}/debug/drover" "$root/target/debug/drover"; do
    if [ -x "$c" ]; then real_drover=$c; break; fi
  done
fi
work=$(mktemp -d)
server_pid=""
cleanup() {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }
pass() { echo "ok:   $*"; }

# The stub prints its arguments as the plan and exits with $STUB_RC.
cat >"$work/drover" <<'STUB'
#!/usr/bin/env bash
if [ "${STUB_RC:-2}" = 1 ]; then echo "error: daemons/agent.yaml:6:3: unknown field imgae" >&2; exit 1; fi
echo "## drover plan"
echo "args: $*"
if [ -n "${STUB_BIG:-}" ]; then head -c 70000 /dev/zero | tr '\0' x; echo; fi
exit "${STUB_RC:-2}"
STUB
chmod +x "$work/drover"
export DROVER="$work/drover"
unset GITHUB_TOKEN GITHUB_REPOSITORY PR_NUMBER DROVER_ARGS

run() { # run NAME EXPECTED_STATUS [ENV=VALUE...] -- ARGS...
  local name=$1 want=$2 got
  shift 2
  local envs=()
  while [ "$1" != -- ]; do envs+=("$1"); shift; done
  shift
  set +e
  env ${envs[@]+"${envs[@]}"} "$script" "$@" >"$work/stdout" 2>"$work/stderr"
  got=$?
  set -e
  if [ "$got" = "$want" ]; then pass "$name: exit $got"; else
    fail "$name: exit $got, want $want"; cat "$work/stderr" >&2
  fi
}
check() { # check DESCRIPTION COMMAND...
  local desc=$1
  shift
  if "$@"; then pass "$desc"; else fail "$desc"; fi
}
contains() { # contains FILE TEXT
  if grep -qF -- "$2" "$1"; then pass "$(basename "$1") has '$2'"; else fail "$(basename "$1") lacks '$2'"; fi
}

out="$work/comment.md"
run "changes" 0 STUB_RC=2 DROVER_COMMENT_OUT="$out" -- origin/release feature
contains "$out" '<!-- drover-plan -->'
contains "$out" 'args: diff --base origin/release --head feature --format markdown'
check "marker on the first line" [ "$(head -n 1 "$out")" = '<!-- drover-plan -->' ]
check "nothing printed with DROVER_COMMENT_OUT" [ ! -s "$work/stdout" ]

run "no changes" 0 STUB_RC=0 DROVER_COMMENT_OUT="$out" --
contains "$out" 'args: diff --base origin/main --head HEAD --format markdown'

run "extra args" 0 STUB_RC=2 DROVER_COMMENT_OUT="$out" "DROVER_ARGS=--nodes nodes.yaml" --
contains "$out" '--format markdown --nodes nodes.yaml'

run "drover failed" 1 STUB_RC=1 DROVER_COMMENT_OUT="$out" --
contains "$out" 'drover diff failed (exit 1)'
contains "$out" 'unknown field imgae'
contains "$work/stderr" 'unknown field imgae'

run "long plan" 0 STUB_RC=2 STUB_BIG=1 DROVER_COMMENT_OUT="$out" --
size=$(wc -c <"$out")
check "long plan cut to $size bytes" [ "$size" -le 60500 ]
contains "$out" 'Plan cut at 60000 characters'

run "stdout" 0 STUB_RC=2 --
contains "$work/stdout" '<!-- drover-plan -->'

# Upsert against a mock GitHub API.
if command -v python3 >/dev/null && command -v curl >/dev/null && command -v jq >/dev/null; then
  cat >"$work/mock.py" <<'MOCK'
import json, sys
from http.server import BaseHTTPRequestHandler, HTTPServer
state_file, port_file = sys.argv[1], sys.argv[2]
def load():
    with open(state_file) as f: return json.load(f)
def save(s):
    with open(state_file, "w") as f: json.dump(s, f)
class H(BaseHTTPRequestHandler):
    def log_message(self, *a): pass
    def reply(self, code, obj):
        body = json.dumps(obj).encode()
        self.send_response(code); self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body))); self.end_headers(); self.wfile.write(body)
    def read(self):
        return json.loads(self.rfile.read(int(self.headers["Content-Length"])))
    def do_GET(self):
        s = load(); s["log"].append("GET " + self.path); save(s)
        page = int(self.path.split("page=")[-1]) if "page=" in self.path else 1
        self.reply(200, s["comments"][(page - 1) * 100: page * 100])
    def do_POST(self):
        s = load(); body = self.read()
        s["log"].append("POST " + self.path)
        s["comments"].append({"id": 9000 + len(s["comments"]), "body": body["body"]}); save(s)
        self.reply(201, s["comments"][-1])
    def do_PATCH(self):
        s = load(); body = self.read(); cid = int(self.path.rsplit("/", 1)[-1])
        s["log"].append("PATCH " + self.path)
        for c in s["comments"]:
            if c["id"] == cid: c["body"] = body["body"]
        save(s); self.reply(200, {"id": cid})
srv = HTTPServer(("127.0.0.1", 0), H)
with open(port_file, "w") as f: f.write(str(srv.server_port))
srv.serve_forever()
MOCK
  # 150 unrelated comments so the marker is found on page 2.
  python3 -c 'import json,sys; json.dump({"log": [], "comments": [{"id": i, "body": "lgtm"} for i in range(150)]}, open(sys.argv[1], "w"))' "$work/state.json"
  python3 "$work/mock.py" "$work/state.json" "$work/port" &
  server_pid=$!
  for _ in $(seq 50); do [ -s "$work/port" ] && break; sleep 0.1; done
  api="http://127.0.0.1:$(cat "$work/port")"
  gh=(GITHUB_API_URL="$api" GITHUB_TOKEN=t GITHUB_REPOSITORY=org/fleet PR_NUMBER=7)

  run "first post" 0 STUB_RC=2 "${gh[@]}" --
  run "second post" 0 STUB_RC=0 "${gh[@]}" --
  jq -r '.log[]' "$work/state.json" >"$work/log"
  contains "$work/log" 'POST /repos/org/fleet/issues/7/comments'
  contains "$work/log" 'PATCH /repos/org/fleet/issues/comments/9150'
  contains "$work/log" 'GET /repos/org/fleet/issues/7/comments?per_page=100&page=2'
  n=$(jq '[.comments[] | select(.body | contains("<!-- drover-plan -->"))] | length' "$work/state.json")
  check "one plan comment after two runs (found $n)" [ "$n" = 1 ]

  run "post fails" 3 STUB_RC=2 GITHUB_API_URL="http://127.0.0.1:1" GITHUB_TOKEN=t GITHUB_REPOSITORY=org/fleet PR_NUMBER=7 --
else
  echo "skip: upsert tests need python3, curl and jq"
fi

# End to end with the real binary: a two-commit repository made from
# examples/fleet, the second commit an image bump.
if [ -n "$real_drover" ] && command -v git >/dev/null; then
  repo="$work/fleet"
  mkdir -p "$repo"
  cp -R "$root/examples/fleet/." "$repo/"
  g() { git -C "$repo" -c user.name=ci -c user.email=ci@example.com -c commit.gpgsign=false "$@"; }
  g init -q -b main
  g add -A
  g commit -q -m "fleet"
  sed -i.bak 's#node-exporter:v1.8.2#node-exporter:v1.8.3#' "$repo/daemons/node-exporter.yaml"
  rm -f "$repo/daemons/node-exporter.yaml.bak"
  g commit -q -am "node-exporter v1.8.3"
  e2e() { # e2e NAME EXPECTED_STATUS BASE HEAD
    local got
    set +e
    (cd "$repo" && DROVER="$real_drover" DROVER_COMMENT_OUT="$out" NO_COLOR=1 "$script" "$3" "$4") \
      >"$work/stdout" 2>"$work/stderr"
    got=$?
    set -e
    if [ "$got" = "$2" ]; then pass "real drover, $1: exit $got"; else
      fail "real drover, $1: exit $got, want $2"; cat "$work/stderr" >&2
    fi
  }
  e2e "image bump (drover exits 2)" 0 HEAD~1 HEAD
  check "marker on the first line" [ "$(head -n 1 "$out")" = '<!-- drover-plan -->' ]
  # shellcheck disable=SC2016 # backticks are Markdown here
  contains "$out" '### drover plan for `prod-eu1`'
  contains "$out" '| stage | groups | create | update | delete | unchanged |'
  contains "$out" '<code>~ node-exporter-general</code>: update'
  contains "$out" '+        image: quay.io/prometheus/node-exporter:v1.8.3'
  # The canary override pins its own image, so node-exporter-canary is unchanged.
  check "a changed DaemonSet is listed" [ "$(grep -c "<code>~ " "$out")" -ge 1 ]
  if grep -q '<code>~ falco\|<code>~ fluent-bit' "$out"; then fail "unrelated DaemonSets in the plan"; else pass "only node-exporter changes"; fi

  e2e "no changes (drover exits 0)" 0 HEAD HEAD
  contains "$out" '<!-- drover-plan -->'
  if grep -q '<code>~ ' "$out"; then fail "changes listed for HEAD..HEAD"; else pass "no changes listed for HEAD..HEAD"; fi

  printf 'apiVersion: drover.dev/v1alpha1\nkind: Daemon\nmetadata: {name: broken}\nspec: {imgae: x}\n' \
    >"$repo/daemons/broken.yaml"
  g add -A
  g commit -q -m "broken daemon"
  e2e "invalid fleet (drover exits 1)" 1 HEAD~1 HEAD
  contains "$out" 'drover diff failed (exit 1)'
  contains "$out" 'daemons/broken.yaml'
  contains "$work/stderr" 'daemons/broken.yaml'
else
  echo "skip: the real-binary tests need git and drover (\$DROVER or target/debug/drover)"
fi

if [ "$failures" -gt 0 ]; then echo "$failures failure(s)" >&2; exit 1; fi
echo "all pr-comment.sh tests passed"
