# ts-cat, ts-pack and ts-head: round trips, selection, early exit and errors.
source "$(dirname "$0")/lib.sh"

# 25 records: i, label i%3, name, a float, a small tensor and a nested value.
for i in $(seq 0 24); do
	printf '{"i":%d,"label":%d,"name":"r%d","score":%d.5,"t":{"dtype":"int16","shape":[2],"data":[%d,-%d]},"meta":{"tags":["a",%d],"ok":true}}\n' \
		"$i" $((i % 3)) "$i" "$i" "$i" "$i" "$i"
done >s.jsonl
ts-pack s.jsonl >s.ts
ids() { ts-cat -k i "$@" | tr -dc '0-9\n' | tr '\n' ' '; }

# ---- ts-pack / ts-cat round trips ----
check_eq pack_counts_records 25 "$(ts-cat s.ts | wc -l)"
check raw_pass_through_is_identical cmp s.ts <(ts-cat --raw s.ts)
check full_json_round_trip_is_identical cmp s.ts <(ts-cat --full s.ts | ts-pack)
check raw_concatenates_files cmp <(cat s.ts s.ts) <(ts-cat --raw s.ts - <s.ts)
check_eq cat_summary_line \
	'{"i":3,"label":0,"name":"r3","score":3.5,"t":{"dtype":"int16","shape":[2],"min":-3,"max":3,"mean":0},"meta":{"tags":["a",3],"ok":true}}' \
	"$(ts-cat s.ts | sed -n 4p)"
check_eq cat_full_line \
	'{"i":3,"label":0,"name":"r3","score":3.5,"t":{"dtype":"int16","shape":[2],"data":[3,-3]},"meta":{"tags":["a",3],"ok":true}}' \
	"$(ts-cat --full s.ts | sed -n 4p)"
check_eq cat_keys_in_record_order '{"i":1,"name":"r1"}' "$(ts-cat -k name,i s.ts | sed -n 2p)"
check_eq cat_raw_keys '{"i":2,"score":2.5}' "$(ts-cat --raw --keys score,i s.ts | ts-cat | sed -n 3p)"
check_eq pack_skips_blank_lines 2 "$(printf '\n{"a":1}\n  \n{"a":2}\n\n' | ts-pack | ts-cat | wc -l)"

# Every dtype, with its extremes and the non-finite floats, byte for byte.
{
	printf '{"b":{"dtype":"bool","shape":[3],"data":[true,false,true]}}\n'
	printf '{"u8":{"dtype":"uint8","shape":[3],"data":[0,128,255]},"i8":{"dtype":"int8","shape":[2],"data":[-128,127]}}\n'
	printf '{"u16":{"dtype":"uint16","shape":[2],"data":[0,65535]},"i16":{"dtype":"int16","shape":[2],"data":[-32768,32767]}}\n'
	printf '{"u32":{"dtype":"uint32","shape":[1],"data":[4294967295]},"i32":{"dtype":"int32","shape":[2],"data":[-2147483648,2147483647]}}\n'
	printf '{"u64":{"dtype":"uint64","shape":[1],"data":[18446744073709551615]},"i64":{"dtype":"int64","shape":[2],"data":[-9223372036854775808,9223372036854775807]}}\n'
	printf '{"f16":{"dtype":"float16","shape":[5],"data":[65504,-0.0,6e-08,"nan","-inf"]},"bf16":{"dtype":"bfloat16","shape":[3],"data":[1e38,0.1,"inf"]}}\n'
	printf '{"f32":{"dtype":"float32","shape":[2,2],"data":[3.4028235e38,1e-45,0.1,"nan"]},"f64":{"dtype":"float64","shape":[3],"data":[1.7976931348623157e308,5e-324,0.1]}}\n'
	printf '{"empty":{"dtype":"float32","shape":[0,4],"data":[]},"scalar":{"dtype":"int32","shape":[],"data":[7]}}\n'
} >dtypes.jsonl
ts-pack dtypes.jsonl >dtypes.ts
check every_dtype_round_trip cmp dtypes.ts <(ts-cat --full dtypes.ts | ts-pack)
check every_dtype_json_stable cmp <(ts-cat --full dtypes.ts) <(ts-cat --full dtypes.ts | ts-pack | ts-cat --full)
check_eq float16_printed_as_floats '[65504.0,-0.0,5.96e-08,"nan","-inf"]' \
	"$(ts-cat --full -k f16 dtypes.ts | sed -n 6p | sed 's/.*"data"://; s/}}$//')"
check_eq empty_tensor_has_no_stats '{"empty":{"dtype":"float32","shape":[0,4]},"scalar":{"dtype":"int32","shape":[],"min":7,"max":7,"mean":7}}' \
	"$(ts-cat dtypes.ts | tail -1)"

# Strings: escapes and invalid UTF-8 (written as \u00XX).
printf '{"s":"tab\\t quote\\" nl\\n nul\\u0000 \\u00e9 \\ud83d\\ude00"}\n' | ts-pack >str.ts
check_eq string_escapes '{"s":"tab\t quote\" nl\n nul\u0000 é 😀"}' "$(ts-cat str.ts)"
"$PY" -c 'import sys, msgpack; sys.stdout.buffer.write(msgpack.packb({"p": b"caf\xe9".decode("latin-1").encode("latin-1")}, use_bin_type=False))' >latin1.ts
check_eq invalid_utf8_escaped '{"p":"caf\u00e9"}' "$(ts-cat latin1.ts)"
"$PY" -c 'import sys, msgpack; sys.stdout.buffer.write(msgpack.packb({"b": b"\x00\xff", "n": [1, {"k": b"x"}]}))' >bin.ts
check_eq bin_as_base64 '{"b":{"$bin":"AP8="},"n":[1,{"k":{"$bin":"eA=="}}]}' "$(ts-cat bin.ts)"
check bin_round_trip cmp bin.ts <(ts-cat bin.ts | ts-pack)
"$PY" -c 'import sys, msgpack; sys.stdout.buffer.write(msgpack.packb({"e": {}, "m": {1: [], "k": {}}}))' >maps.ts
check_eq nested_maps '{"e":{},"m":{"1":[],"k":{}}}' "$(ts-cat maps.ts)"
check empty_map_round_trip cmp <(ts-cat --raw -k e maps.ts) <(ts-cat -k e maps.ts | ts-pack)
"$PY" -c 'import sys, msgpack; sys.stdout.buffer.write(msgpack.packb({"m": {(1, 2): 3}}))' >tuplekey.ts
check_fails cat_array_key "^ts-cat: field 'm': a map key of type array, which JSON cannot show" ts-cat tuplekey.ts

# jq in the middle, as the man pages show.
if command -v jq >/dev/null; then
	check_eq jq_select_and_pack '2 5 8 11 14 17 20 23 ' \
		"$(ts-cat --full s.ts | jq -c 'select(.label == 2)' | ts-pack | ids)"
	check_eq jq_edit_field '{"i":0,"label":9}' \
		"$(ts-cat --full s.ts | jq -c '.label = 9' | ts-pack | ts-cat -k i,label | head -1)"
else
	skip jq_pipelines "jq is not installed"
fi

# ---- ts-head ----
check_eq head_default_10 '0 1 2 3 4 5 6 7 8 9 ' "$(ts-head s.ts | ids)"
check_eq head_n3 '0 1 2 ' "$(ts-head -n 3 s.ts | ids)"
check_eq head_n0 0 "$(ts-head -n 0 s.ts | wc -c)"
check_eq head_n_past_end 25 "$(ts-head -n 100 s.ts | ts-cat | wc -l)"
check_eq head_skip '20 21 22 23 24 ' "$(ts-head --skip 20 s.ts | ids)"
check_eq head_skip_n '4 5 ' "$(ts-head --skip 4 -n 2 s.ts | ids)"
check_eq head_range '5 6 7 ' "$(ts-head --range 5:8 s.ts | ids)"
check_eq head_range_open_end '22 23 24 ' "$(ts-head --range 22: s.ts | ids)"
check_eq head_range_open_start '0 1 ' "$(ts-head --range :2 s.ts | ids)"
check_eq head_range_empty 0 "$(ts-head --range 3:3 s.ts | wc -c)"
check_eq head_where_int '2 5 8 11 14 17 20 23 ' "$(ts-head --where label=2 s.ts | ids)"
check_eq head_where_numeric '2 5 8 11 14 17 20 23 ' "$(ts-head --where label=2.0 s.ts | ids)"
check_eq head_where_float '7 ' "$(ts-head --where score=7.5 s.ts | ids)"
check_eq head_where_str '7 ' "$(ts-head --where name=r7 s.ts | ids)"
check_eq head_where_two '' "$(ts-head --where name=r7 --where label=0 s.ts | ids)"
check_eq head_where_missing_field '' "$(ts-head --where nope=1 s.ts | ids)"
check_eq head_where_skip_n '5 8 ' "$(ts-head --where label=2 --skip 1 -n 2 s.ts | ids)"
check_eq head_where_range '8 11 ' "$(ts-head --where label=2 --range 2:4 s.ts | ids)"
check_eq head_several_files '0 1 2 3 4 0 1 2 3 4 5 6 ' "$(ts-head -n 12 <(ts-head -n 5 s.ts) s.ts | ids)"
check head_output_is_stream_bytes cmp <(head -c "$(ts-head -n 3 s.ts | wc -c)" s.ts) <(ts-head -n 3 s.ts)

# An endless producer: ts-head must end at once, exit 0, and the pipe closes upstream.
line=$(ts-cat --full s.ts | head -1)
start=$SECONDS
got=$(yes "$line" | ts-pack | timeout 20 ts-head -n 2 | ts-cat -k i | tr -dc '0-9\n' | tr '\n' ' ')
check_eq head_stops_early '0 0 ' "$got"
check_eq head_stops_early_fast 1 $((SECONDS - start < 10))
(yes "$line" | ts-pack | timeout 20 ts-head -n 1 >/dev/null); rc=$?
check_eq head_stops_early_exit_0 0 "$rc"

# ---- errors ----
printf '{"a":1}\n{"a":}\n' >bad.jsonl
check_fails pack_error_names_line '^ts-pack: stdin: line 2: column 6: expected a JSON value' ts-pack <bad.jsonl
check_fails pack_error_names_file '^ts-pack: bad.jsonl: line 2: ' ts-pack bad.jsonl
check_fails pack_summary '^ts-pack: stdin: line 1: column [0-9]+: field .t.: a tensor summary has no data to pack: print the stream with ts-cat --full$' \
	sh -c 'ts-cat s.ts | ts-pack'
check_fails pack_size_mismatch "^ts-pack: stdin: line 1: .*field 't': data has 3 values but shape \\[2\\] needs 2" \
	sh -c "echo '{\"t\":{\"dtype\":\"int8\",\"shape\":[2],\"data\":[1,2,3]}}' | ts-pack"
check_fails pack_value_range "^ts-pack: stdin: line 1: .*data\\[1\\] = 256 does not fit uint8" \
	sh -c "echo '{\"t\":{\"dtype\":\"uint8\",\"shape\":[2],\"data\":[1,256]}}' | ts-pack"
check_fails pack_not_object '^ts-pack: stdin: line 1: column 1: a record must be a JSON object' sh -c 'echo "[1]" | ts-pack'
check_fails pack_missing_file '^ts-pack: nope.jsonl: No such file' ts-pack nope.jsonl
check_fails pack_binary_input '^ts-pack: stdin: line 1: column 1: a record must be a JSON object' ts-pack <s.ts

size=$(wc -c <s.ts)
check_fails cat_truncated '^ts-cat: stdin: record 24: .*truncated' sh -c "head -c $((size - 3)) s.ts | ts-cat"
head -c $((size - 3)) s.ts >cut.ts
ts-cat cut.ts >cut.out 2>/dev/null; rc=$?
check_eq cat_truncated_exit_1 1 "$rc"
check_eq cat_truncated_prints_whole_records_first 24 "$(wc -l <cut.out)"
check_fails cat_truncated_raw '^ts-cat: cut.ts: record 24: .*truncated' ts-cat --raw cut.ts
check_fails cat_json_input 'looks like JSON: use ts-pack' ts-cat s.jsonl
check_fails cat_missing_file '^ts-cat: nope.ts: No such file' ts-cat nope.ts
check_fails head_truncated '^ts-head: stdin: record 24: .*truncated' sh -c 'ts-head -n 30 <cut.ts'
check head_stops_before_damage cmp <(ts-head -n 3 cut.ts) <(ts-head -n 3 s.ts)
check head_passes_on_records_before_damage cmp <(ts-head -n 30 cut.ts 2>/dev/null) <(ts-head -n 24 s.ts)

check_fails head_bad_n "^ts-head: -n: 'x' is not an integer" ts-head -n x s.ts
check_fails head_negative_n '^ts-head: -n: -1 is out of range' ts-head -n -1 s.ts
check_fails head_bad_range "^ts-head: --range: '5' is not A:B" ts-head --range 5 s.ts
check_fails head_backwards_range '^ts-head: --range: 3 is out of range' ts-head --range 5:3 s.ts
check_fails head_range_and_n '^ts-head: --range replaces -n and --skip' ts-head --range 1:2 -n 3 s.ts
check_fails head_bad_where "^ts-head: --where: 'label' is not FIELD=VALUE" ts-head --where label s.ts
check_fails cat_unknown_option 'unrecognized option|invalid option' ts-cat --nope
check_fails cat_empty_keys '^ts-cat: -k: no field names' ts-cat -k , s.ts
for tool in ts-cat ts-pack ts-head; do
	check ${tool}_help sh -c "$tool --help | grep -q '^Usage: $tool'"
	check ${tool}_version sh -c "$tool --version | grep -q knnd"
done
