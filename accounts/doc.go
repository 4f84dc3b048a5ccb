// Package accounts is the registry of the cloud accounts a worker polls:
// many customers, each with accounts on their own clouds.
//
// An [Account] says whose account it is (Customer), which provider type
// builds its cloud provider ("vsphere", "sim", or a type the host
// registers with the worker) and with which settings (endpoint,
// datacenter, launch placement — never a secret), which credential in the
// key manager (package km) logs in to it, whether it is paused, how often
// each kind is polled when that differs from the kind's interval, and the
// host's labels.
//
// The [Registry] validates accounts (errors name the field and the value)
// and keeps them in a [Store]: package persist stores them in the
// provisioning database, so every process of a deployment sees the same
// accounts and a restarted publisher polls them all again without host
// code. A worker (package worker) exposes its registry as
// Worker.Accounts, follows it with its schedule, builds each account's
// provider lazily from its entry and credential, and rebuilds it when
// either changes.
//
// Writes are revisioned: a Put with the Revision it read replaces only
// that revision (ErrConflict otherwise), and Pause and Resume retry on
// conflict, so concurrent writers never lose each other's changes.
package accounts
