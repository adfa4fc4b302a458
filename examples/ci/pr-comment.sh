#!/usr/bin/env bash
# Post drover's plan for a pull request as ONE comment, updated on every push.
#
#   examples/ci/pr-comment.sh [BASE [HEAD]]      (defaults: origin/main, HEAD)
#
# Runs `drover diff --format markdown` in the current directory (the fleet
# repository) and then, in this order of preference:
#   DROVER_COMMENT_OUT=FILE                  writes the comment body to FILE, posts nothing
#   GITHUB_TOKEN, GITHUB_REPOSITORY, PR_NUMBER set
#                                            creates the PR comment, or updates the one
#                                            carrying the <!-- drover-plan --> marker
#   otherwise                                prints the comment body on stdout
#
# Other settings: DROVER (the drover command, default `drover`), DROVER_ARGS
# (extra arguments for `drover diff`, split on spaces, e.g. "--nodes nodes.yaml"),
# GITHUB_API_URL (default https://api.github.com). Posting needs curl and jq.
#
# Exit status: 0 when the plan was written or posted, with or without changes;
# 1 when drover failed (the comment then shows its error output); 3 when the
# comment could not be posted.
set -euo pipefail

base=${1:-origin/main}
head_ref=${2:-HEAD}
drover=${DROVER:-drover}
marker='<!-- drover-plan -->'
# GitHub rejects comment bodies over 65536 characters.
max_chars=60000

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

read -r -a extra <<<"${DROVER_ARGS:-}"
set +e
"$drover" diff --base "$base" --head "$head_ref" --format markdown ${extra[@]+"${extra[@]}"} \
  >"$work/plan.md" 2>"$work/stderr"
rc=$?
set -e

{
  printf '%s\n' "$marker"
  case $rc in
    0 | 2) cat "$work/plan.md" ;;
    *)
      printf '### drover diff failed (exit %s)\n\n' "$rc"
      # shellcheck disable=SC2016 # backticks are Markdown here
      printf 'Comparing `%s` with `%s`:\n\n```text\n' "$base" "$head_ref"
      cat "$work/stderr"
      printf '```\n'
      ;;
  esac
} >"$work/body.md"

if [ "$(wc -c <"$work/body.md")" -gt "$max_chars" ]; then
  head -c "$max_chars" "$work/body.md" >"$work/cut.md"
  # shellcheck disable=SC2016 # backticks are Markdown here
  printf '\n\n*Plan cut at %s characters: run `drover diff --base %s --head %s` to see all of it.*\n' \
    "$max_chars" "$base" "$head_ref" >>"$work/cut.md"
  mv "$work/cut.md" "$work/body.md"
fi

# drover's warnings and errors go to the CI log either way.
cat "$work/stderr" >&2
case $rc in
  0 | 2) status=0 ;;
  *)
    status=1
    echo "pr-comment: drover diff failed (exit $rc)" >&2
    ;;
esac

post() {
  local api=${GITHUB_API_URL:-https://api.github.com}
  local comments="$api/repos/$GITHUB_REPOSITORY/issues/$PR_NUMBER/comments"
  local auth=(-H "Authorization: Bearer $GITHUB_TOKEN"
    -H "Accept: application/vnd.github+json"
    -H "X-GitHub-Api-Version: 2022-11-28")
  local page=1 id="" count
  for tool in curl jq; do
    command -v "$tool" >/dev/null || { echo "pr-comment: $tool is needed to post" >&2; return 1; }
  done
  # Find our earlier comment, page by page.
  while [ -z "$id" ]; do
    curl -fsS "${auth[@]}" "$comments?per_page=100&page=$page" >"$work/page.json" || return 1
    id=$(jq -r --arg m "$marker" '[.[] | select(.body | contains($m))][0].id // empty' "$work/page.json")
    count=$(jq length "$work/page.json")
    [ "$count" -lt 100 ] && break
    page=$((page + 1))
  done
  jq -Rs '{body: .}' "$work/body.md" >"$work/request.json"
  if [ -n "$id" ]; then
    curl -fsS -o /dev/null -X PATCH "${auth[@]}" --data @"$work/request.json" \
      "$api/repos/$GITHUB_REPOSITORY/issues/comments/$id" || return 1
    echo "pr-comment: updated comment $id on #$PR_NUMBER" >&2
  else
    curl -fsS -o /dev/null -X POST "${auth[@]}" --data @"$work/request.json" "$comments" || return 1
    echo "pr-comment: commented on #$PR_NUMBER" >&2
  fi
}

if [ -n "${DROVER_COMMENT_OUT:-}" ]; then
  cp "$work/body.md" "$DROVER_COMMENT_OUT"
elif [ -n "${GITHUB_TOKEN:-}" ] && [ -n "${GITHUB_REPOSITORY:-}" ] && [ -n "${PR_NUMBER:-}" ]; then
  if ! post; then
    echo "pr-comment: could not post the plan to $GITHUB_REPOSITORY#$PR_NUMBER" >&2
    [ "$status" -eq 0 ] && status=3
  fi
else
  cat "$work/body.md"
fi
exit "$status"
