# ts-caption: templates over fields, the seeded choice, --all, --field and errors.
source "$(dirname "$0")/lib.sh"

{
	printf '{"id":"a","text":"shirt","label":0,"score":0.5}\n'
	printf '{"id":"b","text":"sneaker","label":7,"score":2.0,"subgroup":"shoe"}\n'
} >two.jsonl
ts-pack two.jsonl >two.ts
# 3000 records numbered i, for the choice among templates.
seq 0 2999 | awk '{printf "{\"i\":%d,\"text\":\"t%d\"}\n", $1, $1}' | ts-pack >many.ts

# ---- exact outputs ----
check_eq one_template "$(printf '%s\n' \
	'{"id":"a","text":"a photo of a shirt","label":0,"score":0.5}' \
	'{"id":"b","text":"a photo of a sneaker","label":7,"score":2.0,"subgroup":"shoe"}')" \
	"$(ts-caption -t 'a photo of a {text}' two.ts | ts-cat)"
check_eq numbers_in_decimal '["0 0.5 shirt","7 2.0 sneaker"]' \
	"$(ts-caption -t '{label} {score} {text}' two.ts | ts-cat -k text | tr -d '\n' | sed 's/{"text"://g; s/}/,/g; s/^/[/; s/,$/]/')"
check_eq literal_braces '{"text":"{shirt} {{x}}"}' "$(ts-caption -t '{{{text}}} {{{{x}}}}' two.ts | ts-cat -k text | head -1)"
check_eq all_in_template_order "$(printf '%s\n' a:shirt 'a:a shirt' b:sneaker 'b:a sneaker')" \
	"$(ts-caption --all -t '{text}' -t 'a {text}' two.ts | ts-cat -k id,text | sed 's/{"id":"\(.\)","text":"\(.*\)"}/\1:\2/')"
check_eq field_reads_old_value '{"text":"shirt","cap":"shirt, a shirt"}' \
	"$(ts-caption --field cap -t '{text}, a {text}' two.ts | ts-cat -k text,cap | head -1)"
check_eq all_reads_original_value '{"text":"a shirt"}|{"text":"a a shirt"}' \
	"$(ts-caption --all -t 'a {text}' -t 'a a {text}' two.ts | ts-head -n 2 | ts-cat -k text | paste -sd'|')"
check keeps_other_fields cmp <(ts-cat -k id,label,score,subgroup two.ts) \
	<(ts-caption -t x two.ts | ts-cat -k id,label,score,subgroup)
printf 'a photo of a {text}\n\n  \r\n{text}!\r\n' >templates.txt
check templates_file_equals_options cmp <(ts-caption -t 'a photo of a {text}' -t '{text}!' --seed 3 many.ts) \
	<(ts-caption --templates templates.txt --seed 3 many.ts)

# ---- the seeded choice ----
check same_seed_same_output cmp <(ts-caption -t A{i} -t B{i} -t C{i} --seed 5 many.ts) \
	<(ts-caption -t A{i} -t B{i} -t C{i} --seed 5 many.ts)
ts-caption -t A -t B -t C --seed 5 many.ts >seed5.ts
ts-caption -t A -t B -t C --seed 6 many.ts >seed6.ts
check other_seed_other_choice bash -c '! cmp -s seed5.ts seed6.ts'
# The choice depends on the record number only, not on how input arrives.
ts-head -n 1000 many.ts >first.ts
ts-head --range 1000: many.ts >rest.ts
check choice_independent_of_files cmp <(ts-caption -t A -t B -t C many.ts) \
	<(ts-caption -t A -t B -t C first.ts - <rest.ts)
check choice_independent_of_pipe cmp <(ts-caption -t A -t B -t C many.ts) \
	<(cat first.ts rest.ts | ts-caption -t A -t B -t C)
counts=$(ts-caption -t A -t B -t C many.ts | ts-cat -k text | sort | uniq -c | awk '{print $1}' | tr '\n' ' ')
check choice_is_uniform awk -v c="$counts" 'BEGIN { n = split(c, a, " "); if (n != 3) exit 1;
	for (i = 1; i <= n; i++) if (a[i] < 850 || a[i] > 1150) exit 1 }'
check_eq all_writes_every_template 9000 "$(ts-caption --all -t A -t B -t C many.ts | ts-cat | wc -l)"

# ---- errors ----
check_fails missing_field "^ts-caption: record 0: template 'a \{colour\}': field 'colour' is missing" \
	ts-caption -t '{text}' -t 'a {colour}' --all two.ts
check_fails missing_field_in_one_record "record 0: .*field 'subgroup' is missing" ts-caption -t '{subgroup}' two.ts
printf '{"text":"x","t":{"dtype":"uint8","shape":[2],"data":[1,2]}}\n' | ts-pack >tensor.ts
check_fails tensor_not_scalar "field 't' is a tensor, not a scalar" ts-caption -t '{t}' tensor.ts
check_fails unclosed_brace "template '\{unclosed': '\{' at column 1 is not closed" ts-caption -t '{unclosed' two.ts
check_fails stray_brace "'\}' at column 2 has no '\{'" ts-caption -t 'a}' two.ts
check_fails empty_name "names no field" ts-caption -t '{}' two.ts
printf 'ok {text}\nbad {text\n' >bad.txt
check_fails bad_template_in_file "bad.txt: template 'bad \{text'" ts-caption --templates bad.txt two.ts
check_fails missing_templates_file "nope.txt: cannot open" ts-caption --templates nope.txt two.ts
check_fails no_templates "no templates" ts-caption two.ts
ts-head -n 1 two.ts >truncated.ts
head -c 20 two.ts | tail -c +2 >>truncated.ts
check_fails truncated_input "truncated.ts" ts-caption -t '{text}' truncated.ts
check_eq truncated_input_writes_records_before 1 "$(ts-caption -t '{text}' truncated.ts 2>/dev/null | ts-cat | wc -l)"
cat <(ts-head --range 1: two.ts) two.ts >ba.ts
check_eq error_passes_on_records_before '{"text":"shoe"}' "$(ts-caption -t '{subgroup}' ba.ts 2>/dev/null | ts-cat -k text)"
