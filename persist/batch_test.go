package persist

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestMultiInsert(t *testing.T) {
	t.Parallel()
	cols := []insertCol{{name: "a", share: true}, {name: "b"}, {name: "c", share: true}, {name: "d", expr: "NULL"}}
	t1, t2 := t0, t0.Add(time.Second)
	tests := []struct {
		name     string
		driver   Driver
		rows     [][]any
		wantSQL  string
		wantArgs []any
	}{
		{"SharedValues", SQLite, [][]any{{"x", 1, t1}, {"x", 2, t1}},
			"INSERT INTO t (a, b, c, d) SELECT ?, column1, ?, NULL FROM (VALUES (?), (?)) WHERE true",
			[]any{"x", t1, 1, 2}},
		{"OneDiffers", SQLite, [][]any{{"x", 1, t1}, {"x", 2, t2}},
			"INSERT INTO t (a, b, c, d) SELECT ?, column1, column2, NULL FROM (VALUES (?, ?), (?, ?)) WHERE true",
			[]any{"x", 1, t1, 2, t2}},
		{"NoneShared", SQLite, [][]any{{"x", 1, t1}, {"y", 1, t2}},
			"INSERT INTO t (a, b, c, d) VALUES (?, ?, ?, NULL), (?, ?, ?, NULL)",
			[]any{"x", 1, t1, "y", 1, t2}},
		{"OneRow", SQLite, [][]any{{"x", 1, t1}},
			"INSERT INTO t (a, b, c, d) VALUES (?, ?, ?, NULL)",
			[]any{"x", 1, t1}},
		{"MySQL", MySQL, [][]any{{"x", 1, t1}, {"x", 2, t1}},
			"INSERT INTO t (a, b, c, d) VALUES (?, ?, ?, NULL), (?, ?, ?, NULL)",
			[]any{"x", 1, t1, "x", 2, t1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			q, args := multiInsert(tt.driver, "t", cols, "", len(tt.rows), func(i int, dst []any) []any {
				return append(dst, tt.rows[i]...)
			})
			require.Equal(t, tt.wantSQL, q)
			require.Equal(t, tt.wantArgs, args)
		})
	}
}
