package telemetry

import (
	"context"
	"errors"
	"fmt"
	"os"
	"syscall"

	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// Log field names that tie a log line to a trace and a delivery.
const (
	FieldTraceID        = "trace_id"
	FieldSpanID         = "span_id"
	FieldDeliveryID     = "delivery_id"
	FieldSubscriptionID = "subscription_id"
)

func newLogger(cfg Config) (*zap.Logger, zap.AtomicLevel, error) {
	level := zap.NewAtomicLevel()
	if cfg.LogLevel != "" {
		l, err := zapcore.ParseLevel(cfg.LogLevel)
		if err != nil {
			return nil, level, fmt.Errorf("telemetry: log level %q: use debug, info, warn or error", cfg.LogLevel)
		}
		level.SetLevel(l)
	}
	out := cfg.LogOutput
	if out == nil {
		out = zapcore.Lock(os.Stderr)
	}
	var enc zapcore.Encoder
	if cfg.Console {
		ec := zap.NewDevelopmentEncoderConfig()
		ec.EncodeTime = zapcore.TimeEncoderOfLayout("15:04:05.000")
		ec.EncodeLevel = zapcore.CapitalColorLevelEncoder
		enc = zapcore.NewConsoleEncoder(ec)
	} else {
		ec := zap.NewProductionEncoderConfig()
		ec.EncodeTime = zapcore.RFC3339NanoTimeEncoder
		enc = zapcore.NewJSONEncoder(ec)
	}
	log := zap.New(zapcore.NewCore(enc, out, level),
		zap.AddCaller(), zap.AddStacktrace(zapcore.DPanicLevel), zap.ErrorOutput(out))
	return log, level, nil
}

// LogFields are the trace_id and span_id of the span in ctx, none when ctx
// has no valid span.
func LogFields(ctx context.Context) []zap.Field {
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsValid() {
		return nil
	}
	return []zap.Field{
		zap.String(FieldTraceID, sc.TraceID().String()),
		zap.String(FieldSpanID, sc.SpanID().String()),
	}
}

// DeliveryLogger is log with the fields every delivery log line carries:
// trace_id and span_id of the span in ctx, delivery_id, subscription_id.
func DeliveryLogger(log *zap.Logger, ctx context.Context, deliveryID, subscriptionID string) *zap.Logger {
	fields := append(LogFields(ctx),
		zap.String(FieldDeliveryID, deliveryID),
		zap.String(FieldSubscriptionID, subscriptionID))
	return log.With(fields...)
}

// ignorableSyncError is what fsync says about a terminal or a pipe: there
// is nothing to flush, so it is not a failure.
func ignorableSyncError(err error) bool {
	return errors.Is(err, syscall.EINVAL) || errors.Is(err, syscall.ENOTTY) || errors.Is(err, syscall.EBADF)
}
