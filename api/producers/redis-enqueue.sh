#!/bin/sh
# Enqueues a document job straight onto the broker with redis-cli: no Python, no HTTP API.
#
#   KMOP_REDIS_URL=redis://127.0.0.1:6379/0 KMOP_REDIS_NAMESPACE=kmop \
#     api/producers/redis-enqueue.sh job.json        # prints the message id
#
# The job is JSON as api/schemas/job.schema.json describes; the message around it follows
# api/schemas/message.schema.json and dramatiq's Redis layout: the message is stored in the hash
# <namespace>:documents.msgs under a fresh redis message id, and that id is pushed on the list
# <namespace>:documents, both in one MULTI/EXEC so a crash cannot leave half a message.
# Nothing is validated here: the worker validates the job and dead-letters an invalid one
# (`kmop dead-letters` shows why). Needs redis-cli and a Linux /proc (or uuidgen) for UUIDs.
set -eu

job_file="${1:?usage: redis-enqueue.sh JOB.json}"
url="${KMOP_REDIS_URL:-redis://127.0.0.1:6379/0}"
namespace="${KMOP_REDIS_NAMESPACE:-kmop}"
queue="documents"

uuid() {
  if [ -r /proc/sys/kernel/random/uuid ]; then cat /proc/sys/kernel/random/uuid; else uuidgen | tr 'A-F' 'a-f'; fi
}

message_id="$(uuid)"
redis_message_id="$(uuid)"
now_ms="$(date +%s%3N)"
case "$now_ms" in *N) now_ms="$(date +%s)000" ;; esac  # a date(1) without %N

# JSON allows newlines only as whitespace between tokens, so they become spaces; then the text
# is quoted for redis-cli: backslashes and double quotes escaped.
job="$(tr '\r\n' '  ' < "$job_file")"
message="{\"queue_name\":\"$queue\",\"actor_name\":\"generate_document\",\"args\":[$job],\"kwargs\":{},\"options\":{\"redis_message_id\":\"$redis_message_id\"},\"message_id\":\"$message_id\",\"message_timestamp\":$now_ms}"
quoted="$(printf '%s' "$message" | sed -e 's/\\/\\\\/g' -e 's/"/\\"/g')"

reply="$(printf 'MULTI\nHSET %s "%s"\nRPUSH %s %s\nEXEC\n' \
  "$namespace:$queue.msgs $redis_message_id" "$quoted" "$namespace:$queue" "$redis_message_id" \
  | redis-cli -u "$url")"
case "$reply" in
  *ERR*|*EXECABORT*) echo "redis refused the message: $reply" >&2; exit 1 ;;
esac
echo "$message_id"
