package cloud

import (
	"context"
	"time"
)

// Provider is one cloud. Each service accessor returns ErrNotSupported (wrapped
// with the provider's name) when the cloud has no such service. The services
// of the other kinds (volumes, DNS, invoices, …) are optional accessors that
// a provider may add; reach them with their helpers ([VolumesOf], [DNSOf], …).
type Provider interface {
	// Name identifies the provider, e.g. "sim" or "vsphere".
	Name() string
	Compute() (Compute, error)
	Network() (Network, error)
	Billing() (Billing, error)
	Operations() (Operations, error)
}

// ListOptions selects one page of a listing.
type ListOptions struct {
	// PageToken is the NextToken of the previous page; "" for the first page.
	// A token is valid only for the listing (account and call) that issued it.
	PageToken string
	// PageSize is the most items wanted; 0 means the provider's default. A
	// provider may return fewer.
	PageSize int
}

// ServerState is a server's lifecycle state.
type ServerState string

// Server states.
const (
	StatePending    ServerState = "PENDING"
	StateRunning    ServerState = "RUNNING"
	StateStopping   ServerState = "STOPPING"
	StateStopped    ServerState = "STOPPED"
	StateTerminated ServerState = "TERMINATED"
	StateError      ServerState = "ERROR"
	StateUnknown    ServerState = "UNKNOWN"
)

// Server is a virtual machine.
type Server struct {
	ID         string            `json:"id"`
	Name       string            `json:"name"`
	Account    string            `json:"account"`
	Region     string            `json:"region,omitempty"`
	Image      string            `json:"image,omitempty"`
	Size       string            `json:"size,omitempty"`
	State      ServerState       `json:"state"`
	Tags       map[string]string `json:"tags,omitempty"`
	PrivateIPs []string          `json:"private_ips,omitempty"`
	PublicIPs  []string          `json:"public_ips,omitempty"`
	LaunchedAt time.Time         `json:"launched_at"`
}

// ServerStatus is the cheap, status-only view of a server.
type ServerStatus struct {
	ID    string      `json:"id"`
	State ServerState `json:"state"`
}

// ServerPage is one page of servers. NextToken is "" on the last page.
type ServerPage struct {
	Servers   []Server
	NextToken string
}

// StatusPage is one page of server statuses. NextToken is "" on the last page.
type StatusPage struct {
	Statuses  []ServerStatus
	NextToken string
}

// LaunchRequest describes a server to launch.
type LaunchRequest struct {
	Name  string `json:"name"`
	Image string `json:"image"`
	Size  string `json:"size,omitempty"`
	// Tags are set on the server. Launch handlers put the idempotency key in a
	// tag so that a redelivered launch finds the server instead of launching again.
	Tags map[string]string `json:"tags,omitempty"`
}

// Compute manages servers.
type Compute interface {
	// ListServers returns one page of the account's servers with full details.
	ListServers(ctx context.Context, account string, opts ListOptions) (ServerPage, error)
	// ListServerStatus returns one page of ids and states only: cheaper, for frequent polls.
	ListServerStatus(ctx context.Context, account string, opts ListOptions) (StatusPage, error)
	// GetServer returns one server, or an error matching ErrNotFound.
	GetServer(ctx context.Context, account, id string) (Server, error)
	// FindServersByTag returns the servers whose tag key has the given value.
	FindServersByTag(ctx context.Context, account, key, value string) ([]Server, error)
	// Launch starts launching a server and returns the asynchronous operation;
	// Operation.ResourceID is the new server's id when the provider knows it at once.
	Launch(ctx context.Context, account string, req LaunchRequest) (Operation, error)
	// Terminate starts terminating a server.
	Terminate(ctx context.Context, account, id string) (Operation, error)
}

// Direction of a firewall rule.
type Direction string

// Rule directions.
const (
	Ingress Direction = "ingress"
	Egress  Direction = "egress"
)

// Rule is one firewall rule: traffic of Protocol on ports FromPort..ToPort
// from (ingress) or to (egress) CIDR is allowed.
type Rule struct {
	ID        string    `json:"id"`
	Direction Direction `json:"direction"`
	Protocol  string    `json:"protocol"` // "tcp", "udp", "icmp" or "all"
	FromPort  int       `json:"from_port"`
	ToPort    int       `json:"to_port"`
	CIDR      string    `json:"cidr"`
}

// Firewall is a set of rules (a security group).
type Firewall struct {
	ID      string `json:"id"`
	Name    string `json:"name"`
	Account string `json:"account"`
	Rules   []Rule `json:"rules"`
}

// FirewallPage is one page of firewalls. NextToken is "" on the last page.
type FirewallPage struct {
	Firewalls []Firewall
	NextToken string
}

// Network manages firewalls.
type Network interface {
	ListFirewalls(ctx context.Context, account string, opts ListOptions) (FirewallPage, error)
	// Authorize adds a rule and returns it with its ID. Authorizing a rule that
	// already exists (same direction, protocol, ports and CIDR) returns the
	// existing rule: it is idempotent.
	Authorize(ctx context.Context, account, firewallID string, r Rule) (Rule, error)
	// Revoke removes a rule. Revoking a rule that does not exist is not an error.
	Revoke(ctx context.Context, account, firewallID, ruleID string) error
}

// Budget is a spending limit and what has been spent against it.
type Budget struct {
	ID       string  `json:"id"`
	Account  string  `json:"account"`
	Name     string  `json:"name"`
	Limit    float64 `json:"limit"`
	Spent    float64 `json:"spent"`
	Currency string  `json:"currency"`
	Period   string  `json:"period"` // e.g. "2026-11"
}

// Billing reads budgets.
type Billing interface {
	ListBudgets(ctx context.Context, account string) ([]Budget, error)
}

// OperationState is the state of an asynchronous operation.
type OperationState string

// Operation states. Succeeded and Failed are terminal.
const (
	OpRunning   OperationState = "RUNNING"
	OpSucceeded OperationState = "SUCCEEDED"
	OpFailed    OperationState = "FAILED"
)

// Terminal reports whether the state is final.
func (s OperationState) Terminal() bool { return s == OpSucceeded || s == OpFailed }

// Operation is an asynchronous job in the cloud (a launch, a termination).
type Operation struct {
	ID         string         `json:"id"`
	Kind       string         `json:"kind"`                  // e.g. "launch", "terminate"
	ResourceID string         `json:"resource_id,omitempty"` // the server concerned, once known
	State      OperationState `json:"state"`
	Error      string         `json:"error,omitempty"` // why it failed
	UpdatedAt  time.Time      `json:"updated_at"`
}

// Operations reads the status of asynchronous operations.
type Operations interface {
	// Operation returns the current status, or an error matching ErrNotFound.
	Operation(ctx context.Context, account, id string) (Operation, error)
}

// Pinger is implemented by a [Provider] that has a cheaper way than a
// listing to check that an account's endpoint answers and accepts the
// account's credential. The worker's pingers (worker.RolePinger) call it;
// for a provider without it they list one page of one server status.
// Ping returns an error matching [ErrAuthentication] when the cloud
// refused the credential.
type Pinger interface {
	Ping(ctx context.Context, account string) error
}
