package km_test

import (
	"bytes"
	"fmt"

	"github.com/stratusworks/worker/km"
)

// Seal a secret for one credential and open it again. In production the
// keyring comes from km.LoadKeyFile; this example uses a fixed test key.
func ExampleKeyring() {
	kr, err := km.NewKeyring(km.MasterKey{ID: "prod", Version: 1, Key: km.NewSecret(bytes.Repeat([]byte{0x42}, 32))})
	if err != nil {
		panic(err)
	}
	defer kr.Close()

	b := km.Binding{Customer: "acme", Account: "123456789012", Name: "default"}
	env, err := kr.Seal(b, []byte("wJalrXUtnFEMI/K7MDENG"))
	if err != nil {
		panic(err)
	}
	hdr, _ := km.ParseEnvelope(env)
	fmt.Printf("sealed under %s v%d\n", hdr.KeyID, hdr.KeyVersion)

	secret, err := kr.Open(b, env)
	if err != nil {
		panic(err)
	}
	defer secret.Destroy()
	fmt.Println("secret:", secret)
	fmt.Printf("as %%#v: %#v, as %%x: %x\n", secret, secret)
	_ = secret.Use(func(p []byte) error {
		fmt.Println("length:", len(p), "round trip ok:", string(p) == "wJalrXUtnFEMI/K7MDENG")
		return nil
	})

	_, err = kr.Open(km.Binding{Customer: "acme", Account: "123456789012", Name: "other"}, env)
	fmt.Println(err)
	// Output:
	// sealed under prod v1
	// secret: [REDACTED]
	// as %#v: [REDACTED], as %x: [REDACTED]
	// length: 21 round trip ok: true
	// km: ciphertext failed authentication for acme/123456789012/other (modified, or moved from another credential)
}

// A credential prints its identifiers and field names, never its values.
func ExampleCredential() {
	c := km.Credential{
		Customer: "acme", Account: "123456789012", Provider: "aws", Kind: km.KindCloud, Name: "default",
		Fields: map[string]km.Secret{
			km.FieldAccessKeyID: km.NewSecretString("AKIAEXAMPLE"),
			km.FieldSecretKey:   km.NewSecretString("wJalrXUtnFEMI/K7MDENG"),
		},
	}
	fmt.Println(c)
	// Output:
	// credential acme/123456789012/default (provider "aws", kind "cloud"; fields: access_key_id=[REDACTED] secret_key=[REDACTED])
}
