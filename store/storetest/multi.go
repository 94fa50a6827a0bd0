package storetest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/xcomponent/xcomponent/store"
)

// RunTwoStores checks two stores on one database (two processes, in effect) committing to the
// same instances at once: no version is won twice, no update is lost.
func RunTwoStores(t *testing.T, a, b store.Store) {
	ctx := context.Background()
	const instances, writersPerStore, each = 4, 6, 15
	ids := make([]string, instances)
	for i := range ids {
		in := newInstance(unique("comp"), "Counter", "S", map[string]any{"count": 0}, base)
		mustCreate(t, a, in)
		ids[i] = in.ID
	}
	var (
		mu      sync.Mutex
		winners = map[string]string{} // "id/version" -> writer
		wins    int
		wg      sync.WaitGroup
	)
	errc := make(chan error, 2*writersPerStore)
	for si, s := range []store.Store{a, b} {
		for w := range writersPerStore {
			name := fmt.Sprintf("store%d/writer%d", si, w)
			wg.Go(func() {
				for done := 0; done < each; {
					id := ids[(w+done)%instances]
					cur, err := s.Instance(ctx, id)
					if err != nil {
						errc <- err
						return
					}
					n, _ := norm(cur.Data).(map[string]any)["count"].(float64)
					c, next := step(cur, "Inc", "S", map[string]any{"count": n + 1}, base+cur.Version+1)
					err = s.Commit(ctx, c)
					switch {
					case err == nil:
						key := fmt.Sprintf("%s/%d", id, next.Version)
						mu.Lock()
						if prev, dup := winners[key]; dup {
							errc <- fmt.Errorf("%s won by %s and %s", key, prev, name)
						}
						winners[key] = name
						wins++
						mu.Unlock()
						done++
					case errors.Is(err, store.ErrConflict):
					default:
						errc <- fmt.Errorf("%s: %w", name, err)
						return
					}
				}
			})
		}
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Error(err)
	}
	var total int64
	for _, id := range ids {
		in, err := b.Instance(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if !equalJSON(in.Data["count"], in.Version) {
			t.Errorf("%s: count %v at version %d: a lost update", id, in.Data["count"], in.Version)
		}
		h, _ := a.History(ctx, id)
		if int64(len(h)) != in.Version+1 {
			t.Errorf("%s: %d events at version %d", id, len(h), in.Version)
		}
		total += in.Version
	}
	if total != int64(wins) || wins != 2*writersPerStore*each {
		t.Errorf("versions add up to %d, %d wins, want %d", total, wins, 2*writersPerStore*each)
	}
}

// KillChild is the child side of RunKill: it commits transitions of 8 instances from 8
// goroutines until it is killed, printing "ack ID VERSION" once each commit is acknowledged.
func KillChild(t *testing.T, s store.Store) {
	ctx := context.Background()
	var mu sync.Mutex
	out := bufio.NewWriter(os.Stdout)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			in := newInstance(unique("kill"), "M", "S", map[string]any{"n": 0}, base)
			if err := s.Commit(ctx, create(in)); err != nil {
				t.Error(err)
				return
			}
			for i := 0; i < 1_000_000; i++ {
				c, next := step(in, "Inc", "S", map[string]any{"n": i + 1}, base+int64(i))
				c.Outbox = []store.Message{{ID: newID(), Component: "kill", Kind: "k", Body: []byte("m")}}
				if err := s.Commit(ctx, c); err != nil {
					t.Error(err)
					return
				}
				in = next
				mu.Lock()
				fmt.Fprintf(out, "ack %s %d\n", in.ID, in.Version)
				_ = out.Flush()
				mu.Unlock()
			}
		})
	}
	wg.Wait()
}

// RunKill starts cmd (a test binary running KillChild), kills it with SIGKILL once it has
// acknowledged acks commits, then checks with reopen that every acknowledged commit is there.
func RunKill(t *testing.T, cmd *exec.Cmd, acks int, reopen func() store.Store) {
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	acked := map[string]int64{}
	sc := bufio.NewScanner(stdout)
	n := 0
	for n < acks && sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 3 || f[0] != "ack" {
			continue
		}
		v, _ := strconv.ParseInt(f[2], 10, 64)
		acked[f[1]] = max(acked[f[1]], v)
		n++
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	if n < acks {
		t.Fatalf("the child acknowledged %d commits and stopped (want %d)", n, acks)
	}
	s := reopen()
	defer s.Close()
	ctx := context.Background()
	for id, v := range acked {
		in, err := s.Instance(ctx, id)
		if err != nil {
			t.Fatalf("acknowledged instance %s: %v", id, err)
		}
		if in.Version < v {
			t.Errorf("instance %s: version %d, but %d was acknowledged", id, in.Version, v)
		}
		h, err := s.History(ctx, id)
		if err != nil || int64(len(h)) != in.Version+1 {
			t.Errorf("instance %s: %d events at version %d (%v)", id, len(h), in.Version, err)
		}
	}
	t.Logf("%d acknowledged commits over %d instances survived SIGKILL", n, len(acked))
}
