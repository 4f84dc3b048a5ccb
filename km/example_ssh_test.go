package km_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"golang.org/x/crypto/ssh"

	"github.com/stratusworks/worker/km"
	"github.com/stratusworks/worker/persist"
)

// Keep an account's guest SSH key in the encrypted store and hand it to the
// guest log collector: SSHLogins is its Credentials.
func ExampleSSHLogins() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "km-example")
	defer os.RemoveAll(dir)
	// The provisioning database: persist's migrations create km's tables.
	db, err := persist.Open(ctx, persist.Config{
		Provisioning: persist.DBConfig{DSN: filepath.Join(dir, "worker.db")},
		Logger:       slog.New(slog.DiscardHandler),
	})
	if err != nil {
		panic(err)
	}
	defer db.Close()
	kr, _ := km.NewKeyring(km.MasterKey{ID: "prod", Version: 1, Key: km.NewSecret(bytes.Repeat([]byte{0x42}, 32))})
	defer kr.Close()
	store, err := km.NewLocalStore(db.DB(), kr)
	if err != nil {
		panic(err)
	}

	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	block, _ := ssh.MarshalPrivateKey(priv, "")
	err = store.Put(ctx, km.Credential{
		Customer: "acme", Account: "acct-42", Kind: km.KindSSH, Name: km.DefaultSSHCredential,
		Meta:   map[string]string{km.MetaUser: "debian"},
		Fields: map[string]km.Secret{km.FieldPrivateKey: km.NewSecret(pem.EncodeToMemory(block))},
	})
	if err != nil {
		panic(err)
	}

	logins := km.SSHLogins{Store: store} // guest.CollectorConfig{Credentials: logins, …}
	user, methods, err := logins.SSHAuth(ctx, "acme", "acct-42", "vm-7")
	fmt.Println(user, len(methods), err)
	_, _, err = logins.SSHAuth(ctx, "acme", "acct-43", "vm-8")
	fmt.Println(err)
	// Output:
	// debian 1 <nil>
	// km: ssh login for server "vm-8": km: credential acme/acct-43/ssh not found
}
