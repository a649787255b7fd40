# ts-shuffle: a seeded permutation of whole records, from files or stdin.
source "$(dirname "$0")/lib.sh"

seq 0 99 | awk '{printf "{\"i\":%d,\"t\":{\"dtype\":\"float32\",\"shape\":[3],\"data\":[%d,1,2]}}\n", $1, $1}' | ts-pack >s.ts
ids() { ts-cat -k i "$@" | tr -dc '0-9\n' | tr '\n' ' '; }

ts-shuffle s.ts >a.ts
check_eq same_records_in_another_order "$(ids s.ts | tr ' ' '\n' | sort -n | tr '\n' ' ')" \
	"$(ids a.ts | tr ' ' '\n' | sort -n | tr '\n' ' ')"
check order_changes bash -c '[ "$(ts-cat -k i s.ts)" != "$(ts-cat -k i a.ts)" ]'
check records_are_whole cmp <(ts-cat --full s.ts | sort) <(ts-cat --full a.ts | sort)
check same_seed_same_order cmp a.ts <(ts-shuffle --seed 1 <s.ts)
check other_seed_other_order bash -c '! cmp -s a.ts <(ts-shuffle --seed 2 s.ts)'
check_eq file_twice_gives_each_twice 200 "$(ts-shuffle s.ts s.ts | ts-cat | wc -l)"
check_eq each_record_twice 2 "$(ts-shuffle s.ts s.ts | ts-cat -k i | sort | uniq -c | awk '{print $1}' | sort -u)"
check_eq empty_input_empty_output 0 "$(ts-shuffle </dev/null | wc -c)"
# Nothing is written before the input has ended, so a bad record costs all.
head -c 500 s.ts >cut.ts
check_fails truncated_input 'truncated' ts-shuffle cut.ts
check_eq truncated_writes_nothing 0 "$(ts-shuffle cut.ts 2>/dev/null | wc -c)"
check_fails missing_file 'nope.ts' ts-shuffle nope.ts
check_fails bad_seed 'seed' ts-shuffle --seed x s.ts
