package main

import (
	"context"
	"fmt"
	"io"
	"math/bits"
	"strings"
	"sync/atomic"
	"time"
)

// liveStats are the counters the workers update as answers come, read once a second by the
// progress display (the report itself is computed from every latency, exactly).
type liveStats struct {
	ok, failed atomic.Int64 // answers so far, warm-up included
	hist       histogram    // latencies of the measured period's 200 answers
}

func (l *liveStats) observe(ok bool, lat time.Duration, measured bool) {
	if !ok {
		l.failed.Add(1)
		return
	}
	l.ok.Add(1)
	if measured {
		l.hist.add(lat)
	}
}

// histogram is a lock-free log-linear histogram of microseconds: 16 buckets per power of two,
// so a quantile read from it is at most 1/16 (6.25 %) above the true value.
type histogram struct {
	b [16 + 40*16]atomic.Int64
}

const histSub = 16

func histIndex(us uint64) int {
	if us < histSub {
		return int(us)
	}
	e := bits.Len64(us) - 5 // us>>e is in [16, 32)
	i := histSub + e*histSub + int(us>>e) - histSub
	return min(i, len(histogram{}.b)-1)
}

// histUpper is the largest value of bucket i, in microseconds.
func histUpper(i int) uint64 {
	if i < histSub {
		return uint64(i)
	}
	e := (i - histSub) / histSub
	m := uint64((i-histSub)%histSub + histSub)
	return (m+1)<<e - 1
}

func (h *histogram) add(d time.Duration) {
	us := d.Microseconds()
	if us < 0 {
		us = 0
	}
	h.b[histIndex(uint64(us))].Add(1)
}

// quantile returns the upper bound of the bucket holding quantile q, and the count.
func (h *histogram) quantile(q float64) (time.Duration, int64) {
	var counts [len(histogram{}.b)]int64
	var n int64
	for i := range h.b {
		counts[i] = h.b[i].Load()
		n += counts[i]
	}
	if n == 0 {
		return 0, 0
	}
	rank := int64(q*float64(n) + 0.9999999)
	var seen int64
	for i, c := range counts {
		seen += c
		if seen >= rank {
			return time.Duration(histUpper(i)) * time.Microsecond, n
		}
	}
	return time.Duration(histUpper(len(counts)-1)) * time.Microsecond, n
}

// progress prints one line a second to w until ctx ends: elapsed time, events/s over the last
// second, p99 of the measured period so far, errors so far, and the watched processes' figures.
func progress(ctx context.Context, w io.Writer, begin time.Time, measureFrom func() time.Time, live *liveStats, smp *sampler) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	lastOK, lastAt := live.ok.Load(), time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			ok := live.ok.Load()
			rate := float64(ok-lastOK) / now.Sub(lastAt).Seconds()
			lastOK, lastAt = ok, now
			var b strings.Builder
			fmt.Fprintf(&b, "%6s  events/s %7.0f  ok %9d  errors %d", now.Sub(begin).Round(time.Second), rate, ok, live.failed.Load())
			if m := measureFrom(); m.IsZero() || now.Before(m) {
				b.WriteString("  (warm-up)")
			} else if p99, n := live.hist.quantile(0.99); n > 0 {
				fmt.Fprintf(&b, "  p99 %s", fmtMs(p99))
			}
			if smp != nil {
				for _, s := range smp.latest() {
					fmt.Fprintf(&b, "  | pid %d rss %.1f MiB fds %d tcp %d", s.PID, float64(s.RSSKiB)/1024, s.FDs, s.TCP)
					if s.Goroutines >= 0 {
						fmt.Fprintf(&b, " goroutines %d", s.Goroutines)
					}
				}
			}
			b.WriteByte('\n')
			if _, err := io.WriteString(w, b.String()); err != nil {
				return
			}
		}
	}
}

func fmtMs(d time.Duration) string {
	return fmt.Sprintf("%.2f ms", float64(d.Microseconds())/1000)
}
