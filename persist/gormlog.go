package persist

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/logger"
)

// slowStatement is how long a statement may take before it is logged.
const slowStatement = time.Second

// newGormLogger returns the store's GORM logger: GORM's own warnings and
// statements slower than slowStatement (at Warn), without their values
// (payloads may be sensitive). A statement that fails is not logged: its
// error is returned, and the caller logs it once (during an outage, every
// failure used to be logged three times: by GORM, the driver and the
// caller). An explicit LogMode(logger.Info) logs every statement.
func newGormLogger(log *slog.Logger) logger.Interface {
	return quietTrace{Interface: logger.NewSlogLogger(log, logger.Config{
		LogLevel:                  logger.Warn,
		SlowThreshold:             slowStatement,
		IgnoreRecordNotFoundError: true,
		ParameterizedQueries:      true,
	}), level: logger.Warn}
}

// quietTrace skips the trace of statements that will not be logged: failed
// ones, and fast ones. GORM's slog logger renders the statement text before
// deciding, which for the large multi-row statements of a save costs a copy
// of every statement.
type quietTrace struct {
	logger.Interface
	level logger.LogLevel
}

func (l quietTrace) LogMode(level logger.LogLevel) logger.Interface {
	return quietTrace{Interface: l.Interface.LogMode(level), level: level}
}

func (l quietTrace) Trace(ctx context.Context, begin time.Time, fc func() (string, int64), err error) {
	if l.level < logger.Info {
		if err != nil && !errors.Is(err, gorm.ErrRecordNotFound) {
			return // returned to the caller, who logs it
		}
		if time.Since(begin) <= slowStatement {
			return
		}
		err = nil // a slow "record not found" is a slow statement, not an error
	}
	l.Interface.Trace(ctx, begin, fc, err)
}

// ParamsFilter keeps values out of the logged statements, as the wrapped
// logger does (GORM asks the logger itself).
func (l quietTrace) ParamsFilter(ctx context.Context, sql string, params ...any) (string, []any) {
	if f, ok := l.Interface.(gorm.ParamsFilter); ok {
		return f.ParamsFilter(ctx, sql, params...)
	}
	return sql, nil
}
