package persist

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// canonicalInputs exercise both the fast path and its fallbacks.
var canonicalInputs = []string{
	`{}`,
	` { } `,
	`{"a":1}`,
	`{"b":1,"a":2}`,
	"{ \"b\" : [ 1 , { \"d\" : null , \"c\" : true } ] ,\n\t\"a\" : false }",
	`{"n":-0.5e+10,"m":0,"k":12345678901234567890123,"j":1E5,"i":-0}`,
	`{"s":"h\u00e9llo","t":"héllo ☃","u":"<a&b>"}`,
	`{"esc":"a\"b","nl":"a\nb","tab":"\t"}`,
	`{"a\"b":1,"a":2}`,
	`{"ls":"\u2028","ps":"` + "\u2029" + `"}`,
	"{\"bad\":\"\xff\"}",
	`{"dup":1,"dup":2}`,
	`{"b":1,"a":2,"b":3}`,
	`{"ab":1,"ab!":2,"a b":3,"a":4,"":5}`,
	`{"deep":[[[[[[{"z":[],"y":{}}]]]]]]}`,
	`{"a":01}`,
	`{"a":1.}`,
	`{"a":.5}`,
	`{"a":-}`,
	`{"a":1e}`,
	`{"a":tru}`,
	`{"a":nul}`,
	`{"a" 1}`,
	`{"a":1,}`,
	`{"a":[1,]}`,
	`{"a":[1 2]}`,
	`{a:1}`,
	`{"a":1} x`,
	`{"a":1}{}`,
	`[1]`,
	`"x"`,
	`{"a":"unterminated}`,
	`{"a":{"b":1}`,
}

func TestCanonicalFastMatchesSlow(t *testing.T) {
	t.Parallel()
	for _, in := range canonicalInputs {
		checkCanonical(t, []byte(in))
	}
}

func TestCanonicalFastTakesCommonInput(t *testing.T) {
	t.Parallel()
	for _, in := range []string{
		`{"b":{"y":2,"x":[1,2.5,-3e2]},"a":"héllo <b>","c":null,"d":true,"e":false}`,
		`{"id":"i-1","tags":{"team":"platform","env":"prod"},"state":"running"}`,
	} {
		_, ok := canonicalFast([]byte(in))
		require.True(t, ok, in)
	}
}

func checkCanonical(t *testing.T, in []byte) {
	t.Helper()
	fast, ok := canonicalFast(in)
	slow, err := canonicalSlow(in)
	if !ok {
		return // the general path decides
	}
	require.NoError(t, err, "fast path accepted %q", in)
	require.Equal(t, slow, fast, "input %q", in)
}

func FuzzCanonicalObject(f *testing.F) {
	for _, in := range canonicalInputs {
		f.Add([]byte(in))
	}
	f.Fuzz(func(t *testing.T, in []byte) { checkCanonical(t, in) })
}

func TestDiffFieldsFastMatchesSlow(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name          string
		before, after string
		fast          bool // the fast path applies
	}{
		{"Same", `{"a":1,"b":{"c":[1,"}"]}}`, `{"a":1,"b":{"c":[1,"}"]}}`, true},
		{"ChangedAddedRemoved", `{"a":1,"b":2,"c":3}`, `{"a":2,"b":2,"d":4}`, true},
		{"EmptyBefore", `{}`, `{"a":{}}`, true},
		{"EmptyAfter", `{"a":[],"b":""}`, `{}`, true},
		{"NestedChange", `{"t":{"x":1},"u":"a,b"}`, `{"t":{"x":2},"u":"a,b"}`, true},
		{"QuotesInValues", `{"a":"x\"}","b":1}`, `{"a":"x\"}","b":2}`, true},
		{"PrefixKeys", `{"a":1,"ab":2}`, `{"ab":2,"abc":3}`, true},
		{"EscapedKey", `{"a\"b":1}`, `{"a\"b":2}`, false},
		{"Unsorted", `{"b":1,"a":1}`, `{"a":1,"b":1}`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fast, ok := diffFieldsFast(tt.before, tt.after)
			require.Equal(t, tt.fast, ok)
			require.Equal(t, diffFieldsSlow(tt.before, tt.after), diffFields(tt.before, tt.after))
			if ok {
				require.Equal(t, diffFieldsSlow(tt.before, tt.after), fast)
			}
		})
	}
}

func FuzzDiffFields(f *testing.F) {
	f.Add([]byte(`{"a":1,"b":[1,{"c":"}"}]}`), []byte(`{"b":[1,{"c":"]"}],"c":null}`))
	f.Add([]byte(`{}`), []byte(`{"a\"":1}`))
	f.Fuzz(func(t *testing.T, before, after []byte) {
		b, err := canonicalObject(before)
		if err != nil {
			return
		}
		a, err := canonicalObject(after)
		if err != nil {
			return
		}
		if fast, ok := diffFieldsFast(b, a); ok {
			require.Equal(t, diffFieldsSlow(b, a), fast, "before %s after %s", b, a)
		}
	})
}

// benchAttrs is an observation's attributes as a provider's struct marshals
// them: fields in declaration order (not sorted), nested objects and arrays,
// a non-ASCII tag value.
const benchAttrs = `{"id":"i-0abc00000001","name":"web-01.prod","state":"running","flavor":"m1.small",` +
	`"zone":"eu-west-1a","image":"debian-13","cpus":2,"memory_mb":4096,"ips":["10.0.0.17","192.168.1.5"],` +
	`"tags":{"team":"platform","env":"prod","owner":"Jürgen Müller","cost_center":"cc-1042"},` +
	`"disks":[{"id":"vol-1","size_gb":40,"boot":true,"type":"ssd"},{"id":"vol-2","size_gb":200,"boot":false,"type":"hdd"}],` +
	`"security_groups":["sg-web","sg-ssh"],"created_at":"2026-11-25T10:00:00Z","locked":false,"host":null}`

// BenchmarkJSONCanonical compares canonicalObject's fast path with the
// encoding/json path it replaces (canonicalSlow: decode with UseNumber,
// encode without HTML escaping) on the same attributes; ref-unmarshal-marshal
// is plain json.Unmarshal into any + json.Marshal. bench/run -json prints the
// ratio.
func BenchmarkJSONCanonical(b *testing.B) {
	raw := []byte(benchAttrs)
	want, err := canonicalSlow(raw)
	require.NoError(b, err)
	got, ok := canonicalFast(raw)
	require.True(b, ok, "the fast path takes the benchmark's attributes")
	require.Equal(b, want, got)
	for _, side := range []struct {
		name string
		run  func([]byte) error
	}{
		{"ours", func(raw []byte) error { _, err := canonicalObject(raw); return err }},
		{"baseline", func(raw []byte) error { _, err := canonicalSlow(raw); return err }},
		{"ref-unmarshal-marshal", func(raw []byte) error {
			var v any
			if err := json.Unmarshal(raw, &v); err != nil {
				return err
			}
			_, err := json.Marshal(v)
			return err
		}},
	} {
		b.Run(side.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := side.run(raw); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkJSONDiff compares diffFieldsFast with diffFieldsSlow (both sides
// through json.Unmarshal into map[string]json.RawMessage) on a re-observed
// resource whose state and tags changed. bench/run -json prints the ratio.
func BenchmarkJSONDiff(b *testing.B) {
	before, err := canonicalObject([]byte(benchAttrs))
	require.NoError(b, err)
	var v map[string]any
	require.NoError(b, json.Unmarshal([]byte(benchAttrs), &v))
	v["state"] = "stopped"
	v["tags"].(map[string]any)["env"] = "staging"
	changed, err := json.Marshal(v)
	require.NoError(b, err)
	after, err := canonicalObject(changed)
	require.NoError(b, err)
	fast, ok := diffFieldsFast(before, after)
	require.True(b, ok, "the fast path takes the benchmark's attributes")
	require.Equal(b, []string{"state", "tags"}, fast)
	require.Equal(b, fast, diffFieldsSlow(before, after))
	for _, side := range []struct {
		name string
		diff func(before, after string) []string
	}{
		{"ours", diffFields},
		{"baseline", diffFieldsSlow},
	} {
		b.Run(side.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if len(side.diff(before, after)) != 2 {
					b.Fatal("wrong diff")
				}
			}
		})
	}
}

// TestDiffFieldsFastInStep: members of after that are byte for byte those
// of before are taken unread, and only those.
func TestDiffFieldsFastInStep(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, before, after string
		fast                bool
		want                []string
	}{
		{"AllSame", `{"a":1,"b":[1,{"c":"}"}]}`, `{"a":1,"b":[1,{"c":"}"}]}`, true, nil},
		{"SamePrefixLongerNumber", `{"a":1}`, `{"a":12}`, true, []string{"a"}},
		{"SamePrefixLongerString", `{"a":"x","b":1}`, `{"a":"x","b":10}`, true, []string{"b"}},
		{"AddedFirst", `{"b":1}`, `{"a":1,"b":1}`, true, []string{"a"}},
		{"AddedLast", `{"a":"x"}`, `{"a":"x","b":1}`, true, []string{"b"}},
		{"RemovedFirst", `{"a":1,"b":2}`, `{"b":2}`, true, []string{"a"}},
		{"RemovedLast", `{"a":1,"b":2}`, `{"a":1}`, true, []string{"b"}},
		{"RemovedBetween", `{"a":1,"b":2,"c":3}`, `{"a":1,"c":3}`, true, []string{"b"}},
		{"AllChanged", `{"a":1,"b":2}`, `{"a":2,"b":1}`, true, []string{"a", "b"}},
		{"ToEmpty", `{"a":1,"b":2}`, `{}`, true, []string{"a", "b"}},
		{"FromEmpty", `{}`, `{"a":1}`, true, []string{"a"}},
		{"SameThenDuplicate", `{"a":1}`, `{"a":1,"a":1}`, false, nil},
		{"SameThenUnsorted", `{"a":1,"b":1}`, `{"b":1,"a":1}`, false, nil},
		{"SameThenSpace", `{"a":1}`, `{"a":1 }`, false, nil},
		{"SameThenTrailing", `{"a":1}`, `{"a":1}x`, false, nil},
		{"SameThenInvalid", `{"a":1}`, `{"a":1,"b":}`, false, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fast, ok := diffFieldsFast(tt.before, tt.after)
			require.Equal(t, tt.fast, ok)
			require.Equal(t, diffFieldsSlow(tt.before, tt.after), diffFields(tt.before, tt.after))
			if ok {
				require.Equal(t, tt.want, fast)
				require.Equal(t, diffFieldsSlow(tt.before, tt.after), fast)
			}
		})
	}
}

// TestDiffFieldsFastRefuses: what the fast path leaves to encoding/json,
// canonical or not (stored attributes come from the database).
func TestDiffFieldsFastRefuses(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, before, after string }{
		{"InvalidValue", `{"a":x}`, `{"a":1}`},
		{"InvalidAfter", `{"a":1}`, `{"a":[1,]}`},
		{"SpaceBetweenMembers", `{"a":1, "b":2}`, `{"a":1,"b":2}`},
		{"SpaceBeforeValue", `{"a": 1}`, `{"a":1}`},
		{"TrailingData", `{"a":1}x`, `{"a":1}`},
		{"DuplicateKey", `{"a":1,"a":2}`, `{"a":2}`},
		{"InvalidUTF8Key", "{\"\xff\":1}", `{"a":1}`},
		{"NotAnObject", `[1]`, `{}`},
		{"TooDeep", `{"a":` + strings.Repeat("[", 300) + strings.Repeat("]", 300) + `}`, `{}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, ok := diffFieldsFast(tt.before, tt.after)
			require.False(t, ok)
			require.Equal(t, diffFieldsSlow(tt.before, tt.after), diffFields(tt.before, tt.after))
		})
	}
}

// FuzzDiffFieldsAnyInput: on any input, canonical or not, the fast path
// agrees with encoding/json's whenever it applies.
func FuzzDiffFieldsAnyInput(f *testing.F) {
	f.Add([]byte(`{"a":1,"b":[1,{"c":"}"}]}`), []byte(`{"b":[1,{"c":"]"}],"c":null}`))
	f.Add([]byte(`{"a":x}`), []byte(`{"a":1}`))
	f.Add([]byte(`{"a":[1, 2],"b":"\u00e9"}`), []byte(`{"a":[1,2],"b":"é"}`))
	f.Add([]byte("{\"\xff\":1}"), []byte(`{"a":1,"a":2}`))
	f.Add([]byte(`{"a":1,"b":"x","c":[1,2],"d":{"e":null}}`), []byte(`{"a":1,"b":"xy","c":[1,2],"e":true}`))
	f.Add([]byte(`{"a":1,"b":2}`), []byte(`{"a":1,"b":2,"b":2}`))
	f.Fuzz(func(t *testing.T, before, after []byte) {
		if fast, ok := diffFieldsFast(string(before), string(after)); ok {
			require.Equal(t, diffFieldsSlow(string(before), string(after)), fast, "before %q after %q", before, after)
		}
	})
}
