package status

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// RenderJSON writes s as indented JSON.
func RenderJSON(w io.Writer, s Status) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(s)
}

// RenderTable writes s as aligned tables, worst first in each.
func RenderTable(w io.Writer, s Status) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	ts := func(t time.Time) string {
		if t.IsZero() {
			return "-"
		}
		return t.UTC().Format(time.RFC3339)
	}
	ago := func(t time.Time) string { return Age(s.At.Sub(t)) + " ago" }
	secs := func(f float64) string { return Age(time.Duration(f * float64(time.Second))) }
	dash := func(v string) string {
		if v == "" {
			return "-"
		}
		return v
	}
	fmt.Fprintf(tw, "status at %s\n", ts(s.At))

	fmt.Fprintf(tw, "\nINSTANCES (%d)\nSTATUS\tHOST\tPID\tROLES\tVERSION\tLAST BEAT\tSTARTED\tFAILING DEPS\tID\n", len(s.Instances))
	for _, i := range s.Instances {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\n", i.Status, i.Host, i.PID, dash(strings.Join(i.Roles, ",")),
			dash(i.Version), ago(i.BeatAt), ts(i.StartedAt), dash(strings.Join(i.Failing, ",")), i.ID)
	}

	fmt.Fprintf(tw, "\nKINDS WITH FAILING POLLS (%d)\nKIND\tMAX LAG\tMAX STALE\tFAILING ACCOUNTS\tLAGGING ACCOUNTS\n", len(s.Kinds))
	for _, k := range s.Kinds {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\n", k.Kind, secs(k.MaxLagSeconds), secs(k.MaxStaleSeconds), k.Accounts, k.Lagging)
	}

	fmt.Fprintf(tw, "\nFAILING POLLS (%d)\nACCOUNT\tKIND\tLAG\tSTALE\tINTERVAL\tFAILURES\tTHROTTLED\tERROR\n", len(s.Polls))
	for _, p := range s.Polls {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%t\t%s\n", p.Account, p.Kind, secs(p.LagSeconds), secs(p.StaleSeconds),
			secs(p.IntervalSeconds), p.Failures, p.Throttled, dash(oneLine(p.Error, 80)))
	}

	fmt.Fprintf(tw, "\nACCOUNTS NEEDING A LOOK (%d)\nACCOUNT\tCUSTOMER\tSTATE\tSINCE\tWHY\n", len(s.Accounts))
	for _, a := range s.Accounts {
		since := "-"
		if !a.Since.IsZero() {
			since = ago(a.Since)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", a.ID, dash(a.Customer), a.State, since, dash(oneLine(a.Reason, 80)))
	}

	fmt.Fprintf(tw, "\nJOBS IN FLIGHT (%d)\nJOB\tACCOUNT\tKIND\tOPERATION\tSTARTED\tDEADLINE\n", len(s.Running))
	for _, j := range s.Running {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", j.ID, j.Account, j.Kind, dash(j.OperationID), ago(j.CreatedAt), ts(j.Deadline))
	}

	fmt.Fprintf(tw, "\nJOBS FAILED RECENTLY (%d)\nJOB\tACCOUNT\tKIND\tSTATE\tFINISHED\tERROR\n", len(s.Failed))
	for _, j := range s.Failed {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", j.ID, j.Account, j.Kind, j.State, ago(j.UpdatedAt), dash(oneLine(j.Error, 80)))
	}

	total := 0
	for _, p := range s.Poison {
		total += p.Count
	}
	fmt.Fprintf(tw, "\nPOISON NOT REPLAYED (%d)\nCOUNT\tACTION\tREASON\n", total)
	for _, p := range s.Poison {
		fmt.Fprintf(tw, "%d\t%s\t%s\n", p.Count, dash(p.ActionType), dash(oneLine(p.Reason, 100)))
	}
	return tw.Flush()
}

// oneLine puts s on one line, cut to n runes.
func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}
