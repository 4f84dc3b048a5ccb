package worker

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/stratusworks/worker/cloud"
	"github.com/stratusworks/worker/cloud/guest"
	"github.com/stratusworks/worker/km"
	"github.com/stratusworks/worker/persist"
	"github.com/stratusworks/worker/poller"
)

// TypeGuestLogs is the built-in action that collects the logs of one watched
// account's running guests (payload: the schedule's dispatch).
const TypeGuestLogs = "guest.logs"

// DefaultServerKind is the stored kind whose resources are servers, as
// cloud.ServerPoller stores them.
const DefaultServerKind = "server"

// GuestLogsConfig enables and tunes the collection of guest VM logs over SSH
// (package cloud/guest). When Interval is set, every account given to
// [Worker.Watch] is also scheduled for collection at that interval: a
// "guest.logs" action lists the account's servers from the store (kept
// current by a registered server poller), and the collector copies the new
// complete lines of each RUNNING server's log files into the owning
// customer's directory. Offsets are kept in the provisioning database, so a
// restart neither duplicates nor skips lines. Guests that fail (unreachable,
// host key mismatch, no credential) are logged with their customer and
// retried at the next collection; they never hold up the others.
//
// A collection of one account runs within Config.HandlerTimeout; files it
// did not finish continue from their offsets next time.
type GuestLogsConfig struct {
	// Interval is how often each watched account's guests are collected.
	// Default 0: no collection.
	Interval time.Duration
	// ServerKind is the stored kind listing the servers. Default "server".
	ServerKind string
	// Collector configures the SSH side. Required when Interval is set:
	// HostKeys, and OutputDir or LogDir (for example
	// (*logging.CustomerHandler).CustomerDir). Defaults filled by the
	// worker: Credentials from the embedded key manager (km.SSHLogins over
	// Worker.Credentials; needs Config.Keyring; set km.SSHLogins over a
	// km.Client for a remote one), SourceCIDR from Config.SourceCIDR,
	// Offsets from the store (persist.Store.GuestOffsets), Logger from
	// Config.Logger; the rest as in guest.CollectorConfig.
	Collector guest.CollectorConfig
}

func (c GuestLogsConfig) enabled() bool { return c.Interval > 0 }

// collectorConfig is Collector with the worker's defaults filled in.
func (c GuestLogsConfig) collectorConfig(cfg *Config, offsets guest.Offsets, creds *km.Cache) guest.CollectorConfig {
	cc := c.Collector
	if cc.Credentials == nil && creds != nil {
		cc.Credentials = km.SSHLogins{Store: creds}
	}
	if !cc.SourceCIDR.IsValid() {
		cc.SourceCIDR = cfg.SourceCIDR
	}
	if cc.Offsets == nil {
		cc.Offsets = offsets
	}
	if cc.Logger == nil {
		cc.Logger = cfg.Logger
	}
	return cc
}

func (c GuestLogsConfig) validate(cfg *Config) error {
	switch {
	case c.Interval < 0:
		return configError("GuestLogs.Interval", "is %v, must not be negative", c.Interval)
	case c.ServerKind != "" && !validType(c.ServerKind):
		return configError("GuestLogs.ServerKind", "%q must be a-z 0-9 . _ -", c.ServerKind)
	case !c.enabled() || !cfg.Role.handles():
		return nil // publishers only schedule collections
	case !c.Collector.SourceCIDR.IsValid() && !cfg.SourceCIDR.IsValid():
		return configError("GuestLogs", "needs a source network: set SourceCIDR (or GuestLogs.Collector.SourceCIDR)")
	}
	if c.Collector.Credentials == nil && cfg.Keyring == nil {
		return configError("GuestLogs.Collector.Credentials", "is required without a Keyring (the embedded key manager)")
	}
	// Offsets default to the store's and credentials may to the embedded
	// key manager's; stand in for them here.
	stand := guest.CredentialsFunc(func(context.Context, string, string, string) (string, []ssh.AuthMethod, error) {
		return "", nil, nil
	})
	cc := c.collectorConfig(cfg, guest.NewMemoryOffsets(), nil)
	if cc.Credentials == nil {
		cc.Credentials = stand
	}
	if err := cc.Validate(); err != nil {
		return fmt.Errorf("%w: GuestLogs.Collector: %w", ErrInvalidConfig, err)
	}
	return nil
}

// guestLogs is the part behind the built-in "guest.logs" handler (in
// processes that handle actions, when Config.GuestLogs is enabled): for a
// dispatched account it lists the stored servers that are RUNNING and has
// the collector copy their new log lines.
type guestLogs struct {
	store     resourceLister
	collector *guest.Collector
	kind      string // the stored kind listing the servers
	log       *slog.Logger
	obs       observer
}

func (g *guestLogs) handlers(out dispatchOutcomes) map[string]HandlerFunc {
	return map[string]HandlerFunc{TypeGuestLogs: scheduled(out, g.log, g.collectDispatched)}
}

// collectDispatched collects the running guests of one dispatched account.
func (g *guestLogs) collectDispatched(ctx context.Context, d poller.Dispatch) (poller.Outcome, error) {
	return g.collect(ctx, d.Target.Account, d.Target.Customer), nil
}

func (g *guestLogs) collect(ctx context.Context, account, customer string) poller.Outcome {
	guests, err := g.runningGuests(ctx, account, customer)
	if err != nil {
		return poller.Outcome{Err: fmt.Errorf("guest logs of %s: %w", account, err)}
	}
	if len(guests) == 0 {
		return poller.Outcome{}
	}
	results := g.collector.Collect(ctx, guests)
	var failed, skipped int
	var bytes int64
	for _, r := range results {
		switch {
		case r.Skipped != "":
			skipped++
		case r.Err != nil:
			failed++
		}
		bytes += r.Bytes()
	}
	g.obs.guestLogs(bytes, len(results), failed, skipped)
	if ctx.Err() != nil {
		// Cut off by the handler timeout or shutdown: what was copied is
		// recorded; the rest continues next time.
		return poller.Outcome{Err: fmt.Errorf("guest logs of %s: %w", account, ctx.Err())}
	}
	g.log.Info("guest logs collected", "account", account, "customer", customer,
		"guests", len(guests), "failed", failed, "skipped", skipped, "bytes", bytes)
	return poller.Outcome{}
}

// runningGuests lists the account's stored servers that are RUNNING.
func (g *guestLogs) runningGuests(ctx context.Context, account, customer string) ([]guest.Guest, error) {
	var out []guest.Guest
	after := ""
	for {
		page, err := g.store.Resources(ctx, account, g.kind, after, persist.MaxResourcesPage)
		if err != nil {
			return nil, err
		}
		for _, r := range page {
			var s cloud.Server
			if err := json.Unmarshal(r.Attributes, &s); err != nil {
				g.log.Warn("stored server is not a cloud.Server; its logs are not collected",
					"customer", customer, "account", account, "server", r.ID, "err", err)
				continue
			}
			if s.State != cloud.StateRunning {
				continue
			}
			s.ID, s.Account = r.ID, r.Account
			owner := r.Customer
			if owner == "" {
				owner = customer
			}
			out = append(out, guest.FromServer(owner, s))
		}
		if len(page) < persist.MaxResourcesPage {
			return out, nil
		}
		after = page[len(page)-1].ID
	}
}

// storeOffsets keeps the collector's offsets in the store.
type storeOffsets struct{ store guestOffsetStore }

var _ guest.Offsets = storeOffsets{}

func (o storeOffsets) Get(ctx context.Context, k guest.GuestFile) (guest.Offset, error) {
	v, err := o.store.GuestOffset(ctx, persist.GuestFile(k))
	return guest.Offset(v), err
}

func (o storeOffsets) Put(ctx context.Context, k guest.GuestFile, v guest.Offset) error {
	return o.store.PutGuestOffset(ctx, persist.GuestFile(k), persist.GuestOffset(v))
}
