package logging

import (
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/stratusworks/worker/internal/safefs"
)

// backupTimeFormat is the time in the names lumberjack gives rotated files:
// <name without extension>-<UTC time><extension>, "worker-2006-01-02T15-04-05.000.log".
const backupTimeFormat = "2006-01-02T15-04-05.000"

// compressSuffix ends the name of a compressed rotated file.
const compressSuffix = ".gz"

// backup is a rotated file of a customer.
type backup struct {
	name string    // in the customer's directory
	time time.Time // of the rotation
	gz   bool      // compressed
}

// backupOf parses name as that of a rotated file of fileName, compressed or
// not, as lumberjack names them.
func backupOf(fileName, name string) (backup, bool) {
	ext := filepath.Ext(fileName)
	prefix := strings.TrimSuffix(fileName, ext) + "-"
	parse := func(rest string) (time.Time, bool) {
		ts, ok := strings.CutPrefix(rest, prefix)
		if !ok {
			return time.Time{}, false
		}
		if ts, ok = strings.CutSuffix(ts, ext); !ok {
			return time.Time{}, false
		}
		t, err := time.Parse(backupTimeFormat, ts)
		return t, err == nil
	}
	if t, ok := parse(name); ok {
		return backup{name: name, time: t}, true
	}
	if rest, ok := strings.CutSuffix(name, compressSuffix); ok {
		if t, ok := parse(rest); ok {
			return backup{name: name, time: t, gz: true}, true
		}
	}
	return backup{}, false
}

// startMill makes sure a mill of f's backups runs after this point. f.mu is
// held. Mills run in the background, one at a time per customer, and Close
// waits for them.
func (s *shared) startMill(f *customerFile) {
	if s.cfg.MaxBackups < 0 && s.cfg.MaxAgeDays < 0 && !s.cfg.Compress {
		return // nothing to do
	}
	if f.milling {
		f.again = true
		return
	}
	s.millMu.Lock()
	defer s.millMu.Unlock()
	if s.millDone {
		return
	}
	f.milling = true
	s.mills.Go(func() {
		for {
			if err := s.mill(f); err != nil {
				s.warn(context.Background(), "customer log retention failed", f.customer, err)
			}
			f.mu.Lock()
			again := f.again
			f.again, f.milling = false, again
			f.mu.Unlock()
			if !again {
				return
			}
		}
	})
}

// mill does what lumberjack's clean-up would, without following links:
// beyond the newest MaxBackups rotated files (a file and its compressed copy
// count once) and those older than MaxAgeDays (by the time in their names)
// are removed, and with Compress the others are gzipped. Only regular files
// are touched; a link in their place is left alone (and refused by the next
// checkFiles).
func (s *shared) mill(f *customerFile) error {
	entries, err := s.fs.ReadDir(f.path)
	if err != nil {
		return err
	}
	var backups []backup
	regular := map[string]bool{}
	for _, e := range entries {
		if b, ok := backupOf(f.path.Name, e.Name); ok && e.Type.IsRegular() {
			backups = append(backups, b)
			regular[e.Name] = true
		}
	}
	slices.SortFunc(backups, func(a, b backup) int { return b.time.Compare(a.time) }) // newest first
	var remove, keep []backup
	seen := map[string]bool{} // by uncompressed name
	cutoff := time.Now().Add(-time.Duration(s.cfg.MaxAgeDays) * 24 * time.Hour)
	for _, b := range backups {
		key := b.name
		if b.gz {
			key = strings.TrimSuffix(key, compressSuffix)
		}
		seen[key] = true
		if s.cfg.MaxBackups > 0 && len(seen) > s.cfg.MaxBackups || s.cfg.MaxAgeDays > 0 && b.time.Before(cutoff) {
			remove = append(remove, b)
		} else {
			keep = append(keep, b)
		}
	}
	var errs []error
	for _, b := range remove {
		if err := s.fs.Remove(f.at(b.name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	if s.cfg.Compress {
		for _, b := range keep {
			if !b.gz {
				errs = append(errs, s.compress(f, b.name, regular[b.name+compressSuffix]))
			}
		}
	}
	return errors.Join(errs...)
}

// at is the path of name in the customer's directory.
func (f *customerFile) at(name string) safefs.Path {
	p := f.path
	p.Name = name
	return p
}

// compress gzips the rotated file name into name.gz, synced before name is
// removed. A regular name.gz, left by an interrupted compression, is
// replaced; anything else there fails the compression.
func (s *shared) compress(f *customerFile, name string, replace bool) (err error) {
	src, err := s.fs.OpenRead(f.at(name))
	if err != nil {
		return err
	}
	defer src.Close()
	fi, err := src.Stat()
	if err != nil {
		return err
	}
	dstPath := f.at(name + compressSuffix)
	if replace {
		if err := s.fs.Remove(dstPath); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	dst, err := s.fs.Create(dstPath, fi.Mode().Perm())
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = dst.Close()
			err = errors.Join(fmt.Errorf("compress %s: %w", src.Name(), err), s.fs.Remove(dstPath))
		}
	}()
	gz := gzip.NewWriter(dst)
	if _, err := io.Copy(gz, src); err != nil {
		return err
	}
	if err := gz.Close(); err != nil {
		return err
	}
	if err := dst.Sync(); err != nil {
		return err
	}
	if err := dst.Close(); err != nil {
		return err
	}
	return s.fs.Remove(f.at(name))
}

// warn writes a WARN line about a customer's file to the process log.
func (s *shared) warn(ctx context.Context, msg, customer string, err error) {
	if !s.proc.Enabled(ctx, slog.LevelWarn) {
		return
	}
	r := slog.NewRecord(time.Now(), slog.LevelWarn, msg, 0)
	r.AddAttrs(slog.String(s.cfg.Key, customer), slog.String("err", err.Error()))
	_ = s.proc.Handle(ctx, r)
}
