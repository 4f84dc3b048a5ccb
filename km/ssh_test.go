package km_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/ssh"

	"github.com/stratusworks/worker/internal/sshtest"
	"github.com/stratusworks/worker/km"
)

func TestSSHLogins(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	signer, err := ssh.NewSignerFromKey(priv)
	require.NoError(t, err)
	plain, err := ssh.MarshalPrivateKey(priv, "")
	require.NoError(t, err)
	encrypted, err := ssh.MarshalPrivateKeyWithPassphrase(priv, "", []byte("open sesame"))
	require.NoError(t, err)
	srv := sshtest.New(t, signer.PublicKey(), 0)

	store := newLocalStore(t, newDB(t, nil), newKeyring(t, masterKey("prod", 1, 0x11)))
	put := func(account string, kind km.Kind, meta map[string]string, fields map[string]string) {
		t.Helper()
		c := km.Credential{Customer: "acme", Account: account, Kind: kind, Name: "ssh", Meta: meta, Fields: map[string]km.Secret{}}
		for k, v := range fields {
			c.Fields[k] = km.NewSecretString(v)
		}
		require.NoError(t, store.Put(ctx, c))
	}
	put("plain", km.KindSSH, map[string]string{km.MetaUser: "collector"}, map[string]string{km.FieldPrivateKey: string(pem.EncodeToMemory(plain))})
	put("encrypted", km.KindSSH, nil, map[string]string{
		km.FieldPrivateKey: string(pem.EncodeToMemory(encrypted)), km.FieldPassphrase: "open sesame"})
	put("no-passphrase", km.KindSSH, nil, map[string]string{km.FieldPrivateKey: string(pem.EncodeToMemory(encrypted))})
	put("wrong-passphrase", km.KindSSH, nil, map[string]string{
		km.FieldPrivateKey: string(pem.EncodeToMemory(encrypted)), km.FieldPassphrase: canary})
	put("garbage", km.KindSSH, nil, map[string]string{km.FieldPrivateKey: "-----BEGIN OPENSSH PRIVATE KEY-----\n" + canary + "\n-----END OPENSSH PRIVATE KEY-----\n"})
	put("password", km.KindSSH, map[string]string{km.MetaUser: "ops"}, map[string]string{km.FieldPassword: canary})
	put("cloud", km.KindCloud, nil, map[string]string{km.FieldSecretKey: canary})
	put("other-fields", km.KindSSH, nil, map[string]string{"token": canary})

	logins := km.SSHLogins{Store: store}
	tests := []struct {
		account  string
		user     string
		methods  int
		wantErr  error
		errParts []string
		login    bool // the methods log in to the test server
	}{
		{account: "plain", user: "collector", methods: 1, login: true},
		{account: "encrypted", user: km.DefaultSSHUser, methods: 1, login: true},
		{account: "password", user: "ops", methods: 1},
		{account: "missing", wantErr: km.ErrNotFound, errParts: []string{"acme/missing/ssh", "not found"}},
		{account: "no-passphrase", wantErr: km.ErrInvalid, errParts: []string{"encrypted", km.FieldPassphrase}},
		{account: "wrong-passphrase", wantErr: km.ErrInvalid, errParts: []string{"does not decrypt"}},
		{account: "garbage", wantErr: km.ErrInvalid, errParts: []string{km.FieldPrivateKey, "acme/garbage/ssh"}},
		{account: "cloud", wantErr: km.ErrInvalid, errParts: []string{`kind "cloud"`}},
		{account: "other-fields", wantErr: km.ErrInvalid, errParts: []string{"neither"}},
	}
	for _, tt := range tests {
		t.Run(tt.account, func(t *testing.T) {
			user, methods, err := logins.SSHAuth(ctx, "acme", tt.account, "vm-1")
			if tt.wantErr != nil {
				require.ErrorIs(t, err, tt.wantErr)
				require.NotContains(t, err.Error(), canary)
				require.Contains(t, err.Error(), `server "vm-1"`)
				for _, p := range tt.errParts {
					require.Contains(t, err.Error(), p)
				}
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.user, user)
			require.Len(t, methods, tt.methods)
			if !tt.login {
				return
			}
			client, err := ssh.Dial("tcp", srv.Addr, &ssh.ClientConfig{
				User: user, Auth: methods, HostKeyCallback: ssh.FixedHostKey(srv.HostKey), Timeout: 5 * time.Second,
			})
			require.NoError(t, err)
			require.NoError(t, client.Close())
		})
	}

	t.Run("options", func(t *testing.T) {
		c := km.Credential{Customer: "acme", Account: "plain", Kind: km.KindSSH, Name: "deploy",
			Fields: map[string]km.Secret{km.FieldPrivateKey: km.NewSecret(pem.EncodeToMemory(plain))}}
		require.NoError(t, store.Put(ctx, c))
		user, _, err := km.SSHLogins{Store: store, Name: "deploy", DefaultUser: "debian"}.SSHAuth(ctx, "acme", "plain", "vm-1")
		require.NoError(t, err)
		require.Equal(t, "debian", user)
		_, _, err = km.SSHLogins{}.SSHAuth(ctx, "acme", "plain", "vm-1")
		require.ErrorIs(t, err, km.ErrInvalid)
	})
}

// SSHLogins hands over exactly the stored key: a server that accepts
// another key refuses the login.
func TestSSHLoginsWrongKeyRefused(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	block, err := ssh.MarshalPrivateKey(priv, "")
	require.NoError(t, err)
	srv := sshtest.New(t, sshtest.NewSigner(t).PublicKey(), 0) // accepts another key
	store := newLocalStore(t, newDB(t, nil), newKeyring(t, masterKey("prod", 1, 0x11)))
	require.NoError(t, store.Put(ctx, km.Credential{Customer: "acme", Account: "1", Kind: km.KindSSH, Name: "ssh",
		Fields: map[string]km.Secret{km.FieldPrivateKey: km.NewSecret(pem.EncodeToMemory(block))}}))
	user, methods, err := km.SSHLogins{Store: store}.SSHAuth(ctx, "acme", "1", "vm-1")
	require.NoError(t, err)
	conn, err := net.DialTimeout("tcp", srv.Addr, 5*time.Second)
	require.NoError(t, err)
	defer conn.Close()
	_, _, _, err = ssh.NewClientConn(conn, srv.Addr, &ssh.ClientConfig{User: user, Auth: methods, HostKeyCallback: ssh.FixedHostKey(srv.HostKey)})
	require.ErrorContains(t, err, "unable to authenticate")
}
