# ts-split: parts by a hash of the key, stable, weighted, atomic outputs, errors.
source "$(dirname "$0")/lib.sh"

ids() { ts-cat -k id "$@" | sed 's/{"id":"*\([^"]*\)"*}/\1/' | tr '\n' ' '; }
# files_are LIST: passes when the current directory holds exactly these files.
files_are() { [ "$(ls | tr '\n' ' ')" = "$1" ]; }

seq 0 19 | awk '{printf "{\"id\":\"r%d\",\"n\":%d}\n", $1, $1}' | ts-pack >s.ts
ts-cat --full s.ts | tac | ts-pack >reversed.ts
seq 0 9999 | awk '{printf "{\"id\":\"img%05d\",\"n\":%d}\n", $1, $1}' | ts-pack >big.ts

# ---- exact outputs (the hash is part of the contract: changing it moves records) ----
out=$(ts-split --key id --seed 1 -o a.ts:1 -o b.ts:1 s.ts 2>&1)
check_eq silent_on_success "" "$out"
check_eq part_a 'r4 r5 r7 r10 r11 r12 r13 r15 r17 r19 ' "$(ids a.ts)"
check_eq part_b 'r0 r1 r2 r3 r6 r8 r9 r14 r16 r18 ' "$(ids b.ts)"
check records_unchanged cmp <(ts-cat s.ts | sort) <(ts-cat a.ts b.ts | sort)
check stdout_part cmp b.ts <(ts-split --key id --seed 1 -o a2.ts:1 -o -:1 s.ts)
check_eq weights_normalised "$(ids a.ts)" "$(ts-split --key id --seed 1 -o -:0.5 -o b3.ts:0.5 s.ts | ids)"

# ---- stability ----
ts-split --key id --seed 1 -o ra.ts:1 -o rb.ts:1 reversed.ts
check_eq stable_under_reordering "$(ids a.ts | tr ' ' '\n' | sort)" "$(ids ra.ts | tr ' ' '\n' | sort)"
ts-head -n 8 s.ts | ts-split --key id --seed 1 -o ga.ts:1 -o gb.ts:1
first8() { tr ' ' '\n' | awk 'NF && substr($1, 2) + 0 < 8' | tr '\n' ' '; }
check_eq stable_when_data_grows "$(ids a.ts | first8)|$(ids b.ts | first8)" "$(ids ga.ts)|$(ids gb.ts)"
check deterministic cmp <(ts-split --key id --seed 7 -o -:1 -o x.ts:2 big.ts) <(ts-split --key id --seed 7 -o -:1 -o y.ts:2 big.ts)
ts-split --key id --seed 7 -o s7.ts:1 -o x.ts:2 big.ts
ts-split --key id --seed 8 -o s8.ts:1 -o y.ts:2 big.ts
check seed_changes_split bash -c '! cmp -s s7.ts s8.ts'
# An integer key splits as its decimal text does.
seq 0 199 | awk '{printf "{\"id\":%d}\n", $1}' | ts-pack >int.ts
seq 0 199 | awk '{printf "{\"id\":\"%d\"}\n", $1}' | ts-pack >str.ts
check_eq integer_key_as_text "$(ts-split --key id -o -:1 -o i2.ts:1 int.ts | ids)" \
	"$(ts-split --key id -o -:1 -o s2.ts:1 str.ts | ids)"
n1=$(ts-split --key id -o -:1 -o i2.ts:1 int.ts | ts-cat | wc -l); n2=$(ts-cat i2.ts | wc -l)
check_eq integer_key_all_placed 200 $((n1 + n2))
check integer_key_splits test "$n1" -gt 70 -a "$n2" -gt 70

# ---- weights on 10,000 records ----
ts-split --key id --seed 3 -o clip.ts:0.4 -o gen.ts:0.6 --progress big.ts 2>progress.txt
nclip=$(ts-cat clip.ts | wc -l); ngen=$(ts-cat gen.ts | wc -l)
check_eq all_records_placed 10000 $((nclip + ngen))
check weights_respected test "$nclip" -ge 3800 -a "$nclip" -le 4200
check_eq progress_counts "ts-split: clip.ts: $nclip records ($(awk -v n=$nclip 'BEGIN { printf "%.1f", n / 100 }')%)" \
	"$(head -1 progress.txt)"
ts-split --key id --seed 3 -o p1.ts:1 -o p2.ts:1 -o p3.ts:2 big.ts
counts="$(ts-cat p1.ts | wc -l) $(ts-cat p2.ts | wc -l) $(ts-cat p3.ts | wc -l)"
check three_parts_weighted awk -v c="$counts" 'BEGIN { split(c, a, " ");
	exit !(a[1] > 2300 && a[1] < 2700 && a[2] > 2300 && a[2] < 2700 && a[3] > 4700 && a[3] < 5300) }'

# ---- errors: each leaves no output file behind ----
mkdir e && cd e
printf '{"id":"a"}\n{"name":"b"}\n' | ts-pack >../nokey.ts
check_fails missing_key "^ts-split: record 1: key field 'id' is missing" ts-split --key id -o a.ts:1 -o b.ts:1 ../nokey.ts
check missing_key_leaves_nothing files_are ''
printf '{"id":{"dtype":"uint8","shape":[1],"data":[1]}}\n' | ts-pack >../tkey.ts
check_fails tensor_key "key field 'id' is not a string or integer" ts-split --key id -o a.ts:1 ../tkey.ts
check_fails zero_weight "-o: weight 0 is not a positive number" ts-split --key id -o a.ts:1 -o b.ts:0 ../s.ts
check_fails negative_weight "not a positive number" ts-split --key id -o a.ts:-1 ../s.ts
check_fails word_weight "'abc' is not a finite number" ts-split --key id -o a.ts:abc ../s.ts
check_fails no_weight "'a.ts' is not FILE:WEIGHT" ts-split --key id -o a.ts ../s.ts
check_fails two_stdouts "'-' is named twice" ts-split --key id -o -:1 -o -:1 ../s.ts
check_fails no_key "--key FIELD is required" ts-split -o a.ts:1 ../s.ts
check_fails no_outputs "no outputs" ts-split --key id ../s.ts
check_fails unwritable_output "nodir/b.ts: cannot create" ts-split --key id -o a.ts:1 -o nodir/b.ts:1 ../s.ts
check unwritable_leaves_nothing files_are ''
head -c 300 ../big.ts >../truncated.ts
check_fails truncated_input "truncated.ts: record" ts-split --key id -o a.ts:1 -o b.ts:1 ../truncated.ts
check truncated_leaves_nothing files_are ''
echo old >keep.ts
check_fails failure_keeps_old_file "missing" ts-split --key id -o keep.ts:1 ../nokey.ts
check_eq old_file_untouched old "$(cat keep.ts)"
