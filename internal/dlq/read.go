package dlq

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// span is the part of one partition a scan reads: [from, to).
type span struct{ from, to int64 }

// bounds returns, per partition of topic, what to read: from the first
// offset at or after since (the log start when since is zero) to the end
// offsets as they are now, so a scan finishes even while the topic grows.
// A non-zero until also ends each partition at its first offset at or after
// until.
func bounds(ctx context.Context, adm *kadm.Client, topic string, since, until time.Time) (map[int32]span, error) {
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err == nil {
		err = ends.Error()
	}
	if errors.Is(err, kerr.UnknownTopicOrPartition) {
		return nil, fmt.Errorf("topic %s does not exist", topic)
	}
	if err != nil {
		return nil, fmt.Errorf("listing end offsets of %s: %w", topic, err)
	}
	var starts kadm.ListedOffsets
	if since.IsZero() {
		starts, err = adm.ListStartOffsets(ctx, topic)
	} else {
		starts, err = adm.ListOffsetsAfterMilli(ctx, since.UnixMilli(), topic)
	}
	if err == nil {
		err = starts.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("listing start offsets of %s: %w", topic, err)
	}
	var stops kadm.ListedOffsets
	if !until.IsZero() {
		if stops, err = adm.ListOffsetsAfterMilli(ctx, until.UnixMilli(), topic); err == nil {
			err = stops.Error()
		}
		if err != nil {
			return nil, fmt.Errorf("listing offsets of %s at %s: %w", topic, until.Format(time.RFC3339), err)
		}
	}
	out := make(map[int32]span)
	ends.Each(func(e kadm.ListedOffset) {
		s := span{to: e.Offset}
		if st, ok := starts.Lookup(topic, e.Partition); ok && st.Offset >= 0 {
			s.from = st.Offset
		}
		if st, ok := stops.Lookup(topic, e.Partition); ok && st.Offset >= 0 && st.Offset < s.to {
			s.to = st.Offset
		}
		if s.from < s.to {
			out[e.Partition] = s
		}
	})
	return out, nil
}

// scan reads spans of topic with a short-lived direct consumer built from
// cl's options and calls fn for each record in partition order, until every
// span is read or fn returns false. cl must not be a group consumer.
func scan(ctx context.Context, cl *kgo.Client, topic string, spans map[int32]span, fn func(*kgo.Record) bool) error {
	if len(spans) == 0 {
		return nil
	}
	at := make(map[int32]kgo.Offset, len(spans))
	for p, s := range spans {
		at[p] = kgo.NewOffset().At(s.from)
	}
	opts := append(cl.Opts(),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: at}),
		// Control records count towards the end offset; keeping them lets a
		// scan see the last offset of a partition written transactionally.
		kgo.KeepControlRecords(),
		kgo.FetchMaxWait(250*time.Millisecond),
	)
	reader, err := kgo.NewClient(opts...)
	if err != nil {
		return fmt.Errorf("reader for %s: %w", topic, err)
	}
	defer reader.Close()

	left := make(map[int32]int64, len(spans))
	for p, s := range spans {
		left[p] = s.to
	}
	for len(left) > 0 {
		fs := reader.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return err
		}
		var ferr error
		fs.EachError(func(t string, p int32, err error) {
			if ferr == nil {
				ferr = fmt.Errorf("reading %s/%d: %w", t, p, err)
			}
		})
		if ferr != nil {
			return ferr
		}
		stop := false
		fs.EachRecord(func(r *kgo.Record) {
			end, ok := left[r.Partition]
			if stop || !ok || r.Topic != topic {
				return
			}
			if r.Offset >= end-1 {
				delete(left, r.Partition)
			}
			if r.Offset >= end || r.Attrs.IsControl() {
				return
			}
			if !fn(r) {
				stop = true
			}
		})
		if stop {
			return nil
		}
	}
	return nil
}
