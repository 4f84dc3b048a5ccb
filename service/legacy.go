package service

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/magiconair/properties"
)

// The classic service's configuration files that [ImportLegacy] reads.
const (
	LegacyMQ           = "mq.cfg"
	LegacyWorker       = "worker.properties"
	LegacyPersistence  = "dasein-persistence.properties"
	LegacyKMClient     = "enstratus-km-client.cfg"
	LegacyProvisioning = "enstratus-provisioning.cfg"
)

// LegacyFiles lists the classic files in the order they are read.
var LegacyFiles = []string{LegacyMQ, LegacyWorker, LegacyPersistence, LegacyKMClient, LegacyProvisioning}

// DefaultSecretsDir is where imported secrets are referenced from.
const DefaultSecretsDir = "/etc/worker/secrets"

// ImportOptions tunes [ImportLegacy].
type ImportOptions struct {
	// SecretsDir is the directory the imported config's *_file references
	// point into. Default DefaultSecretsDir.
	SecretsDir string
	// WriteSecrets writes each secret of the classic files to its file in
	// SecretsDir (mode 0600, created; an existing file is never
	// overwritten). Default false: the operator writes them (see
	// Imported.Secrets).
	WriteSecrets bool
}

// Unmapped is a key of a classic file that has no place in the new
// configuration, and why. It never holds the key's value.
type Unmapped struct {
	File, Key, Reason string
}

func (u Unmapped) String() string { return u.File + ": " + u.Key + ": " + u.Reason }

// SecretRef is a secret of a classic file that the imported config
// references by file: its value must be put into Path (mode 0600), which
// WriteSecrets does.
type SecretRef struct {
	File, Key string // where the secret was
	Target    string // the key of the new config that references it, e.g. mq.password_file
	Path      string // the file it is referenced from
	Written   bool   // WriteSecrets wrote it
}

// Imported is the result of [ImportLegacy].
type Imported struct {
	// Config is the converted configuration; secrets are only referenced
	// (see Secrets), so it validates once the referenced files exist.
	Config *Config
	// Unmapped lists every key that could not be mapped, by file and key.
	Unmapped []Unmapped
	// Secrets lists the secrets to put into files.
	Secrets []SecretRef
	// secretValues holds the values for WriteSecrets only.
}

// YAML is the converted configuration as a YAML file, headed by comments
// listing the secrets to put into files and the keys not mapped. It never
// holds a secret's value.
func (im *Imported) YAML() ([]byte, error) {
	body, err := Marshal(im.Config)
	if err != nil {
		return nil, err
	}
	var b strings.Builder
	b.WriteString("# converted from the classic configuration files by `workers import`\n")
	for _, s := range im.Secrets {
		state := "put the value of " + s.File + " " + s.Key + " into it (mode 0600)"
		if s.Written {
			state = "written from " + s.File + " " + s.Key
		}
		fmt.Fprintf(&b, "# secret: %s: %s — %s\n", s.Target, s.Path, state)
	}
	for _, u := range im.Unmapped {
		fmt.Fprintf(&b, "# unmapped: %s\n", u)
	}
	b.Write(body)
	return []byte(b.String()), nil
}

// ImportLegacyDir reads the classic files present in dir (see
// LegacyFiles) and converts them with [ImportLegacy].
func ImportLegacyDir(dir string, opt ImportOptions) (*Imported, error) {
	files := map[string][]byte{}
	for _, name := range LegacyFiles {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("service: import: %w", err)
		}
		files[name] = b
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("service: import: %s holds none of %s", dir, strings.Join(LegacyFiles, ", "))
	}
	return ImportLegacy(files, opt)
}

// ImportLegacy converts the classic service's files, by base name (any of
// LegacyFiles; both the key=value .cfg files and the Java .properties
// files are read as Java properties), into a [Config]. Secrets are never
// copied into the Config: each becomes a *_file reference into
// opt.SecretsDir, listed in Imported.Secrets. Every key it cannot map is
// listed in Imported.Unmapped. Values that cannot be converted (a port
// that is not a number) are errors naming the file, the key and the value.
func ImportLegacy(files map[string][]byte, opt ImportOptions) (*Imported, error) {
	if opt.SecretsDir == "" {
		opt.SecretsDir = DefaultSecretsDir
	}
	im := &importer{opt: opt, out: &Imported{Config: &Config{}}, values: map[string]string{}}
	var names []string
	for name := range files {
		if !slices.Contains(LegacyFiles, name) {
			return nil, fmt.Errorf("service: import: %q is not a classic file (want %s)", name, strings.Join(LegacyFiles, ", "))
		}
		names = append(names, name)
	}
	slices.SortFunc(names, func(a, b string) int { return slices.Index(LegacyFiles, a) - slices.Index(LegacyFiles, b) })
	props := map[string]*properties.Properties{}
	for _, name := range names {
		p := properties.NewProperties()
		p.DisableExpansion = true // "${x}" stays as written
		if err := p.Load(files[name], properties.UTF8); err != nil {
			return nil, &ConfigError{File: name, Key: "(file)", Value: "", Problem: "is not a key=value file: " + err.Error()}
		}
		props[name] = p
	}
	// enstratus-km-client.cfg decides what the provisioning encryption key is.
	_, im.remoteKM = lookup(props[LegacyKMClient], "KM_HOST")
	for _, name := range names {
		if err := im.file(name, props[name]); err != nil {
			return nil, err
		}
	}
	if err := im.finish(); err != nil {
		return nil, err
	}
	return im.out, nil
}

func lookup(p *properties.Properties, key string) (string, bool) {
	if p == nil {
		return "", false
	}
	v, ok := p.Get(key)
	return strings.TrimSpace(v), ok
}

type importer struct {
	opt      ImportOptions
	out      *Imported
	remoteKM bool
	values   map[string]string // file/key → value, of the keys mapped in parts (hosts, ports)
}

func (im *importer) unmapped(file, key, reason string) {
	im.out.Unmapped = append(im.out.Unmapped, Unmapped{File: file, Key: key, Reason: reason})
}

// secret references the secret of file/key from target, writing it when asked.
func (im *importer) secret(file, key, value, target, name string, dest *string) error {
	path := filepath.Join(im.opt.SecretsDir, name)
	*dest = path
	ref := SecretRef{File: file, Key: key, Target: target, Path: path}
	if im.opt.WriteSecrets && value != "" {
		if err := os.MkdirAll(im.opt.SecretsDir, 0o700); err != nil {
			return fmt.Errorf("service: import: secrets directory: %w", err)
		}
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return fmt.Errorf("service: import: %s %s: %w", file, key, err)
		}
		_, werr := f.WriteString(value + "\n")
		if err := errors.Join(werr, f.Close()); err != nil {
			return fmt.Errorf("service: import: %s %s: %w", file, key, err)
		}
		ref.Written = true
	}
	im.out.Secrets = append(im.out.Secrets, ref)
	return nil
}

func badValue(file, key, value, problem string) error {
	if looksSecret(key) {
		value = Redacted
	}
	return &ConfigError{File: file, Key: key, Value: value, Problem: problem}
}

func looksSecret(key string) bool {
	k := strings.ToLower(key)
	return strings.Contains(k, "pass") || strings.Contains(k, "secret") || strings.HasSuffix(k, "key") || strings.Contains(k, "token")
}

func toInt(file, key, v string, lo, hi int) (int, error) {
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		return 0, badValue(file, key, v, fmt.Sprintf("is not an integer from %d to %d", lo, hi))
	}
	return n, nil
}

func toBool(file, key, v string) (bool, error) {
	switch strings.ToLower(v) {
	case "true", "yes", "on", "1":
		return true, nil
	case "false", "no", "off", "0":
		return false, nil
	}
	return false, badValue(file, key, v, "is not true or false")
}

func (im *importer) file(name string, p *properties.Properties) error {
	c := im.out.Config
	for _, key := range p.Keys() {
		v, _ := lookup(p, key)
		var err error
		switch name {
		case LegacyMQ:
			err = im.mq(name, key, v)
		case LegacyWorker:
			err = im.workerProps(name, key, v)
		case LegacyPersistence:
			switch key {
			case "dasein.persist.autoCreate":
				var b bool
				if b, err = toBool(name, key, v); err == nil {
					c.StateStore.Migrations = map[bool]string{true: "auto", false: "verify"}[b]
				}
			case "dasein.persist.persistenceLib":
				im.unmapped(name, key, "a Java library path: the worker has no counterpart")
			default:
				if strings.HasPrefix(key, "dasein.persist.riak") {
					im.unmapped(name, key, "Riak is not used: the state lives in provisioning_db")
				} else {
					im.unmapped(name, key, "no counterpart in the worker's state store")
				}
			}
		case LegacyKMClient:
			err = im.kmClient(name, key, v)
		case LegacyProvisioning:
			err = im.provisioning(name, key, v)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func (im *importer) mq(file, key, v string) error {
	c := im.out.Config
	switch key {
	case "mqHost", "mqPort", "mqUser", "mqVirtualHost", "mqUseSSL":
		im.values[file+"/"+key] = v
	case "mqPassword":
		return im.secret(file, key, v, "mq.password_file", "mq-password", &c.MQ.PasswordFile)
	case "mqPrefetch":
		n, err := toInt(file, key, v, 0, 65535)
		c.MQ.Prefetch = n
		return err
	case "mqConsumers":
		n, err := toInt(file, key, v, 0, 1024)
		c.MQ.Consumers = n
		return err
	case "mqExchange":
		im.unmapped(file, key, "the worker declares its own queues, named <mq.prefix>.<queue>")
	default:
		im.unmapped(file, key, "no counterpart in the mq section")
	}
	return nil
}

func (im *importer) workerProps(file, key, v string) error {
	c := im.out.Config
	for _, db := range []struct {
		prefix, section, secretName string
		d                           *DBSection
	}{
		{"provisioningDB", "provisioning_db", "provisioning-db-password", &c.ProvisioningDB},
		{"analyticsDB", "analytics_db", "analytics-db-password", &c.AnalyticsDB},
	} {
		suffix, ok := strings.CutPrefix(key, db.prefix)
		if !ok {
			continue
		}
		switch suffix {
		case "Host", "Port", "Name", "User":
			im.values[file+"/"+key] = v
		case "Pass":
			return im.secret(file, key, v, db.section+".password_file", db.secretName, &db.d.PasswordFile)
		case "MaxConnections":
			n, err := toInt(file, key, v, 0, 10000)
			db.d.MaxOpenConns = n
			return err
		default:
			im.unmapped(file, key, "no counterpart in the "+db.section+" section")
		}
		return nil
	}
	switch key {
	case "subscriberThreads":
		n, err := toInt(file, key, v, 0, 1<<20)
		c.Process.Concurrency = n
		return err
	case "logDirectory":
		c.Logging.Dir = v
	case "customerLogs":
		b, err := toBool(file, key, v)
		c.Logging.CustomerLogs = b
		return err
	default:
		im.unmapped(file, key, "no counterpart in the new configuration")
	}
	return nil
}

func (im *importer) kmClient(file, key, v string) error {
	c := im.out.Config
	switch key {
	case "KM_HOST", "KM_PORT", "KM_PROTOCOL":
		im.values[file+"/"+key] = v
	case "KM_TIMEOUT": // seconds
		n, err := toInt(file, key, v, 0, 3600)
		c.KM.Timeout = Duration(time.Duration(n) * time.Second)
		return err
	case "KM_KEYSTORE":
		im.unmapped(file, key, "a Java keystore: export the CA, the client certificate and its key as PEM to km.ca_file, km.cert_file and km.key_file")
	case "KM_KEYSTORE_PASSWORD":
		im.unmapped(file, key, "the Java keystore's password (not copied): PEM files need none")
	default:
		im.unmapped(file, key, "no counterpart in the km section")
	}
	return nil
}

func (im *importer) provisioning(file, key, v string) error {
	c := im.out.Config
	switch key {
	case "SOURCE_CIDR":
		parts := strings.Split(v, ",")
		first := strings.TrimSpace(parts[0])
		if a, err := netip.ParseAddr(first); err == nil {
			first = netip.PrefixFrom(a, a.BitLen()).String()
		} else if _, err := netip.ParsePrefix(first); err != nil {
			return badValue(file, key, v, "is not an address or a CIDR (want 10.0.0.5 or 10.0.0.0/24)")
		}
		c.Provisioning.SourceCIDR = first
		if len(parts) > 1 {
			im.unmapped(file, key, fmt.Sprintf("lists %d networks: a worker has one source network, the first (%s) was taken", len(parts), first))
		}
	case "ENCRYPTION_KEY":
		if im.remoteKM {
			im.unmapped(file, key, "the classic key of connections to KM (not copied): the key service is reached over mutual TLS (km.cert_file, km.key_file)")
			return nil
		}
		c.Provisioning.EncryptionKeyFile = filepath.Join(im.opt.SecretsDir, "km.keys")
		im.unmapped(file, key, "not copied: it is not a 32-byte master key; generate the master key file provisioning.encryption_key_file (lines id:version:key, mode 0600) and re-enter the credentials")
	case "SSH_PORT":
		n, err := toInt(file, key, v, 1, 65535)
		c.Provisioning.ManagementPort = n
		return err
	default:
		im.unmapped(file, key, "no counterpart in the provisioning section")
	}
	return nil
}

// finish assembles what several keys make: the MQ URL, the DSNs, the KM URL.
func (im *importer) finish() error {
	c := im.out.Config
	get := func(file, key string) (string, bool) {
		v, ok := im.values[file+"/"+key]
		return v, ok
	}
	if host, ok := get(LegacyMQ, "mqHost"); ok {
		u := url.URL{Scheme: "amqp", Host: host}
		if ssl, ok := get(LegacyMQ, "mqUseSSL"); ok {
			b, err := toBool(LegacyMQ, "mqUseSSL", ssl)
			if err != nil {
				return err
			}
			if b {
				u.Scheme = "amqps"
			}
		}
		if port, ok := get(LegacyMQ, "mqPort"); ok {
			if _, err := toInt(LegacyMQ, "mqPort", port, 1, 65535); err != nil {
				return err
			}
			u.Host = net.JoinHostPort(host, port)
		}
		if user, ok := get(LegacyMQ, "mqUser"); ok {
			u.User = url.User(user)
		}
		if vh, ok := get(LegacyMQ, "mqVirtualHost"); ok && vh != "" && vh != "/" {
			u.Path = "/" + vh
		}
		c.MQ.URL = u.String()
	} else {
		for _, k := range []string{"mqPort", "mqUser", "mqVirtualHost", "mqUseSSL"} {
			if _, ok := get(LegacyMQ, k); ok {
				im.unmapped(LegacyMQ, k, "no mqHost: the embedded transport is used")
			}
		}
	}
	for _, db := range []struct {
		prefix string
		d      *DBSection
	}{{"provisioningDB", &c.ProvisioningDB}, {"analyticsDB", &c.AnalyticsDB}} {
		host, ok := get(LegacyWorker, db.prefix+"Host")
		if !ok {
			continue
		}
		mc := mysql.NewConfig()
		mc.Net, mc.Addr = "tcp", net.JoinHostPort(host, "3306")
		if port, ok := get(LegacyWorker, db.prefix+"Port"); ok {
			if _, err := toInt(LegacyWorker, db.prefix+"Port", port, 1, 65535); err != nil {
				return err
			}
			mc.Addr = net.JoinHostPort(host, port)
		}
		mc.User, _ = get(LegacyWorker, db.prefix+"User")
		mc.DBName, _ = get(LegacyWorker, db.prefix+"Name")
		if mc.DBName == "" {
			return badValue(LegacyWorker, db.prefix+"Name", "", "is required with "+db.prefix+"Host (the database's name)")
		}
		db.d.Driver = "mysql"
		db.d.DSN = mc.FormatDSN()
	}
	if host, ok := get(LegacyKMClient, "KM_HOST"); ok {
		scheme := "https"
		if p, ok := get(LegacyKMClient, "KM_PROTOCOL"); ok && p != "https" {
			im.unmapped(LegacyKMClient, "KM_PROTOCOL", fmt.Sprintf("%q: the key service is reached over https only", p))
		}
		u := url.URL{Scheme: scheme, Host: host}
		if port, ok := get(LegacyKMClient, "KM_PORT"); ok {
			if _, err := toInt(LegacyKMClient, "KM_PORT", port, 1, 65535); err != nil {
				return err
			}
			u.Host = net.JoinHostPort(host, port)
		}
		c.KM.URL = u.String()
		c.KM.CAFile = filepath.Join(im.opt.SecretsDir, "km-ca.pem")
		c.KM.CertFile = filepath.Join(im.opt.SecretsDir, "km-client.pem")
		c.KM.KeyFile = filepath.Join(im.opt.SecretsDir, "km-client.key")
	}
	return nil
}
