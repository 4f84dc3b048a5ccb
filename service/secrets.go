package service

import (
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
)

// MaxSecretFileSize bounds a secret file (password_file).
const MaxSecretFileSize = 64 << 10

// secretRef is one secret of the config and the three ways of giving it.
type secretRef struct {
	key               string // "mq.password"
	inline, file, env *string
	fileKey, envKey   string
}

func (c *Config) secretRefs() []secretRef {
	ref := func(section string, inline, file, env *string) secretRef {
		return secretRef{key: section + ".password", inline: inline, file: file, env: env,
			fileKey: section + ".password_file", envKey: section + ".password_env"}
	}
	return []secretRef{
		ref("mq", &c.MQ.Password, &c.MQ.PasswordFile, &c.MQ.PasswordEnv),
		ref("provisioning_db", &c.ProvisioningDB.Password, &c.ProvisioningDB.PasswordFile, &c.ProvisioningDB.PasswordEnv),
		ref("analytics_db", &c.AnalyticsDB.Password, &c.AnalyticsDB.PasswordFile, &c.AnalyticsDB.PasswordEnv),
	}
}

// isSecretKey reports whether the value of key is a secret (redacted in
// errors and in Check).
func isSecretKey(key string) bool {
	return strings.HasSuffix(key, ".password") || key == "password"
}

// envRef reports whether v is a whole "${NAME}" reference.
func envRef(v string) (string, bool) {
	name, ok := strings.CutPrefix(v, "${")
	if !ok {
		return "", false
	}
	name, ok = strings.CutSuffix(name, "}")
	if !ok || name == "" || strings.ContainsAny(name, "${} =") {
		return "", false
	}
	return name, true
}

func (c *Config) lookupEnv(name string) (string, bool) {
	if c.meta != nil {
		v, ok := c.meta.vars[name]
		return v, ok
	}
	return os.LookupEnv(name)
}

// fromEnv reports whether key was set by a WORKER_* variable.
func (c *Config) fromEnv(key string) bool { return c.meta != nil && c.meta.env[key] != "" }

// resolveSecrets reads every secret from its reference into c.secrets.
func (c *Config) resolveSecrets() error {
	c.secrets = map[string]string{}
	for _, r := range c.secretRefs() {
		set := 0
		for _, p := range []*string{r.inline, r.file, r.env} {
			if *p != "" {
				set++
			}
		}
		if set > 1 {
			return c.fail(r.key, *r.inline, "is given more than once: set one of %s, %s and %s", r.key, r.fileKey, r.envKey)
		}
		switch {
		case *r.file != "":
			v, problem := readSecretFile(*r.file)
			if problem != "" {
				return c.fail(r.fileKey, *r.file, "%s", problem)
			}
			c.secrets[r.key] = v
		case *r.env != "":
			v, ok := c.lookupEnv(*r.env)
			if !ok || v == "" {
				return c.fail(r.envKey, *r.env, "names an environment variable that is not set (or is empty)")
			}
			c.secrets[r.key] = v
		case *r.inline != "":
			if name, ok := envRef(*r.inline); ok {
				v, ok := c.lookupEnv(name)
				if !ok || v == "" {
					return c.fail(r.key, *r.inline, "names the environment variable %s, which is not set (or is empty)", name)
				}
				c.secrets[r.key] = v
				continue
			}
			if !c.AllowInlineSecrets && !c.fromEnv(r.key) {
				return c.fail(r.key, *r.inline, "is a secret written into the file: give it by reference (%s, %s or \"${NAME}\"), or set allow_inline_secrets: true", r.fileKey, r.envKey)
			}
			c.secrets[r.key] = *r.inline
		}
	}
	return nil
}

// readSecretFile reads a secret file: a regular file readable by its owner
// only, owned by this process's user or root (as km's key files), its
// content without the trailing newline. The problem never holds
// any of the file's content.
func readSecretFile(path string) (string, string) {
	f, err := os.Open(path)
	if err != nil {
		if os.IsNotExist(err) {
			return "", "does not exist (want a file holding the secret, mode 0600)"
		}
		return "", fmt.Sprintf("cannot be read: %v", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", fmt.Sprintf("cannot be read: %v", err)
	}
	if !fi.Mode().IsRegular() {
		return "", fmt.Sprintf("is not a regular file (mode %s)", fi.Mode())
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 && runtime.GOOS != "windows" {
		return "", fmt.Sprintf("is accessible by group or others (mode %04o): chmod 600 it", perm)
	}
	if uid, ok := fileOwner(fi); ok && uid != 0 && uid != os.Geteuid() {
		return "", fmt.Sprintf("is owned by uid %d, not by this process's user (uid %d) or root: chown it", uid, os.Geteuid())
	}
	b, err := io.ReadAll(io.LimitReader(f, MaxSecretFileSize+1))
	defer clear(b)
	if err != nil {
		return "", fmt.Sprintf("cannot be read: %v", err)
	}
	if len(b) > MaxSecretFileSize {
		return "", fmt.Sprintf("is larger than %d bytes", MaxSecretFileSize)
	}
	v := strings.TrimRight(string(b), "\r\n")
	if v == "" {
		return "", "is empty (want the secret in it)"
	}
	return v, ""
}
