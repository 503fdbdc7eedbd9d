#!/usr/bin/env bash
# bench/run.sh — `make bench`: qsurgeon against the tools admins use today, on
# generated queues in the real Postfix and qmail formats (internal/gen).
#
# Every figure is measured in this run, with the real tools (postqueue,
# postsuper, postcat, qshape, grep, find/cat, rm). Nothing is estimated except
# the postcat-per-message row, which is sampled and extrapolated (and says so).
#
# Environment:
#   BENCH_SIZES="100000 1000000"  Postfix queue sizes
#   BENCH_QMAIL=450000            qmail queue size (0: skip qmail)
#   QUICK=1                       BENCH_SIZES=20000 BENCH_QMAIL=20000, output to $BENCH_DIR only
#   BENCH_CACHE=cold|warm         cold (default): drop_caches before every timed command;
#                                 warm: no drop (BENCH_WARMUP=1 adds an untimed read pass
#                                 before each block). Either way the read-only commands
#                                 run a second time right after the first ("again"), so
#                                 they find what their own first run read in the page cache
#   BENCH_DIR=/var/tmp/qsurgeon-bench   scratch space (needs ~8 GB per 1M messages)
#   BENCH_OUT=docs/benchmarks.md  the report (regenerated)
#   BENCH_SAMPLE=1000             postcat sample size
#   BENCH_KEEP=1                  keep the generated queues
#   BENCH_MAILLOG_MB=1024         size of the mail log bench/maillog.sh reads beside
#                                 `grep -c sasl_username` (QUICK=1: 64; 0: skip that section)
set -uo pipefail

cd "$(dirname "$0")/.."
REPO=$PWD
QUICK=${QUICK:-0}
if [ "$QUICK" = 1 ]; then
	BENCH_SIZES=${BENCH_SIZES:-20000}
	BENCH_QMAIL=${BENCH_QMAIL:-20000}
fi
BENCH_SIZES=${BENCH_SIZES:-100000 1000000}
BENCH_QMAIL=${BENCH_QMAIL:-450000}
BENCH_CACHE=${BENCH_CACHE:-cold}
BENCH_DIR=${BENCH_DIR:-/var/tmp/qsurgeon-bench}
BENCH_SAMPLE=${BENCH_SAMPLE:-1000}
if [ "$QUICK" = 1 ]; then
	BENCH_OUT=${BENCH_OUT:-$BENCH_DIR/benchmarks-quick.md}
else
	BENCH_OUT=${BENCH_OUT:-docs/benchmarks.md}
fi
SEED=${BENCH_SEED:-1}
NOW=${BENCH_NOW:-2026-11-22T16:00:00Z}
USER_U=hello@example.com
# What one selected message costs the process once the selection is made
# (a queue.Message, its filter.Result and its ID, path and sender; measured
# in bench/notes.md, "Memory of the selection"): issue 15's qmail target is
# 60 MB plus this much per selected message.
SEL_BYTES=490
SENDER_S=newsletter@example.com

log() { printf '%s bench: %s\n' "$(date +%T)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root (postqueue/postsuper on a private queue, drop_caches, chown)"

# ---- tools ---------------------------------------------------------------
need_apt=()
[ -x /usr/bin/time ] || need_apt+=(time)
command -v jq >/dev/null || need_apt+=(jq)
if [ ${#need_apt[@]} -gt 0 ]; then
	log "installing ${need_apt[*]} with apt-get (bench only)"
	apt-get install -y -q "${need_apt[@]}" >/dev/null || die "apt-get install ${need_apt[*]} failed"
	APT_NOTE="Installed for the benchmark with apt-get: ${need_apt[*]}."
else
	APT_NOTE="jq and GNU time were already installed."
fi
for t in postqueue postsuper postcat qshape grep find xargs; do
	command -v $t >/dev/null || die "$t not found"
done

mkdir -p "$BENCH_DIR" bin
chmod 755 "$BENCH_DIR"
W=$BENCH_DIR/work
rm -rf "$W"
mkdir -p "$W"

log "building qsurgeon-gen and qsurgeon"
go build -o bin/qsurgeon-gen ./cmd/qsurgeon-gen || die "cannot build qsurgeon-gen"
GEN=$REPO/bin/qsurgeon-gen
QS=$REPO/bin/qsurgeon
QS_BUILT=1
if ! go build -o bin/qsurgeon ./cmd/qsurgeon 2>"$W/build.err"; then
	QS_BUILT=0
	log "qsurgeon does not build; its rows will say n/a (not built)"
fi
ENVREAD=$REPO/bin/envread
go build -o bin/envread ./bench/envread || die "cannot build bench/envread"
QS_DELETE=0
if [ $QS_BUILT = 1 ] && "$QS" delete --help >/dev/null 2>&1; then
	QS_DELETE=1
fi

# ---- measuring -------------------------------------------------------------
declare -A T RSS N NOTE T2 RSS2
CACHE_STATE="warm"
prep() {
	# Flush dirty pages first, so that the writeback of what an earlier step
	# wrote does not land in this step's time.
	sync
	if [ "$BENCH_CACHE" = cold ]; then
		if echo 3 >/proc/sys/vm/drop_caches 2>/dev/null; then CACHE_STATE=cold; else CACHE_STATE="warm (drop_caches refused)"; fi
	fi
}
# warm ROOT DIRS...: one untimed read pass over every file (warm mode only).
warm() {
	[ "$BENCH_CACHE" = warm ] && [ "${BENCH_WARMUP:-0}" = 1 ] || return 0
	local root=$1; shift
	(cd "$root" && find "$@" -type f -print0 2>/dev/null | xargs -0 -r cat >/dev/null 2>&1)
}
# timed KEY COUNTCMD CMD [again]: run CMD (bash) under GNU time; T = wall
# seconds, RSS = peak resident MB of the largest process, N = lines of
# stdout (or the output of COUNTCMD run on the stdout file when given).
# With "again" (read-only commands), CMD runs a second time straight after
# the first, without dropping the cache: T2/RSS2.
timed() {
	local key=$1 count=$2 cmd=$3 again=${4:-}
	prep
	log "  $key"
	/usr/bin/time -f '%e %M' -o "$W/time.$key" bash -c "$cmd" >"$W/out.$key" 2>"$W/err.$key"
	local rc=$?
	local secs kb
	read -r secs kb < <(tail -n1 "$W/time.$key")
	T[$key]=$secs
	RSS[$key]=$(( ${kb:-0} / 1024 ))
	if [ "$again" = again ]; then
		sync
		log "  $key (again)"
		/usr/bin/time -f '%e %M' -o "$W/time2.$key" bash -c "$cmd" >/dev/null 2>&1
		read -r secs kb < <(tail -n1 "$W/time2.$key")
		T2[$key]=$secs
		RSS2[$key]=$(( ${kb:-0} / 1024 ))
	fi
	if [ -n "$count" ]; then
		N[$key]=$(bash -c "$count" <"$W/out.$key")
	else
		N[$key]=$(wc -l <"$W/out.$key")
	fi
	if [ $rc != 0 ]; then
		NOTE[$key]="exit $rc: $(head -c 200 "$W/err.$key" | tr '\n' ' ')"
		log "  $key failed (exit $rc): $(head -c 300 "$W/err.$key")"
	fi
}
na() { T[$1]="n/a"; RSS[$1]=""; N[$1]=""; NOTE[$1]=$2; }

# ratio A B: A/B to 2 decimals, or "" when either is missing; ratio2 is the
# same for the "again" runs.
div() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "" || b+0 == 0) { print "" } else printf "%.2f×", a/b }'; }
ratio() {
	local a=${T[$1]:-} b=${T[$2]:-}
	case "$a$b" in *n/a*|"") echo ""; return;; esac
	div "$a" "$b"
}
ratio2() {
	local a=${T2[$1]:-} b=${T2[$2]:-}
	case "$a$b" in *n/a*|"") echo ""; return;; esac
	div "$a" "$b"
}

# row KEY "task" "tool": a table row; the ratios are against $BASE.
row() {
	local key=$1 task=$2 tool=$3 r="" r2=""
	[ "$key" != "$BASE" ] && r=$(ratio "$key" "$BASE") && r2=$(ratio2 "$key" "$BASE")
	[ "$key" = "$BASE" ] && [ "${T[$key]}" != "n/a" ] && r="1.00×" && [ -n "${T2[$key]:-}" ] && r2="1.00×"
	local rss=${RSS[$key]:-}
	[ -n "$rss" ] && rss="$rss MB"
	printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$task" "$tool" "${T[$key]:-n/a}" "$r" "${T2[$key]:-–}" "${r2:-–}" "$rss" "${N[$key]:-}" "${NOTE[$key]:-}" >>"$REPORT"
}

pfconf() { # pfconf ROOT CONFDIR
	mkdir -p "$2"
	printf 'queue_directory = %s\ncompatibility_level = 3.6\n' "$1" >"$2/main.cf"
	: >"$2/master.cf"
}

gen() { # gen MTA ROOT N [extra flags]
	local mta=$1 root=$2 n=$3; shift 3
	rm -rf "$root"
	mkdir -p "$(dirname "$root")"
	chmod 755 "$(dirname "$root")"
	local t0=$SECONDS
	"$GEN" -mta "$mta" -root "$root" -n "$n" -seed "$SEED" -now "$NOW" "$@" >"$root.stats.json" || die "generation failed"
	log "  generated $n $mta messages in $((SECONDS - t0)) s"
}

jsonval() { jq -r "$2" "$1"; }

REPORT=$W/report.md
: >"$REPORT"
GROWTH=$W/growth.tsv
: >"$GROWTH"
RSSF=$W/rss.tsv
: >"$RSSF"

# ---- issue 15: the envelope floor, peak RSS per command, seed 003 ----------------
# pf_envelope_floor ROOT DIRS...: the physical limit of a selection by
# envelope (bench/envread: open each queue file and read its first 4 KB,
# as many readers at once as qsurgeon's scan), cold and again.
pf_envelope_floor() {
	local root=$1; shift
	timed pf_env "" "exec $ENVREAD $root $*" again
	N[pf_env]="$(awk '{print $1}' "$W/out.pf_env") files"
	NOTE[pf_env]="${NOTE[pf_env]:-}$(awk '{printf "%.0f MB read by %d readers", $3/1048576, $7}' "$W/out.pf_env")"
}
# timed_split KEY CMD: timed, with --journal $W/journal.KEY added by the
# caller to CMD; afterwards SPLIT[KEY] is "S s scan + U s acting": the
# journal's first record is written once the selection is complete, just
# before the first unlink (the preview and --max need the whole selection).
declare -A SPLIT
timed_split() {
	local key=$1 cmd=$2
	rm -f "$W/journal.$key"
	timed "$key" "" "date +%s.%N >$W/t0.$key; $cmd"
	local t0 first
	t0=$(cat "$W/t0.$key" 2>/dev/null)
	first=$(head -n 1 "$W/journal.$key" 2>/dev/null | jq -r '.time // empty' 2>/dev/null)
	if [ -n "$t0" ] && [ -n "$first" ]; then
		SPLIT[$key]=$(awk -v t0="$t0" -v t1="$(date -d "$first" +%s.%N)" -v all="${T[$key]}" 'BEGIN{printf "%.1f s scan + %.1f s acting", t1-t0, all-(t1-t0)}')
	else
		SPLIT[$key]=""
	fi
}
# rss_record MTA N KEY COMMAND: one cell of the peak-RSS table ($RSSF).
rss_record() {
	local v=${RSS[$3]:-}
	[ -n "$v" ] && [ "${T[$3]:-n/a}" != "n/a" ] || v="n/a"
	printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$4" "$v" >>"$RSSF"
}
# report_rss: peak RSS per command at each size, one row per queue.
report_rss() {
	[ -s "$RSSF" ] || return 0
	echo
	echo "## Peak RSS per command"
	echo
	echo "Peak resident memory (GNU time \`%M\`, MB) of each qsurgeon command in this run, per queue and size."
	echo "What the selection itself needs: $SEL_BYTES bytes per selected message once the selection is made (bench/notes.md,"
	echo "\"Memory of the selection\"); issue 15's qmail target is 60 MB plus that times the selected count${TGT_QMAIL_RSS:+ ($TGT_QMAIL_RSS)}."
	echo
	awk -F'\t' '
		{ k = $1 " " $2; if (!(k in seen)) { seen[k] = 1; rows[++nr] = k } if (!($3 in col)) { col[$3] = 1; cols[++nc] = $3 } v[k, $3] = $4 }
		END {
			printf "| queue |"; for (c = 1; c <= nc; c++) printf " %s |", cols[c]; printf "\n|---|"
			for (c = 1; c <= nc; c++) printf "---:|"; printf "\n"
			for (r = 1; r <= nr; r++) { printf "| %s |", rows[r]; for (c = 1; c <= nc; c++) { x = v[rows[r], cols[c]]; printf " %s |", (x == "" ? "–" : x) } printf "\n" }
		}' "$RSSF"
}

# ---- summary, first answer (issue 15) -------------------------------------------
# first_answer LABEL ROOT N TRUTH EXACTKEY [QSHAPEKEY]: `summary --sample 4000
# --sample-only` (the estimate alone: who is it, and how much), cold, against the
# exact `summary` and qshape. EXACTKEY/QSHAPEKEY are the keys under which the
# caller measured those (measured here when it did not); TRUTH is the generator's
# count of the compromised account's messages. Rows go to $FIRST (one table of
# every size, printed after the results).
FIRST=$W/first.md
: >"$FIRST"
first_answer() {
	local label=$1 root=$2 n=$3 truth=$4 exact=$5 qshape=${6:-} key=fa_${1,,}
	[ $QS_BUILT = 1 ] || return 0
	timed "$key" "jq -r '.sample.top_sasl_users[0] | \"\\(.key) \\(.share*1000|round/10)% [\\(.ci_low*1000|round/10)–\\(.ci_high*1000|round/10)]\"'" \
		"exec $QS --queue $root --format json summary --sample 4000 --sample-only"
	if [ -z "${T[$exact]:-}" ]; then
		timed "$exact" "" "exec $QS --queue $root summary"
	fi
	local truthpct
	truthpct=$(awk -v a="$truth" -v b="$n" 'BEGIN{printf "%.1f%%", 100*a/b}')
	{
		printf '| %s | %s | `qsurgeon summary --sample 4000 --sample-only` | %s | %s | %s | %s MB | %s (truth %s %s) | %s |\n' "$label" "$n" "${T[$key]}" "$(ratio "$key" "$exact")" "$(ratio "$key" "${qshape:-$exact}")" "${RSS[$key]}" "${N[$key]}" "$USER_U" "$truthpct" "${NOTE[$key]:-}"
		printf '| %s | %s | `qsurgeon summary` (exact) | %s | 1.00× | %s | %s MB | | |\n' "$label" "$n" "${T[$exact]}" "$( [ -n "$qshape" ] && ratio "$exact" "$qshape")" "${RSS[$exact]:-}"
		[ -n "$qshape" ] && printf '| %s | %s | `qshape` (all queues) | %s | %s | 1.00× | %s MB | | |\n' "$label" "$n" "${T[$qshape]}" "$(ratio "$qshape" "$exact")" "${RSS[$qshape]:-}"
	} >>"$FIRST"
	TGT_FIRST="${TGT_FIRST:+$TGT_FIRST; }$label $n: the estimate in ${T[$key]} s cold (${N[$key]}, truth $truthpct), the exact summary ${T[$exact]} s"
}

# ---- Postfix -----------------------------------------------------------------
postfix_size() {
	local n=$1 D=$BENCH_DIR/pf-$n
	rm -rf "$D"
	mkdir -p "$D"
	chmod 755 "$D"
	log "Postfix $n: generating"
	local t0=$SECONDS
	gen postfix "$D/a" "$n" -manifest "$D/a.manifest.jsonl"
	local gen_secs=$((SECONDS - t0))
	pfconf "$D/a" "$D/conf-a"
	local want sel_files
	want=$(jsonval "$D/a.stats.json" .compromised_messages)
	jq -r --arg u "$USER_U" 'select(.SASLUser == $u) | .Path' "$D/a.manifest.jsonl" >"$D/sel.paths"
	awk -F/ '{print $NF}' "$D/sel.paths" >"$D/sel.ids"
	local bytes files
	bytes=$(jsonval "$D/a.stats.json" .bytes)
	files=$(jsonval "$D/a.stats.json" .files)
	local Q="deferred hold incoming active maildrop"

	log "Postfix $n: select"
	warm "$D/a" $Q defer bounce
	if [ $QS_BUILT = 1 ]; then
		timed pf_qs_list "" "exec $QS --queue $D/a --format ids list --sasl-user $USER_U" again
	else
		na pf_qs_list "n/a (not built)"
	fi
	timed pf_grep "" "cd $D/a && exec grep -rl --binary-files=text 'sasl_username=$USER_U' $Q" again
	pf_envelope_floor "$D/a" $Q
	timed pf_cat "" "cd $D/a && find $Q -type f -print0 | xargs -0 cat | wc -c"
	N[pf_cat]="$(awk '{printf "%.0f MB", $1/1048576}' "$W/out.pf_cat")"
	timed pf_pq "" "postqueue -c $D/conf-a -j | jq -r --arg s $SENDER_S 'select(.sender == \$s) | .queue_id'" again
	NOTE[pf_pq]="${NOTE[pf_pq]:-}selects sender $SENDER_S: postqueue -j shows no SASL user or client"
	# postcat per message, sampled.
	(cd "$D/a" && find $Q -type f) | awk -v n="$BENCH_SAMPLE" -v tot="$n" 'BEGIN{step=int(tot/n); if(step<1)step=1} NR%step==0 && c<n {print; c++}' >"$D/sample"
	local ns
	ns=$(wc -l <"$D/sample")
	timed pf_postcat "" "cd $D/a && while read -r f; do postcat -c $D/conf-a \"\$f\" 2>/dev/null | grep -q 'sasl_username=$USER_U' && echo \"\$f\"; done <$D/sample; true"
	local sampled=${T[pf_postcat]} hits=${N[pf_postcat]}
	T[pf_postcat]=$(awk -v t="$sampled" -v s="$ns" -v n="$n" 'BEGIN{printf "%.1f", t*n/s}')
	N[pf_postcat]="~$(awk -v h="$hits" -v s="$ns" -v n="$n" 'BEGIN{printf "%.0f", h*n/s}')"
	NOTE[pf_postcat]="extrapolated: $ns files took ${sampled} s, ×$n/$ns"

	log "Postfix $n: summary"
	if [ $QS_BUILT = 1 ]; then
		timed pf_qs_summary "" "exec $QS --queue $D/a summary" again
	else
		na pf_qs_summary "n/a (not built)"
	fi
	timed pf_qshape "" "exec qshape -c $D/conf-a hold incoming active deferred maildrop" again
	first_answer "Postfix" "$D/a" "$n" "$want" pf_qs_summary pf_qshape

	log "Postfix $n: delete"
	# One queue, four disjoint sets of the same size: qsurgeon deletes the
	# SASL user's mail (scanning the whole queue); then postsuper -d -,
	# qsurgeon delete --id - and xargs rm delete as many other messages,
	# given their IDs/paths (alternate messages of the same kind, so the
	# postsuper and qsurgeon sets are alike).
	local k
	k=$(wc -l <"$D/sel.ids")
	jq -r 'select(.Kind == "legit-sasl") | [.ID, (.Files | join(" "))] | @tsv' "$D/a.manifest.jsonl" | head -n "$((3 * k))" >"$D/legit.tsv"
	awk 'NR % 3 == 1' "$D/legit.tsv" | cut -f1 >"$D/P.ids"
	awk 'NR % 3 == 2' "$D/legit.tsv" | cut -f1 >"$D/Q.ids"
	awk 'NR % 3 == 0' "$D/legit.tsv" | cut -f2 | tr ' ' '\n' >"$D/R.paths"
	if [ $QS_DELETE = 1 ]; then
		local before
		before=$(find "$D/a" -type f | wc -l)
		timed_split pf_qs_delete "exec $QS --queue $D/a delete --sasl-user $USER_U --yes --journal $W/journal.pf_qs_delete"
		[ -n "${SPLIT[pf_qs_delete]}" ] && NOTE[pf_qs_delete]="${SPLIT[pf_qs_delete]} (journal); "
		N[pf_qs_delete]="$(( before - $(find "$D/a" -type f | wc -l) )) files"
		NOTE[pf_qs_delete]="${NOTE[pf_qs_delete]:-}messages + their logs; includes the scan of the whole queue"
	else
		na pf_qs_delete "n/a (not built)"
	fi
	local left_a
	left_a=$(cd "$D/a" && grep -rl --binary-files=text "sasl_username=$USER_U" $Q | wc -l)
	timed pf_postsuper "grep -o 'Deleted: [0-9]*' $W/err.pf_postsuper | grep -o '[0-9]*'" "exec postsuper -c $D/conf-a -d - <$D/P.ids"
	N[pf_postsuper]="${N[pf_postsuper]} msgs"
	NOTE[pf_postsuper]="fed $(wc -l <"$D/P.ids") IDs of other messages on stdin (no selection; see Method)"
	if [ $QS_DELETE = 1 ]; then
		timed pf_qs_delid "" "exec $QS --queue $D/a --no-progress delete --id - --yes --journal $W/journal.pf_qs_delid <$D/Q.ids"
		N[pf_qs_delid]="$(grep -o '[0-9]* done' "$W/err.pf_qs_delid" | grep -o '[0-9]*') msgs"
		NOTE[pf_qs_delid]="${NOTE[pf_qs_delid]:-}fed $(wc -l <"$D/Q.ids") IDs of other messages on stdin, as postsuper was"
	else
		na pf_qs_delid "n/a (not built)"
	fi
	timed pf_rm "" "cd $D/a && xargs rm <$D/R.paths"
	N[pf_rm]="$(wc -l <"$D/R.paths") files"
	NOTE[pf_rm]="$k other messages + their logs, paths given (no selection)"

	BASE=pf_qs_list
	{
		echo
		echo "### Postfix, $n messages"
		echo
		echo "$files files, $((bytes / 1048576)) MB ($(jq -r '.by_queue | to_entries | map("\(.value) \(.key)") | join(", ")' "$D/a.stats.json")); generated in $gen_secs s."
		echo "Selection: SASL user \`$USER_U\`, $want messages ($(awk -v a="$want" -v b="$n" 'BEGIN{printf "%.1f", 100*a/b}')%). Cache: $CACHE_STATE."
		echo
		echo "| task | tool | seconds | vs qsurgeon | again s | vs qsurgeon | peak RSS | result | note |"
		echo "|---|---|---:|---:|---:|---:|---:|---:|---|"
	} >>"$REPORT"
	row pf_qs_list "select SASL user" "\`qsurgeon --format ids list --sasl-user\`"
	row pf_grep "select SASL user" "\`grep -rl 'sasl_username=U'\` (raw floor)"
	row pf_env "read the envelopes" "first 4 KB of each file, as many readers as qsurgeon (envelope floor)"
	row pf_cat "read every byte" "\`find -type f | xargs cat\` (read floor)"
	row pf_pq "select by sender" "\`postqueue -j | jq\`"
	row pf_postcat "select SASL user" "\`postcat\` per message + grep"
	BASE=pf_qs_summary
	row pf_qs_summary "summary" "\`qsurgeon summary\`"
	row pf_qshape "summary" "\`qshape\` (all queues)"
	BASE=pf_qs_delete
	row pf_qs_delete "delete the selection" "\`qsurgeon delete --sasl-user U --yes\`"
	row pf_postsuper "delete as many other messages" "\`postsuper -d -\`"
	row pf_qs_delid "delete as many other messages" "\`qsurgeon delete --id - --yes\`"
	row pf_rm "delete as many other messages" "\`xargs rm\` (unlink floor)"
	if [ "${T[pf_qs_delete]}" != "n/a" ]; then
		echo >>"$REPORT"
		echo "After \`qsurgeon delete\`, grep finds $left_a files of \`$USER_U\` left in the queue." >>"$REPORT"
	fi
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$n" "${T[pf_qs_list]}" "${T2[pf_qs_list]:-}" "${RSS[pf_qs_list]}" "${T[pf_qs_summary]}" "${RSS[pf_qs_summary]}" "${T[pf_qs_delete]}" "${RSS[pf_qs_delete]}" "${T[pf_qs_delid]:-}" "${T[pf_grep]}" "${T[pf_pq]}" >>"$GROWTH"
	# Targets (the issue's), for the largest size the last one wins.
	TGT_N=$n
	TGT_SELECT="cold: $(ratio pf_qs_list pf_grep) of grep -rl, postqueue -j takes $(ratio pf_pq pf_qs_list) qsurgeon's time; again: $(ratio2 pf_qs_list pf_grep) of grep -rl, postqueue -j $(ratio2 pf_pq pf_qs_list)"
	TGT_DELETE="qsurgeon delete --id - $(ratio pf_qs_delid pf_postsuper) of postsuper -d - fed as many IDs"
	TGT_RSS="list ${RSS[pf_qs_list]:-n/a} MB, summary ${RSS[pf_qs_summary]:-n/a} MB, delete ${RSS[pf_qs_delete]:-n/a} MB"
	TGT_E2E="${T[pf_qs_delete]} s${SPLIT[pf_qs_delete]:+ (${SPLIT[pf_qs_delete]})}; a cold list alone: ${T[pf_qs_list]} s, \`xargs rm\` of as many files (paths given, cold): ${T[pf_rm]} s"
	TGT_ENV="cold: $(ratio pf_qs_list pf_env) of the envelope-read floor (${T[pf_qs_list]} s against ${T[pf_env]} s); again: $(ratio2 pf_qs_list pf_env)"
	rss_record Postfix "$n" pf_qs_list "list --sasl-user"
	rss_record Postfix "$n" pf_qs_summary "summary"
	rss_record Postfix "$n" pf_qs_delete "delete --sasl-user"
	rss_record Postfix "$n" pf_qs_delid "delete --id -"
	for k in "${!T[@]}"; do unset "T[$k]" "RSS[$k]" "N[$k]" "NOTE[$k]" "T2[$k]" "RSS2[$k]"; done
}

# ---- qmail ---------------------------------------------------------------------
qmail_size() {
	local n=$1 D=$BENCH_DIR/qm-$n
	rm -rf "$D"
	mkdir -p "$D/a"
	chmod 755 "$D"
	log "qmail $n: generating"
	local t0=$SECONDS
	gen qmail "$D/a/queue" "$n" -manifest "$D/a.manifest.jsonl"
	local gen_secs=$((SECONDS - t0))
	local R=$D/a/queue
	local want_u want_s bytes files
	want_u=$(jsonval "$R.stats.json" .compromised_messages)
	want_s=$(jsonval "$R.stats.json" .newsletter_messages)
	bytes=$(jsonval "$R.stats.json" .bytes)
	files=$(jsonval "$R.stats.json" .files)
	local byq
	byq=$(jq -r '.by_queue | to_entries | map("\(.value) \(.key)") | join(", ")' "$R.stats.json")
	warm "$R" mess info local remote todo intd bounce
	log "qmail $n: select"
	if [ $QS_BUILT = 1 ]; then
		timed qm_qs_user "" "exec $QS --queue $R --format ids list --sasl-user $USER_U" again
		timed qm_qs_sender "" "exec $QS --queue $R --format ids list --sender $SENDER_S" again
		timed qm_qs_summary "" "exec $QS --queue $R summary"
	else
		na qm_qs_user "n/a (not built)"; na qm_qs_sender "n/a (not built)"; na qm_qs_summary "n/a (not built)"
	fi
	first_answer "qmail" "$R" "$n" "$want_u" qm_qs_summary
	timed qm_cat "" "cd $R && find mess info -type f -print0 | xargs -0 cat | wc -c" again
	N[qm_cat]="$(awk '{printf "%.0f MB", $1/1048576}' "$W/out.qm_cat")"
	timed qm_grep_user "" "cd $R && exec grep -rlF --binary-files=text '($USER_U@' mess" again
	NOTE[qm_grep_user]="matches the AUTH user anywhere in mess (no ESMTPA check)"
	timed qm_grep_sender "" "cd $R && exec grep -rlFx --binary-files=text -z 'F$SENDER_S' info todo" again
	log "qmail $n: delete"
	local k
	k=$want_u
	jq -r 'select(.Kind == "legit-sasl") | .Files | join(" ")' "$D/a.manifest.jsonl" | head -n "$k" | tr ' ' '\n' >"$D/R.paths"
	if [ $QS_DELETE = 1 ]; then
		local before
		before=$(find "$R" -type f | wc -l)
		timed qm_qs_delete "" "exec $QS --queue $R delete --sasl-user $USER_U --yes"
		N[qm_qs_delete]="$(( before - $(find "$R" -type f | wc -l) )) files"
		NOTE[qm_qs_delete]="${NOTE[qm_qs_delete]:-}includes the scan of the whole queue"
	else
		na qm_qs_delete "n/a (not built)"
	fi
	timed qm_rm "" "cd $R && xargs rm <$D/R.paths"
	N[qm_rm]="$(wc -l <"$D/R.paths") files"
	NOTE[qm_rm]="$k other messages' files, paths given (no selection)"
	{
		echo
		echo "### qmail, $n messages"
		echo
		echo "$files files, $((bytes / 1048576)) MB (split 23; $byq); generated in $gen_secs s."
		echo "Selections: AUTH user \`$USER_U\` ($want_u messages), sender \`$SENDER_S\` ($want_s messages). Cache: $CACHE_STATE."
		echo
		echo "| task | tool | seconds | vs qsurgeon | again s | vs qsurgeon | peak RSS | result | note |"
		echo "|---|---|---:|---:|---:|---:|---:|---:|---|"
	} >>"$REPORT"
	BASE=qm_qs_user
	row qm_qs_user "select AUTH user" "\`qsurgeon --format ids list --sasl-user\`"
	row qm_grep_user "select AUTH user" "\`grep -rlF '(U@' mess\` (raw floor)"
	row qm_cat "read mess+info" "\`find mess info | xargs cat\` (read floor)"
	BASE=qm_qs_sender
	row qm_qs_sender "select sender" "\`qsurgeon --format ids list --sender\`"
	row qm_grep_sender "select sender" "\`grep -z 'F<sender>' info todo\` (raw floor)"
	BASE=qm_qs_summary
	row qm_qs_summary "summary" "\`qsurgeon summary\`"
	BASE=qm_qs_delete
	row qm_qs_delete "delete AUTH user's mail" "\`qsurgeon delete --sasl-user U --yes\`"
	row qm_rm "delete as many other messages" "\`xargs rm\` of its files (unlink floor)"
	TGT_QMAIL="cold: select AUTH user $(ratio qm_qs_user qm_grep_user) of \`grep -rlF\` over mess/, sender $(ratio qm_qs_sender qm_grep_sender) of \`grep -z\` over info/+todo/ ($(ratio qm_qs_user qm_cat) and $(ratio qm_qs_sender qm_cat) of the mess+info read floor); again: AUTH user $(ratio2 qm_qs_user qm_grep_user), sender $(ratio2 qm_qs_sender qm_grep_sender) of grep; peak RSS list ${RSS[qm_qs_user]:-n/a} MB, summary ${RSS[qm_qs_summary]:-n/a} MB, delete ${RSS[qm_qs_delete]:-n/a} MB"
	TGT_QMAIL_N=$n
	# Issue 15's memory target: 60 MB plus what the selection itself needs,
	# SEL_BYTES a selected message (bench/notes.md, "Memory of the selection").
	TGT_QMAIL_RSS="60 MB + $want_u × $SEL_BYTES B = $(awk -v n="$want_u" -v b="$SEL_BYTES" 'BEGIN{printf "%.0f", 60 + n*b/1048576}') MB"
	rss_record qmail "$n" qm_qs_user "list --sasl-user"
	rss_record qmail "$n" qm_qs_sender "list --sender"
	rss_record qmail "$n" qm_qs_summary "summary"
	rss_record qmail "$n" qm_qs_delete "delete --sasl-user"
}

# This VM's memory manager may page out what was not touched for a while
# (DAMON_RECLAIM): say so, since it decides what "warm" can mean here.
DAMON_NOTE="No proactive reclaim (DAMON) runs on this machine."
dk=/sys/kernel/mm/damon/admin/kdamonds/0
if [ "$(cat $dk/state 2>/dev/null)" = on ] && [ "$(cat $dk/contexts/0/schemes/0/action 2>/dev/null)" = pageout ]; then
	age=$(cat $dk/contexts/0/schemes/0/access_pattern/age/min)
	aggr=$(cat $dk/contexts/0/monitoring_attrs/intervals/aggr_us)
	DAMON_NOTE="This VM runs DAMON proactive reclaim (kdamond, action pageout): memory not accessed for $((age * aggr / 1000000)) s is paged out, page cache included, whatever RAM is free. A queue that takes longer than that to read in one pass cannot stay cached here: a tool that reads every byte of a 1M queue reads it from disk even right after its own previous run."
fi

BENCH_KEEP=${BENCH_KEEP:-0}
START=$(date -u +%FT%TZ)
LOAD_START=$(cut -d" " -f1-3 /proc/loadavg)
for n in $BENCH_SIZES; do postfix_size "$n"; done
[ "$BENCH_QMAIL" -gt 0 ] && qmail_size "$BENCH_QMAIL"

# ---- mail logs (issue 13): qsurgeon accounts/impact beside grep -c --------------
# bench/maillog.sh on the fixture's real maillog repeated to BENCH_MAILLOG_MB:
# cold (drop_caches before each command) unless BENCH_CACHE=warm, and warm.
if [ "$QUICK" = 1 ]; then
	BENCH_MAILLOG_MB=${BENCH_MAILLOG_MB:-64}
fi
BENCH_MAILLOG_MB=${BENCH_MAILLOG_MB:-1024}
MAILLOG_OUT=$W/maillog.md
: >"$MAILLOG_OUT"
if [ "$BENCH_MAILLOG_MB" -gt 0 ] && [ "$QS_BUILT" = 1 ]; then
	log "mail log: ${BENCH_MAILLOG_MB} MB, qsurgeon accounts/impact beside grep -c sasl_username"
	passes="cold warm"
	[ "$BENCH_CACHE" = warm ] && passes=warm
	if ! MAILLOG_MB=$BENCH_MAILLOG_MB BENCH_DIR=$BENCH_DIR QS=$QS MAILLOG_PASSES=$passes bash bench/maillog.sh >"$MAILLOG_OUT" 2>"$W/maillog.err"; then
		log "bench/maillog.sh failed: $(head -c 300 "$W/maillog.err")"
		echo "bench/maillog.sh failed: $(head -c 300 "$W/maillog.err" | tr '\n' ' ')" >>"$MAILLOG_OUT"
	fi
fi

# ---- report ------------------------------------------------------------------------
fs=$(df -T "$BENCH_DIR" | awk 'NR==2{print $2}')
dev=$(df "$BENCH_DIR" | awk 'NR==2{print $1}')
mnt=$(findmnt -no OPTIONS -T "$BENCH_DIR" 2>/dev/null)
{
	echo "# Benchmarks"
	echo
	echo "Generated by \`make bench\` (bench/run.sh) on $START; do not edit by hand — the analysis"
	echo "below the tables comes from bench/notes.md."
	echo
	echo "## Machine"
	echo
	echo "| | |"
	echo "|---|---|"
	echo "| CPUs | $(nproc) × $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //') |"
	echo "| memory | $(awk '/MemTotal/{printf "%.1f GB", $2/1048576}' /proc/meminfo) |"
	echo "| kernel | $(uname -r) |"
	echo "| file system | $fs on $dev ($mnt) |"
	echo "| Go | $(go version | awk '{print $3}') |"
	echo "| qsurgeon | commit $(git rev-parse --short HEAD 2>/dev/null)$(git diff --quiet HEAD -- cmd filter postfixq qmailq queue internal 2>/dev/null || echo ' + uncommitted changes in the working tree') |"
	echo "| Postfix | $(postconf -d mail_version 2>/dev/null | awk '{print $3}') (postqueue, postsuper, postcat, qshape from the distribution) |"
	echo "| date | $START |"
	echo
	echo "## Method"
	echo
	echo "* Queues are written by \`qsurgeon-gen\` (internal/gen) in the real on-disk formats, checked by its"
	echo "  test with the real \`postcat\`, \`postqueue -j\` and \`qshape\`. Seed $SEED, now = $NOW."
	echo "* Cache: **$BENCH_CACHE**. $( [ "$BENCH_CACHE" = warm ] && echo "No cache is dropped (BENCH_WARMUP=1 adds an untimed read pass before each block)." || echo "\`echo 3 > /proc/sys/vm/drop_caches\` before every timed command (the \"seconds\" column): the queue of a server in trouble is not in its page cache either, and it is the only state every tool can be given alike here.") The read-only commands then run a second time straight after the first (\"again s\"), finding in the page cache what their own first run read, as far as this machine keeps it."
	echo "* $DAMON_NOTE"
	echo "* Load average at the start of the run: $LOAD_START; at the end: $(cut -d' ' -f1-3 /proc/loadavg)."
	echo "* \`sync\` (untimed) before every timed command, so no earlier writeback lands in its time."
	echo "* Time is wall-clock seconds from GNU time (\`%e\`), peak RSS its \`%M\` (largest process of a pipeline)."
	echo "* Ratios are the row's time divided by qsurgeon's for the same task (below 1× = faster than qsurgeon)."
	echo "* Deletes run on the same queue, one after the other, on four disjoint sets of the same size: first"
	echo "  \`qsurgeon delete --sasl-user\` removes the SASL user's K messages (its time includes the scan of the whole"
	echo "  queue); then \`postsuper -d -\` and \`qsurgeon delete --id - --yes\` are each fed the IDs of K other"
	echo "  (legitimate, alternating) messages, and \`xargs rm\` unlinks K further messages and their defer/bounce logs,"
	echo "  all from the generator's manifest, so these three times include no selection at all. (A twin copy per"
	echo "  tool would take another generation of the whole queue per tool; on this machine unlinking or writing a"
	echo "  million files takes many minutes.)"
	echo "* \`postqueue -j\` runs without a master: as root it prints \"Mail system is down -- accessing queue"
	echo "  directly\" and runs showq itself. It cannot see SASL users or clients, so it selects by sender."
	echo "* $APT_NOTE"
	[ "$QS_BUILT" = 1 ] || echo "* qsurgeon did not build at the time of this run: $(head -c 300 "$W/build.err" | tr '\n' ' ')"
	[ "$QS_DELETE" = 1 ] || echo "* \`qsurgeon delete\` did not exist at the time of this run: its rows say n/a (not built)."
	echo
	echo "## Results"
	cat "$REPORT"
	echo
	if [ -s "$FIRST" ]; then
		echo "## Summary, first answer"
		echo
		echo "\`summary --sample 4000 --sample-only\` lists the names, reads 4,000 random messages and estimates the top"
		echo "SASL users with their share and a 95% interval; then the exact \`summary\` and qshape, all cold."
		echo
		echo "| MTA | messages | tool | seconds | vs exact summary | vs qshape | peak RSS | top SASL user estimated | note |"
		echo "|---|---:|---|---:|---:|---:|---:|---|---|"
		cat "$FIRST"
		echo
		echo "* First answer: ${TGT_FIRST:-n/a} (target: the compromised account named within ±2 points in < 5 s at 1M)."
		echo
	fi
	if [ -s "$MAILLOG_OUT" ]; then
		echo "## Mail logs: qsurgeon beside \`grep -c sasl_username\` (issue 13)"
		echo
		echo "bench/maillog.sh: the bundled Postfix fixture's real maillog repeated to ${BENCH_MAILLOG_MB} MB; each command"
		echo "timed by GNU time (wall, user+sys CPU, peak RSS). Target: not slower than \`grep -c sasl_username\`."
		echo "docs/benchmarks-maillog.md has the analysis and the instruction counts."
		echo
		cat "$MAILLOG_OUT"
		echo
	fi
	echo "## Growth of qsurgeon from size to size"
	echo
	echo "| messages | list s | list again s | list RSS MB | summary s | summary RSS MB | delete s | delete RSS MB | delete --id s | grep -rl s | postqueue -j s |"
	echo "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
	awk -F'\t' '{printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", $1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11}' "$GROWTH"
	report_rss
	echo
	echo "## Targets of issue 6 (largest Postfix size measured: ${TGT_N:-none})"
	echo
	echo "* Select: ${TGT_SELECT:-n/a} (target: ≤ 1× grep -rl, postqueue -j ≥ 5×)."
	echo "* Delete: ${TGT_DELETE:-n/a} (target: ≤ 1.1×)."
	echo "* qmail ${TGT_QMAIL_N:-}: ${TGT_QMAIL:-n/a} (targets: issue 6 ≤ 1.5× the read floor; issue 15 ≤ 1.2× grep at 450k, peak RSS ≤ 60 MB plus the selection: ${TGT_QMAIL_RSS:-n/a})."
	echo "* Peak RSS: ${TGT_RSS:-n/a} (target: < 150 MB at 1M)."
	echo "* Delete one account's mail end to end (scan + delete, seed 003): ${TGT_E2E:-n/a} (target: < 60 s at 1M)."
	echo "* Select vs the envelope-read floor (issue 15): ${TGT_ENV:-n/a} (target: ≤ 1.1× cold)."
	if [ -f bench/notes.md ]; then
		echo
		cat bench/notes.md
	fi
} >"$BENCH_OUT.tmp" && mv "$BENCH_OUT.tmp" "$BENCH_OUT"
log "wrote $BENCH_OUT"
# Removing millions of files takes minutes here, so it is done once, at the end.
if [ "$BENCH_KEEP" != 1 ]; then
	log "removing the generated queues under $BENCH_DIR"
	rm -rf "$BENCH_DIR"/pf-* "$BENCH_DIR"/qm-*
fi
